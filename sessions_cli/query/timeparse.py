"""`--since`/`--until` values: anything dateutil parses, relative ages, today/yesterday.

Naive dates and times are read in the zone given by `--tz` (default: the system's local zone),
as `git log --since` does. Relative forms count back from now: `30m`, `24h`, `7d`, `2w`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*(?:ago)?\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_instant(
    text: str, *, now: datetime | None = None, zone: tzinfo | None = None
) -> datetime:
    """An aware UTC datetime; raises ValueError with a user-facing message."""
    zone = zone or datetime.now().astimezone().tzinfo
    now = now or datetime.now(timezone.utc)
    word = text.strip().lower()
    if word in ("now",):
        return now
    if word in ("today", "yesterday"):
        midnight = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        if word == "yesterday":
            midnight -= timedelta(days=1)
        return midnight.astimezone(timezone.utc)
    match = _RELATIVE.match(word)
    if match:
        amount, unit = float(match.group(1)), _UNITS[match.group(2).lower()]
        try:
            return now - timedelta(**{unit: amount})
        except OverflowError as exc:
            raise ValueError(f"{text!r} reaches back before the year 1") from exc
    from dateutil import parser

    try:
        parsed = parser.isoparse(text.strip())
    except ValueError:
        try:
            parsed = parser.parse(text)
        except (ValueError, OverflowError) as exc:
            raise ValueError(
                f"cannot read {text!r} as a time: use a date like 2026-11-02, "
                "a timestamp like '2026-11-02 14:00', or an age like 30m, 24h, 7d, 2w"
            ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(timezone.utc)
