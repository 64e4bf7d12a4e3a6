"""The timeline drawn for a terminal: one bar per row on a shared, ruled time axis.

Input is the event frame of `timeline.events` (already limited and ordered). Bars are placed and
scaled to the session's span of time and the width given; idle gaps between traces get a row of
their own, because a conversation's pauses are part of its story.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from sessions_cli.output import humanise, tables

_NS_PER_MS = 1_000_000
# Round tick steps, in ms: the ruler uses the smallest that leaves room for its labels.
_STEPS_MS = [
    *(m * 10**e for e in range(0, 4) for m in (1, 2, 5)),  # 1ms .. 5s
    10_000, 15_000, 30_000,
    *(m * 60_000 for m in (1, 2, 5, 10, 15, 30)),
    *(h * 3_600_000 for h in (1, 2, 3, 6, 12)),
    *(d * 86_400_000 for d in (1, 2, 7, 14, 30, 90, 365)),
]  # fmt: skip
_MIN_BAR = 20
_MIN_CUT = {"NAME": 18, "MODEL": 12}  # the narrowest these text columns are cut to
_COLUMNS = ("OFFSET", "DURATION", "NAME", "STATUS", "MODEL", "TOKENS", "COST")
_GAP = "  "


@dataclass(frozen=True)
class Glyphs:
    bar: str
    error: str
    thin: str  # a row too short to fill one cell
    idle: str
    rule: str
    tick: str
    failed: str  # before a failed row's name
    to: str  # between input and output tokens

    @classmethod
    def pick(cls, ascii: bool) -> Glyphs:
        if ascii:
            return cls(
                bar="#", error="X", thin="|", idle=".", rule="-", tick="+", failed="! ", to="/"
            )
        return cls(bar="█", error="▓", thin="▏", idle="·", rule="─", tick="┬", failed="✗ ", to="→")


def title(session: dict, tz) -> str:
    """The line above a timeline: id, name, user, when, how long, traces, cost."""
    first, last = (humanise.instant(session[k], tz, seconds=True) for k in ("start", "end"))
    if first[:10] == last[:10]:
        last = last[11:]  # same day: the date once is enough
    parts = (
        session["session_id"],
        session["session_name"],
        session["user_id"],
        f"{first} → {last}",
        humanise.duration(session["duration_ms"]),
        humanise.count(session["trace_count"], "trace"),
        humanise.money(session["cost_usd"], unpriced=session["unpriced_call_count"]),
    )
    return " · ".join(humanise.plain(part) for part in parts if part)


def timeline(
    rows: pl.DataFrame,
    *,
    origin_ns: int,
    end_ns: int,
    width: int,
    ascii: bool = False,
    colour: bool = False,
    block: int = 10_000,
) -> Iterator[str]:
    """The drawing, in pieces to be written as they come. Rows are read twice, `block` at a
    time: once for the widths of their text, then to draw them. A session of 1M spans is never
    held as Python rows or text, only a block of it (drawing it whole took 3 GB)."""
    glyphs = Glyphs.pick(ascii)
    span_ns = max(end_ns - origin_ns, 1)
    widths = [tables.width(h) for h in _COLUMNS]
    for rows_now in _blocks(rows, origin_ns, span_ns, block):
        for row in rows_now:
            cells = _text_cells(row, glyphs)
            widths = [max(w, tables.width(c)) for w, c in zip(widths, cells, strict=True)]
    shown, bar_width = _layout(widths, width)
    headers = [_COLUMNS[i] for i in shown]
    fixed = [h != "NAME" and h != "MODEL" for h in headers]
    limits = tables.cut_widths(
        headers, [widths[i] for i in shown], width - bar_width - len(_GAP), fixed=fixed
    )
    right = {"DURATION", "TOKENS", "COST"}

    def join(texts: list[str]) -> str:
        return _GAP.join(
            tables.pad(t, w, "right" if h in right else "left")
            for h, t, w in zip(headers, texts, limits, strict=True)
        )

    step_ms = _tick_step(span_ns / _NS_PER_MS, bar_width)
    labels, rule = _ruler(span_ns, bar_width, step_ms, glyphs)
    yield join(headers) + _GAP + labels + "\n" + join(["-" * w for w in limits]) + _GAP + rule
    for rows_now in _blocks(rows, origin_ns, span_ns, block):
        out = [""]
        for row in rows_now:
            cells = _text_cells(row, glyphs)
            texts = [tables.ellipsis(cells[i], w) for i, w in zip(shown, limits, strict=True)]
            bar = _bar(row, origin_ns, span_ns, bar_width, glyphs)
            if colour:
                bar = _colour(bar, row)
            out.append((join(texts) + _GAP + bar).rstrip())
        yield "\n".join(out)
    yield "\n"


def _layout(widths: list[int], width: int) -> tuple[list[int], int]:
    """Which of _COLUMNS to show (their indices) and how wide the bar is, for text columns
    `widths` wide at most, on a line `width` wide."""
    shown = list(range(len(_COLUMNS)))
    # Text first, cut only as far as needed, but the bar keeps at least a quarter of the line.
    # On a narrow terminal MODEL and then STATUS go (errors stay marked in the name and bar)
    # before names are cut below a readable width.
    for droppable in (None, "MODEL", "STATUS"):
        if droppable:
            shown = [i for i in shown if _COLUMNS[i] != droppable]
        natural = sum(widths[i] for i in shown) + len(_GAP) * len(shown)
        bar_width = max(_MIN_BAR, width - natural, width // 4)
        smallest = natural - sum(
            widths[i] - min(widths[i], _MIN_CUT[_COLUMNS[i]]) for i in shown
            if _COLUMNS[i] in _MIN_CUT
        )  # fmt: skip
        if smallest <= width - bar_width:
            break
    return shown, bar_width


_DRAWN = (
    "kind", "depth", "name", "status", "model", "input_tokens", "output_tokens", "cost_usd",
    "unpriced_call_count", "offset_ms", "duration_ms", "start_ns", "end_ns",
)  # fmt: skip


def _blocks(rows: pl.DataFrame, origin_ns: int, span_ns: int, size: int) -> Iterator[list[dict]]:
    """The rows to draw, idle rows included, `size` at a time: only the fields drawn."""
    narrow = rows.select(c for c in _DRAWN if c in rows.columns)
    busy_until = None
    for part in narrow.iter_slices(size):
        block, busy_until = _with_idle(part.to_dicts(), origin_ns, span_ns, busy_until)
        yield block


def with_idle_rows(rows: list[dict], origin_ns: int, span_ns: int) -> list[dict]:
    """Insert an `idle` row wherever no trace runs between two traces, if it is big enough to
    see (at least 1/50 of the session; shorter pauses are just spacing)."""
    return _with_idle(rows, origin_ns, span_ns, None)[0]


def _with_idle(
    rows: list[dict], origin_ns: int, span_ns: int, busy_until: int | None
) -> tuple[list[dict], int | None]:
    """with_idle_rows for one block of rows: `busy_until` is when the traces before it end."""
    out: list[dict] = []
    for row in rows:
        if row["kind"] == "trace":
            start = row["start_ns"]
            if busy_until is not None and start - busy_until >= max(span_ns / 50, 1):
                out.append({"kind": "idle", "start_ns": busy_until, "end_ns": start,
                            "offset_ms": (busy_until - origin_ns) / _NS_PER_MS,
                            "duration_ms": (start - busy_until) / _NS_PER_MS})  # fmt: skip
            end = row["end_ns"]
            busy_until = end if busy_until is None else max(busy_until, end)
        out.append(row)
    return out, busy_until


def _text_cells(row: dict, glyphs: Glyphs) -> list[str]:
    """The text columns of a row, in _COLUMNS order."""
    if row["kind"] == "idle":
        when, took = humanise.offset(row["offset_ms"]), humanise.duration(row["duration_ms"])
        return [when, took, "(idle)", "", "", "", ""]
    indent = "" if row["kind"] == "trace" else _indent(row["depth"])
    failed = row["status"] == "error"
    name = humanise.plain(row["name"] or "")
    tokens_in, tokens_out, cost = row["input_tokens"], row["output_tokens"], row["cost_usd"]
    tokens = f"{tokens_in or 0:,}{glyphs.to}{tokens_out or 0:,}" if tokens_in or tokens_out else ""
    unpriced = row.get("unpriced_call_count") or 0
    shown = humanise.money(cost, unpriced=unpriced) if cost is not None or unpriced else ""
    if not tokens and not cost and not unpriced:
        shown = ""  # no LLM call of its own: blank rather than a row of zeros
    return [
        humanise.offset(row["offset_ms"]),
        humanise.duration(row["duration_ms"]) if row["duration_ms"] is not None else "",
        indent + (glyphs.failed if failed else "") + name,
        {"error": "error", "ok": "ok"}.get(row["status"], ""),
        humanise.plain(row["model"] or ""),
        tokens,
        shown,
    ]


def _indent(depth: int) -> str:
    """Two columns a level; past `_DEEPEST_INDENT` levels the depth is written as a number:
    a chain of 100,000 spans must not make rows 200,000 columns wide (nor 10 GB of text)."""
    if depth < _DEEPEST_INDENT:
        return "  " * (depth + 1)
    return "  " * _DEEPEST_INDENT + f"[{depth}] "


_DEEPEST_INDENT = 8


def _bar(row: dict, origin_ns: int, span_ns: int, width: int, glyphs: Glyphs) -> str:
    start, end = row["start_ns"], row["end_ns"]
    if start is None or end is None:
        return ""
    scale = width / span_ns
    first = min(int((start - origin_ns) * scale), width - 1)
    cells = (end - start) * scale
    last = max(first + 1, min(math.ceil((end - origin_ns) * scale), width))
    if row["kind"] == "idle":
        fill = glyphs.idle
    elif row.get("status") == "error":
        fill = glyphs.error
    else:
        fill = glyphs.bar
    body = glyphs.thin if cells < 0.5 and fill != glyphs.idle else fill * (last - first)
    return " " * first + body


# SGR codes for the bars: the renderer writes them itself so that only cli/ knows click.
_SGR = {"idle": "2", "error": "31", "trace": "36", "span": "34"}


def _colour(bar: str, row: dict) -> str:
    if row["kind"] == "idle":
        code = _SGR["idle"]
    elif row.get("status") == "error":
        code = _SGR["error"]
    else:
        code = _SGR["trace"] if row["kind"] == "trace" else _SGR["span"]
    return f"\x1b[{code}m{bar}\x1b[0m"


def _tick_step(total_ms: float, width: int) -> float:
    """The smallest round step whose ticks are at least 8 columns apart."""
    for step in _STEPS_MS:
        if step * width / max(total_ms, 1e-9) >= 8:
            return step
    return _STEPS_MS[-1]


def _ruler(span_ns: int, width: int, step_ms: float, glyphs: Glyphs) -> tuple[str, str]:
    """Tick labels and the rule line under them, for the bar column."""
    labels = [" "] * width
    rule = [glyphs.rule] * width
    tick = 0.0
    while True:
        column = int(tick * _NS_PER_MS * width / span_ns)
        if column >= width:
            break
        rule[column] = glyphs.tick
        text = humanise.tick_label(tick)
        free = all(c == " " for c in labels[max(column - 1, 0) : column + len(text)])
        if column + len(text) <= width and free:
            labels[column : column + len(text)] = text
        tick += step_ms
    return "".join(labels).rstrip(), "".join(rule)
