"""`--since`/`--until` values: anything dateutil parses, relative ages, today/yesterday.

One time zone rule for parsing and display alike: dates and times typed without a zone are read
in `--tz`, which is UTC unless given (tables show UTC then too), so a time copied from a table
means what it showed. Relative forms count back from now: `30m`, `24h`, `7d`, `2w`. A date
without a time given to `--until` takes in that whole day, as ccusage's `--until` does.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone, tzinfo

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*(?:ago)?\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DAY_WORDS = ("today", "yesterday")


def parse_instant(
    text: str, *, now: datetime | None = None, zone: tzinfo | None = None
) -> datetime:
    """An aware UTC datetime; raises ValueError with a user-facing message. `zone`: where
    times without one are read (None: UTC)."""
    zone = zone or timezone.utc
    now = now or datetime.now(timezone.utc)
    word = text.strip().lower()
    if word == "now":
        return now
    if word in _DAY_WORDS:
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
    parsed = _parsed(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(timezone.utc)


def parse_until(
    text: str, *, now: datetime | None = None, zone: tzinfo | None = None
) -> tuple[datetime, bool]:
    """The `--until` bound and whether it is inclusive: a date without a time (`2026-11-26`,
    `today`) gives the next midnight, exclusive, so that the whole day is in."""
    instant = parse_instant(text, now=now, zone=zone)
    if text.strip().lower() in _DAY_WORDS or _is_date_only(text):
        # the next local midnight: a day is 23 or 25 hours long when clocks change
        local = instant.astimezone(zone or timezone.utc)
        following = (local.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=local.tzinfo)
        return following.astimezone(timezone.utc), False
    return instant, True


def _parsed(text: str) -> datetime:
    from dateutil import parser

    try:
        return parser.isoparse(text.strip())
    except ValueError:
        try:
            return parser.parse(text)
        except (ValueError, OverflowError) as exc:
            raise ValueError(
                f"cannot read {text!r} as a time: use a date like 2026-11-02, "
                "a timestamp like '2026-11-02 14:00', or an age like 30m, 24h, 7d, 2w"
            ) from exc


def _is_date_only(text: str) -> bool:
    """True when `text` names a day and no time of it: dateutil fills each missing part of the
    time from its default, so the time is all one default or all the other."""
    from dateutil import parser

    if _RELATIVE.match(text.strip().lower()):
        return False
    try:
        early = parser.parse(text, default=datetime(2000, 1, 1, 0, 0, 0))
        late = parser.parse(text, default=datetime(2000, 1, 1, 23, 59, 59))
    except (ValueError, OverflowError):
        return False
    return early.time() == time(0, 0, 0) and late.time() == time(23, 59, 59)
