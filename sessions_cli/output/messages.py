"""Notices (sessions_cli/notices.py) in words: the one table of what each kind says.

Each kind has its sentence for one and for many, and how the cap line names the files when a
kind is found in more files than are worth a line each.
"""

from __future__ import annotations

from collections.abc import Iterable

from sessions_cli.notices import Notice
from sessions_cli.output import humanise

# kind -> (for one, for many, the files of the cap line). Fields: {n} the count, {label} the
# file, {detail} what was found, {lines} the first line numbers.
TEXTS = {
    "malformed_lines": (
        "{label}: skipped {n} malformed line ({lines}; first: {detail})",
        "{label}: skipped {n} malformed lines ({lines}; first: {detail})",
        "with malformed lines",
    ),
    "cut_short": ("{label}: {detail}", "{label}: {detail}", "cut short"),
    "unreadable": ("{detail}; skipped", "{detail}; skipped", "that cannot be read"),
    "not_traces": (
        "{label}: not a trace file, skipped: {detail}",
        "{label}: not a trace file, skipped: {detail}",
        "that are not trace files, skipped",
    ),
    "invalid_utf8": (
        "{label}: invalid UTF-8 replaced with U+FFFD",
        "{label}: invalid UTF-8 replaced with U+FFFD",
        "with invalid UTF-8",
    ),
    "surrogates": (
        "{label}: lone UTF-16 surrogate escapes replaced with U+FFFD",
        "{label}: lone UTF-16 surrogate escapes replaced with U+FFFD",
        "with lone UTF-16 surrogate escapes",
    ),
    "nested_text": (
        "{label}: {n} attribute value that is an array or key-value list where text was "
        "expected was ignored",
        "{label}: {n} attribute values that are arrays or key-value lists where text was "
        "expected were ignored",
        "with values ignored",
    ),
    "bad_usage": (
        "{label}: {n} token count or cost that is not a non-negative number (tokens whole) was "
        "ignored",
        "{label}: {n} token counts or costs that are not non-negative numbers (tokens whole) "
        "were ignored",
        "with values ignored",
    ),
    "bad_time": (
        "{label}: {n} span without valid start and end times (missing, 0, negative or past "
        "year 9999) has no times",
        "{label}: {n} spans without valid start and end times (missing, 0, negative or past "
        "year 9999) have no times",
        "with spans without times",
    ),
    "spans_without_ids": (
        "skipped {n} span without a valid traceId/spanId",
        "skipped {n} spans without a valid traceId/spanId",
        "with spans without ids",
    ),
    "other_lines": (
        "{label}: {n} line that is not a span (the app's own output, between console-exporter "
        "spans) was skipped",
        "{label}: {n} lines that are not spans (the app's own output, between console-exporter "
        "spans) were skipped",
        "with other output between spans",
    ),
    "trailing_garbage": (
        "{label}: {n} byte after the end of the gzip data was ignored (as zcat does)",
        "{label}: {n} bytes after the end of the gzip data were ignored (as zcat does)",
        "with bytes after the gzip data",
    ),
    "end_before_start": (
        "{label}: {n} span ends before it starts: its end is taken as its start",
        "{label}: {n} spans end before they start: their end is taken as their start",
        "with spans that end before they start",
    ),
    "conflicting_duplicates": (
        "{n} span was read more than once with different content; the first read was kept "
        "(files are read in path order)",
        "{n} spans were read more than once with different content; the first read was kept "
        "(files are read in path order)",
        "",
    ),
    "own_parent": (
        "{n} span names itself as parent: taken as a root",
        "{n} spans name themselves as parent: taken as roots",
        "",
    ),
    "cycles": (
        "{n} parent cycle (a -> b -> a): the earliest span of each is taken as a root",
        "{n} parent cycles (a -> b -> a): the earliest span of each is taken as a root",
        "",
    ),
    "session_conflicts": (
        "{n} trace carries more than one session id: it belongs to its root's session",
        "{n} traces carry more than one session id: each belongs to its root's session",
        "",
    ),
}

_SHOWN_FILES = 5  # per kind; 10,000 broken files must not mean 10,000 lines
_SHOWN_LINES = 5  # line numbers named per file


def text(notice: Notice) -> str:
    one, many, _ = TEXTS[notice.kind]
    lines = ", ".join(str(n) for n in notice.lines[:_SHOWN_LINES])
    if len(notice.lines) > _SHOWN_LINES or notice.count > len(notice.lines) > 0:
        lines += ", ..."
    return humanise.plural(notice.count, one, many).format(
        n=f"{notice.count:,}",
        label=notice.label,
        detail=notice.detail,
        lines=f"line {lines}",
    )


def texts(notices: Iterable[Notice]) -> list[str]:
    """Each notice in words, in the order given; past a few files of one kind, the rest of
    that kind as one line that counts them."""
    by_kind: dict[str, list[Notice]] = {}
    for notice in notices:
        by_kind.setdefault(notice.kind, []).append(notice)
    out = []
    for kind, found in by_kind.items():
        if len(found) <= _SHOWN_FILES + 1:
            out += [text(notice) for notice in found]
            continue
        out += [text(notice) for notice in found[:_SHOWN_FILES]]
        out.append(f"... and {len(found) - _SHOWN_FILES:,} more files {TEXTS[kind][2]}")
    return out
