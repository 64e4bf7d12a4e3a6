"""Tables for people: the layout of tabulate's "simple" format, written faster."""

from __future__ import annotations

import tabulate as tabulate_module
from hypothesis import given
from hypothesis import strategies as st

from sessions_cli.output import render

# Cells are plain text by then (no tabs, newlines or escapes); tabulate strips whitespace.
PIECES = ["a", "b", " ", "\u00a0", "é", "😀", "-", "1"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=5).map("".join)


@st.composite
def tables(draw):
    columns = draw(st.integers(1, 4))
    headers = draw(st.lists(TEXT, min_size=columns, max_size=columns))
    rows = draw(st.lists(st.lists(TEXT, min_size=columns, max_size=columns), max_size=4))
    align = draw(st.lists(st.sampled_from(["left", "right"]), min_size=columns, max_size=columns))
    return headers, rows, align


@given(tables())
def test_simple_table_is_tabulates_simple_format(table):
    headers, rows, align = table
    saved = tabulate_module.MIN_PADDING
    tabulate_module.MIN_PADDING = 0
    try:
        expected = tabulate_module.tabulate(
            rows, headers=headers, tablefmt="simple", colalign=align, disable_numparse=True
        )
    finally:
        tabulate_module.MIN_PADDING = saved
    assert render.simple_table(headers, rows, align) == expected
