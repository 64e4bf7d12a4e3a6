"""The one table layout (output/tables.py) is tabulate's "simple" and "github" formats,
measured by display width as tabulate measures it with wcwidth installed."""

from __future__ import annotations

import tabulate as tabulate_module
from hypothesis import given
from hypothesis import strategies as st

from sessions_cli.output import tables as layout

# Cells are plain text by then (no tabs, newlines or escapes); tabulate strips whitespace.
PIECES = ["a", "b", " ", "\u00a0", "é", "😀", "-", "1", "漢", "e\u0301"]
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
    assert layout.simple(headers, rows, align) == expected


@given(tables())
def test_markdown_table_is_tabulates_github_format(table):
    headers, rows, align = table
    expected = tabulate_module.tabulate(
        rows, headers=headers, tablefmt="github", disable_numparse=True, colalign=align
    )
    assert layout.github(headers, rows, align) == expected


def test_wide_characters_align_and_are_cut_by_display_width():
    text = layout.simple(["NAME", "N"], [["漢字漢字", "1"], ["ab", "22"]], ["left", "right"])
    lines = text.splitlines()
    assert [layout.width(line) for line in lines] == [
        12,
        12,
        12,
        12,
    ]  # 8 cells of CJK, a 2-cell gap, "22"
    assert lines[2] == "漢字漢字   1"
    assert layout.ellipsis("漢字漢字", 5) == "漢字…"
    assert layout.width(layout.ellipsis("漢字漢字", 4)) <= 4


def test_notices_past_five_files_of_a_kind_end_in_one_line_that_counts_the_rest():
    from sessions_cli.notices import Notice
    from sessions_cli.output import messages

    found = [Notice("invalid_utf8", label=f"part-{i}.jsonl") for i in range(8)]
    found.insert(3, Notice("own_parent", 2))
    lines = messages.texts(found)
    assert lines[:5] == [f"part-{i}.jsonl: invalid UTF-8 replaced with U+FFFD" for i in range(5)]
    assert lines[5] == "... and 3 more files with invalid UTF-8"
    assert lines[6] == "2 spans name themselves as parent: taken as roots"
    assert len(lines) == 7


def test_a_malformed_lines_notice_names_its_first_lines_and_says_when_there_are_more():
    from sessions_cli.notices import Notice
    from sessions_cli.output import messages

    few = Notice("malformed_lines", 2, "a.jsonl", "invalid JSON", (4, 9))
    many = Notice("malformed_lines", 1234, "b.jsonl", "invalid JSON", tuple(range(1, 11)))
    assert (
        messages.text(few) == "a.jsonl: skipped 2 malformed lines (line 4, 9; first: invalid JSON)"
    )
    assert messages.text(many) == (
        "b.jsonl: skipped 1,234 malformed lines (line 1, 2, 3, 4, 5, ...; first: invalid JSON)"
    )
