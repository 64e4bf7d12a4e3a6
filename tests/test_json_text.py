"""Row JSON built a column at a time is exactly what json.dumps writes for the same records."""

from __future__ import annotations

import datetime as dt
import json
import math

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from sessions_cli.output import json_text, render

# Text with what JSON must escape (quotes, backslashes, control characters), what it must not
# (non-ASCII, DEL), and the separators the layout itself uses.
TEXT = st.lists(st.sampled_from(['"', "\\", "\n", "\x00", "\x1f", "\x7f", "é", "😀",
                                 ", ", ": ", "{", "a", " "]), max_size=6).map("".join)  # fmt: skip
# Python's repr turns to an exponent below 1e-4 (polars' text does not) and from 1e16 on
# (as polars' does): floats on both sides of both edges.
EDGES = st.floats(1e-5, 1e-3) | st.floats(1e15, 1e17) | st.sampled_from(
    [1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0])  # fmt: skip
FLOATS = (
    st.floats()
    | EDGES
    | EDGES.map(lambda x: -x)
    | st.sampled_from([math.nan, math.inf, -math.inf, 1e-05, -0.0, 1e22, 0.1])
)
INSTANTS = st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2262, 1, 1))
PAIRS = st.lists(st.fixed_dictionaries({"key": st.sampled_from(["a", "b", "é\n"]),
                                        "value": st.none() | TEXT}), max_size=3)  # fmt: skip

SCHEMA = {
    "text": pl.String,
    "count": pl.UInt32,
    "tokens": pl.Int64,
    "cost_usd": pl.Float64,
    "flag": pl.Boolean,
    "start": pl.Datetime("ns", "UTC"),
    "models": pl.List(pl.String),
    "metadata": pl.List(pl.Struct({"key": pl.String, "value": pl.String})),
    "numbers": pl.List(pl.Int64),  # a type json_text leaves to json.dumps
}


@st.composite
def frames(draw):
    rows = draw(st.integers(0, 5))

    def column(values):
        return draw(st.lists(st.none() | values, min_size=rows, max_size=rows))

    data = {
        "text": column(TEXT),
        "count": column(st.integers(0, 2**32 - 1)),
        "tokens": column(st.integers(-(2**63), 2**63 - 1)),
        "cost_usd": column(FLOATS),
        "flag": column(st.booleans()),
        "start": column(INSTANTS),
        "models": column(st.lists(st.none() | TEXT, max_size=3)),
        "metadata": column(PAIRS),
        "numbers": column(st.lists(st.integers(-5, 5), max_size=2)),
    }
    frame = pl.DataFrame(data, schema=SCHEMA)
    names = draw(st.permutations(list(SCHEMA)))  # any order, and mostly many columns
    return frame.select(names[: draw(st.integers(0, len(names)))])


@given(frames())
def test_objects_are_what_json_dumps_writes(frame):
    records = render.to_records(frame)
    compact = [json.dumps(r, ensure_ascii=False) for r in records]
    assert json_text.objects(frame, indent=None) == compact
    indented = [json.dumps(r, ensure_ascii=False, indent=2) for r in records]
    assert json_text.objects(frame, indent=2) == indented
    # An item of a top-level array: every line after the first indented once more.
    nested = [text.replace("\n", "\n  ") for text in indented]
    assert json_text.objects(frame, indent=2, level=1) == nested


@given(frames())
def test_json_format_is_the_indented_array(frame):
    expected = json.dumps(render.to_records(frame), ensure_ascii=False, indent=2) + "\n"
    assert render.render(frame, "json") == expected
    lines = render.render(frame, "jsonl").splitlines()
    assert [json.loads(line) for line in lines] == json.loads(expected)


def test_csv_cells_hold_compact_json():
    frame = pl.DataFrame(
        {"models": [["a", 'q"x'], [], None],
         "metadata": [[{"key": "k", "value": "v"}, {"key": "k", "value": "w"}], [], None]},
        schema={"models": SCHEMA["models"], "metadata": SCHEMA["metadata"]},
    )  # fmt: skip
    assert render.render(frame, "csv").splitlines() == [
        "models,metadata",
        '"[""a"", ""q\\""x""]","{""k"": ""w""}"',
        "[],{}",
        ",",
    ]
