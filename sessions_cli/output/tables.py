"""The one table layout: text cells in aligned columns, measured by display width.

Every table the tool prints (list, show, stats, the timeline's text columns, Markdown for CI
summaries) is laid out here. Widths are terminal cells as `wcwidth` counts them, so CJK text
and emoji (two cells) line up with ASCII. The layouts are tabulate's "simple" and "github"
formats, written directly: tabulate type-checks every cell even with number parsing off,
which costs seconds on a table of tens of thousands of sessions. tests/test_render.py holds
both layouts to tabulate's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from wcwidth import wcswidth

Align = Literal["left", "right"]
_SHRINKABLE_MIN = 8  # a cut text column keeps at least this many cells (or its header's)


def width(text: str) -> int:
    """Terminal cells `text` takes. Cells reach here made plain (`humanise.plain`); a character
    wcwidth cannot measure counts as one cell."""
    cells = wcswidth(text)
    return cells if cells >= 0 else sum(max(wcswidth(c), 1) for c in text)


def pad(text: str, cells: int, how: Align = "left") -> str:
    room = " " * max(cells - width(text), 0)
    return room + text if how == "right" else text + room


def simple(
    headers: Sequence[str], cells: list[list[str]], align: Sequence[Align] | None = None
) -> str:
    """tabulate's "simple" layout: cells stripped, two spaces between columns, a dashed rule
    under the headers, no padding beyond the widest entry, lines right-trimmed."""
    align = align or ["left"] * len(headers)
    columns = [[row[i].strip() for row in cells] for i in range(len(headers))]
    widths = column_widths(headers, columns)
    layout = list(zip(widths, align, strict=True))

    def line(texts) -> str:
        return "  ".join(pad(t, w, how) for t, (w, how) in zip(texts, layout, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths).rstrip()
    return "\n".join([line(headers), rule, *(line(row) for row in zip(*columns, strict=True))])


def github(
    headers: Sequence[str], cells: list[list[str]], align: Sequence[Align] | None = None
) -> str:
    """tabulate's "github" (Markdown pipe table) layout: a header cell is padded two cells past
    its text. Cells must already have any `|` escaped. With no rows, headers are left-aligned,
    as tabulate does."""
    align = (align if cells else None) or ["left"] * len(headers)
    columns = [[row[i].strip() for row in cells] for i in range(len(headers))]
    widths = [
        max([width(h) + 2, *map(width, column)]) for h, column in zip(headers, columns, strict=True)
    ]

    def line(texts) -> str:
        padded = (pad(t, w, how) for t, w, how in zip(texts, widths, align, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in zip(*columns, strict=True))])


def first_left(count: int) -> list[Align]:
    """A label column, then `count - 1` number columns."""
    return ["left" if i == 0 else "right" for i in range(count)]


def column_widths(headers: Sequence[str], columns: Sequence[Sequence[str]]) -> list[int]:
    return [max([width(h), *map(width, c)]) for h, c in zip(headers, columns, strict=True)]


def fit_to_width(
    headers: Sequence[str], cells: list[list[str]], room: int, *, fixed: Sequence[bool]
) -> list[list[str]]:
    """Cut the widest text columns (never the `fixed` ones: numbers, times) with an ellipsis
    until the table fits in `room` cells; it stays wider when only fixed columns are left."""
    columns = [[row[i] for row in cells] for i in range(len(headers))]
    limits = cut_widths(headers, column_widths(headers, columns), room, fixed=fixed)
    return [[ellipsis(cell, limits[i]) for i, cell in enumerate(row)] for row in cells]


def cut_widths(
    headers: Sequence[str], widths: Sequence[int], room: int, *, fixed: Sequence[bool]
) -> list[int]:
    """The widths of columns `widths` wide once `fit_to_width` has cut them to `room`."""
    limits = list(widths)

    def floor(i: int) -> int:
        return max(_SHRINKABLE_MIN, width(headers[i]))

    excess = sum(limits) + 2 * (len(limits) - 1) - room
    while excess > 0:
        candidates = [i for i, f in enumerate(fixed) if not f and limits[i] > floor(i)]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: limits[i])
        cut = min(excess, limits[widest] - floor(widest))
        limits[widest] -= cut
        excess -= cut
    return limits


Role = Literal["key", "value", "text"]


def fit(
    headers: Sequence[str], cells: list[list[str]], room: int, roles: Sequence[Role],
    *, drop: bool = True,
) -> tuple[list[int], list[list[str]]]:  # fmt: skip
    """Fit a table in `room` cells: text columns are cut first (`fit_to_width`); then, with
    `drop`, whole columns are left out, text columns before values, right to left, until it
    fits. "key" columns (ids, money, a group's name) are never cut or left out. Returns the
    indices of the columns kept and their cells."""
    count = len(headers)
    order = [i for role in ("text", "value") for i in reversed(range(count)) if roles[i] == role]
    keep = list(range(count))
    while True:
        shown = [headers[i] for i in keep]
        cut = fit_to_width(shown, [[row[i] for i in keep] for row in cells], room,
                           fixed=[roles[i] != "text" for i in keep])  # fmt: skip
        columns = [[row[j] for row in cut] for j in range(len(keep))]
        used = sum(column_widths(shown, columns)) + 2 * (len(keep) - 1)
        if used <= room or not drop or not order:
            return keep, cut
        keep.remove(order.pop(0))


def ellipsis(text: str, cells: int) -> str:
    """`text` cut to at most `cells` terminal cells, ending in `…` when cut."""
    if width(text) <= cells:
        return text
    kept, used = [], 1  # the ellipsis takes one cell
    for char in text:
        used += max(wcswidth(char), 0)
        if used > cells:
            break
        kept.append(char)
    return "".join(kept) + "…"
