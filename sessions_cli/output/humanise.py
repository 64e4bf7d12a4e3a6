"""Values as people read them: money, durations, times, timeline offsets, and text made safe
for a terminal. Every table, summary, stderr line and drawing takes its wording from here."""

from __future__ import annotations

import re
from datetime import tzinfo

# Terminal escape sequences (CSI such as colours, OSC such as hyperlinks and window titles), and
# then any other control character: what end users typed must not drive the user's terminal.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")


# Bidi overrides and isolates can reorder what a terminal shows (a name reading as another);
# zero-width characters hide text. Both are shown escaped, as controls are.
_CONTROLS = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


def instant(value, tz: tzinfo | None, *, seconds: bool = False) -> str:
    """A table time: minutes are enough in a list; machine formats keep nanoseconds."""
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return value.astimezone(tz).strftime(pattern) if tz else value.strftime(pattern) + "Z"


def plain(text: str) -> str:
    """Text safe to print on a terminal: escape sequences dropped, other controls made visible,
    tabs and newlines turned into spaces."""
    text = _ESCAPES.sub("", text)
    text = text.replace("\t", " ").replace("\n", " ")
    return _CONTROLS.sub(_escaped, text)


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def count(n: int, noun: str, many: str | None = None) -> str:
    """`1 trace`, `2 traces`, `1,204 LLM calls`: every counted noun people read."""
    return f"{n:,} {plural(n, noun, many or noun + 's')}"


def plural(n: int, one: str, many: str) -> str:
    """The form for `n` of a word or sentence: the one place that knows 1 is singular."""
    return one if n == 1 else many


def money(usd: float | None, *, unpriced: int = 0) -> str:
    """`$0.0103`; `?` for an unknown cost; `≥$0.0103` when `unpriced` calls are left out of
    it (a lower bound)."""
    if usd is None:
        return "?"
    if unpriced:
        return "≥" + money(usd)
    if usd == 0:
        return "$0"
    if abs(usd) < 0.0001:
        return "<$0.0001"
    if abs(usd) < 1:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


def duration(ms: float) -> str:
    """`850ms`, `4.2s`, `1m 23s`, `2h 03m`, `3d 4h`."""
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def tick_label(ms: float) -> str:
    """Ruler labels: `0`, `250ms`, `1.5s`, `30s`, `2m`, `1h30m`, `2d`."""
    if ms == 0:
        return "0"
    if ms < 1000:
        return f"{ms:g}ms"
    if ms < 60_000:
        return f"{ms / 1000:g}s"
    minutes = ms / 60_000
    if minutes < 60:
        return (
            f"{minutes:g}m"
            if minutes == int(minutes)
            else f"{int(minutes)}m{(ms % 60_000) / 1000:g}s"
        )
    hours, minutes = divmod(int(minutes), 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def offset(ms: float | None) -> str:
    """Time since the session's start: `+0ms`, `+350ms`, `+4.2s`, `+1m 02.3s`, `+2h 03m 10s`."""
    if ms is None:
        return ""
    if ms < 999.5:
        return f"+{ms:.0f}ms"
    tenths = round(ms / 100)  # round once, so 59.97s is +1m 00.0s and never +60.0s
    if tenths < 600:
        return f"+{tenths / 10:.1f}s"
    minutes, tenths = divmod(tenths, 600)
    if minutes < 60:
        return f"+{minutes}m {tenths // 10:02d}.{tenths % 10}s"
    hours, minutes = divmod(minutes, 60)
    return f"+{hours}h {minutes:02d}m {tenths // 10:02d}s"
