"""`sessions show` and `sessions timeline`: id prefixes, totals, span-tree order, every format."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import click
import pytest

from sessions_cli.model import sessions as model
from sessions_cli.output import draw, humanise
from sessions_cli.query import timeline
from sessions_cli.read import keys as attributes
from sessions_cli.read import sources as inputs
from sessions_cli.store import loading
from tests.conftest import GENERATED, REAL, by_id, run, run_json
from tests.otlp_builder import document, lines, span

GOLDEN = Path(__file__).resolve().parent / "golden"
SESSION = "sess-tree"


@pytest.fixture
def tree(tmp_path):
    """One session, two traces, every tree shape the timeline must order.

    Trace A (0-1000 ms): root a; children b (100-400) and c (500-900), c's child d (600-700);
    e (50-60) names a parent that is not in the data, so it is a root too.
    Trace B (5000-5500 ms): x and y name each other (a cycle, cut at x), z names itself.
    """
    path = tmp_path / "tree.jsonl"
    path.write_text(
        lines(
            document(
                span("A", "a", name="a", start_ms=0, end_ms=1000, session__id=SESSION),
                span(
                    "A",
                    "c",
                    parent="a",
                    name="c",
                    start_ms=500,
                    end_ms=900,
                    gen_ai__operation__name="chat",
                    gen_ai__request__model="m",
                    gen_ai__usage__input_tokens=30,
                    gen_ai__usage__output_tokens=3,
                    agentmark__usage__cost_usd=0.03,
                ),
                span(
                    "A",
                    "b",
                    parent="a",
                    name="b",
                    start_ms=100,
                    end_ms=400,
                    gen_ai__usage__input_tokens=10,
                    gen_ai__usage__output_tokens=1,
                    agentmark__usage__cost_usd=0.01,
                ),
                span("A", "d", parent="c", name="d", start_ms=600, end_ms=700, error=True),
                span("A", "e", parent="gone", name="e", start_ms=50, end_ms=60),
            ),
            document(
                span(
                    "B", "y", parent="x", name="y", start_ms=5100, end_ms=5200, session__id=SESSION
                ),
                span("B", "x", parent="y", name="x", start_ms=5000, end_ms=5500),
                span("B", "z", parent="z", name="z", start_ms=5300, end_ms=5400),
            ),
            document(span("C", "q", name="other", start_ms=0, end_ms=5, session__id="sess-trek")),
        )
    )
    return path


def events(*args: str) -> list[dict]:
    return run_json("timeline", *args)


# ---------------------------------------------------------------------------------------------
# Finding the session


def test_a_unique_prefix_finds_the_session():
    assert run_json("show", "sess-sup", str(REAL))["session"]["session_id"] == "sess-support-1"


def test_an_exact_id_wins_over_longer_ids_it_prefixes(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text(
        lines(
            document(span("t1", "1", session__id="s1")),
            document(span("t2", "2", session__id="s10")),
        )
    )
    assert run_json("show", "s1", str(path))["session"]["session_id"] == "s1"


def test_unknown_id_exits_1_naming_the_closest_ids():
    result = run("show", "sess-suport-1", str(REAL))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("sessions: error: no session 'sess-suport-1'; closest: ")
    assert "sess-support-1" in result.stderr.splitlines()[0]


def test_ambiguous_prefix_exits_1_listing_the_candidates():
    result = run("timeline", "sess-", str(REAL))
    assert result.exit_code == 1
    assert result.stderr == (
        "sessions: error: session prefix 'sess-' is ambiguous: it matches sess-batch-3, "
        "sess-handoff-2, sess-research-7, sess-support-1\n"
    )


def test_a_trace_without_session_is_not_a_session():
    result = run("show", "healthcheck", str(REAL))
    assert result.exit_code == 1
    assert "no session 'healthcheck'" in result.stderr


# ---------------------------------------------------------------------------------------------
# show


@pytest.mark.parametrize("session_id", ["sess-support-1", "sess-research-7", "sess-batch-3",
                                        "sess-handoff-2"])  # fmt: skip
def test_show_totals_equal_the_list_row_and_the_sum_of_its_traces(session_id):
    listed = by_id(run_json("list", str(REAL)))[session_id]
    shown = run_json("show", session_id, str(REAL))
    assert shown["session"] == listed
    traces = shown["traces"]
    assert len(traces) == listed["trace_count"]
    for field in ("span_count", "llm_call_count", "input_tokens", "output_tokens", "total_tokens"):
        assert sum(t[field] for t in traces) == listed[field], field
    known = [t["cost_usd"] for t in traces if t["cost_usd"] is not None]
    if listed["cost_usd"] is None:  # unknown: no trace of it has a known cost either
        assert known == []
    else:
        assert sum(known) == pytest.approx(listed["cost_usd"], abs=1e-12)
    assert sum(t["status"] == "error" for t in traces) == listed["failed_trace_count"]
    assert min(t["start"] for t in traces) == listed["start"]
    assert max(t["end"] for t in traces) == listed["end"]
    assert [t["start"] for t in traces] == sorted(t["start"] for t in traces)


def test_show_json_has_the_contract_fields():
    shown = run_json("show", "sess-research-7", str(REAL))
    assert list(shown) == ["session", "traces"]
    assert list(shown["traces"][0]) == [
        "trace_id", "trace_name", "start", "end", "start_unix_ms", "end_unix_ms", "duration_ms",
        "span_count", "llm_call_count", "input_tokens", "output_tokens", "total_tokens",
        "cost_usd", "status", "models",
    ]  # fmt: skip


def test_show_table_has_a_summary_and_marks_failed_traces():
    result = run("show", "sess-research-7", str(REAL))
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for label, value in [
        ("Session:", "sess-research-7"),
        ("Name:", "Market research"),
        ("Traces:", "2 (1 failed)"),
        ("Spans:", "5 (2 with errors)"),
        ("LLM calls:", "3"),
        ("Tokens:", "9,200 (8,000 in, 1,200 out)"),
        ("Cost:", "$0.0393 (source: mixed)"),
        ("Models:", "claude-3-5-sonnet-20241022"),
        ("Tags:", "research"),
        ("Metadata:", "plan=team"),
    ]:
        line = next(x for x in text.splitlines() if x.startswith(label))
        assert line.split(None, len(label.split()))[-1] == value, line
    rows = [x for x in text.splitlines() if "research-step" in x]
    assert len(rows) == 2
    assert sum("✗ error" in row for row in rows) == 1


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_show_delimited_formats_give_the_trace_rows(fmt):
    result = run("show", "sess-support-1", str(REAL), "--format", fmt)
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout), delimiter="," if fmt == "csv" else "\t"))
    shown = run_json("show", "sess-support-1", str(REAL))["traces"]
    assert [r["trace_id"] for r in rows] == [t["trace_id"] for t in shown]
    assert [int(r["total_tokens"]) for r in rows] == [t["total_tokens"] for t in shown]


def test_show_jsonl_and_markdown_give_the_trace_rows():
    shown = run_json("show", "sess-support-1", str(REAL))["traces"]
    jsonl = run("show", "sess-support-1", str(REAL), "--format", "jsonl").stdout
    assert [json.loads(line) for line in jsonl.splitlines()] == shown
    markdown = run("show", "sess-support-1", str(REAL), "--format", "markdown").stdout.splitlines()
    assert markdown[0].startswith("| trace_id")
    assert len(markdown) == 2 + len(shown)


def test_show_columns_pick_trace_fields():
    result = run("show", "sess-support-1", str(REAL), "--csv", "--columns", "trace_id,cost_usd")
    assert result.stdout.splitlines()[0] == "trace_id,cost_usd"
    assert run("show", "sess-support-1", str(REAL), "--columns", "nope").exit_code == 2


# ---------------------------------------------------------------------------------------------
# timeline: order, depth, offsets


def test_trace_events_in_start_order_with_offsets_from_the_session_start(tree):
    rows = events(SESSION, str(tree))
    assert [(r["kind"], r["name"], r["offset_ms"], r["duration_ms"]) for r in rows] == [
        ("trace", "a", 0.0, 1000.0),
        ("trace", "x", 5000.0, 500.0),  # x: the cycle's earliest span, B's first root
    ]
    first = rows[0]
    assert (first["input_tokens"], first["output_tokens"]) == (40, 4)
    assert first["cost_usd"] == pytest.approx(0.04)
    assert first["model"] == "m"
    assert first["status"] == "ok"  # the root did not fail; d did


def test_span_tree_depth_first_children_in_start_order(tree):
    rows = events(SESSION, str(tree), "--spans")
    assert [(r["kind"], r["name"], r["depth"]) for r in rows] == [
        ("trace", "a", None),
        ("span", "a", 0),
        ("span", "b", 1),
        ("span", "c", 1),
        ("span", "d", 2),
        ("span", "e", 0),  # its parent is missing: a root, after a (which started earlier)
        ("trace", "x", None),
        ("span", "x", 0),  # the cycle x <-> y is cut at its earliest span, a root
        ("span", "y", 1),
        ("span", "z", 0),  # its own parent: a root
    ]
    by_name = {(r["kind"], r["name"]): r for r in rows}
    d = by_name[("span", "d")]
    assert (d["offset_ms"], d["duration_ms"], d["status"]) == (600.0, 100.0, "error")
    assert d["parent_span_id"] == by_name[("span", "c")]["span_id"]
    # A span's tokens and cost are its own LLM call's; wrappers and plain spans have none.
    assert (by_name[("span", "c")]["input_tokens"], by_name[("span", "c")]["cost_usd"]) == (
        30,
        0.03,
    )
    assert by_name[("span", "a")]["input_tokens"] is None


def test_depth_cuts_the_tree_and_implies_spans(tree):
    rows = events(SESSION, str(tree), "--depth", "1")
    assert [r["name"] for r in rows if r["kind"] == "span"] == ["a", "b", "c", "e", "x", "y", "z"]
    assert [r["name"] for r in events(SESSION, str(tree), "--depth", "0")] == [
        "a", "a", "e", "x", "x", "z",
    ]  # fmt: skip


def test_limit_keeps_the_first_rows_and_says_so(tree):
    result = run("timeline", SESSION, str(tree), "--spans", "--limit", "3", "--json")
    assert [r["name"] for r in json.loads(result.stdout)] == ["a", "a", "b"]
    assert result.stderr.splitlines() == [
        "sessions: warning: 1 span names itself as parent: taken as a root",
        "sessions: warning: 1 parent cycle (a -> b -> a): the earliest span of each is taken as "
        "a root",
        "sessions: showing the first 3 of 10 rows",
    ]


def test_timeline_event_fields_and_formats(tree):
    rows = events(SESSION, str(tree), "--spans")
    assert list(rows[0]) == [
        "kind", "trace_id", "span_id", "parent_span_id", "depth", "name", "start", "end",
        "start_unix_ms", "end_unix_ms", "offset_ms", "duration_ms", "status", "model", "models",
        "input_tokens", "output_tokens", "cost_usd",
    ]  # fmt: skip
    jsonl = run("timeline", SESSION, str(tree), "--spans", "--format", "jsonl").stdout
    assert [json.loads(line) for line in jsonl.splitlines()] == rows
    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        text = run("timeline", SESSION, str(tree), "--spans", "--format", fmt).stdout
        parsed = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
        assert [(r["kind"], r["name"], r["depth"]) for r in parsed] == [
            (r["kind"], r["name"], "" if r["depth"] is None else str(r["depth"])) for r in rows
        ]
    markdown = run("timeline", SESSION, str(tree), "--format", "markdown").stdout.splitlines()
    assert markdown[0].startswith("| kind")
    assert len(markdown) == 4


def test_real_capture_offsets_match_the_trace_starts():
    shown = run_json("show", "sess-support-1", str(REAL))
    rows = events("sess-support-1", str(REAL))
    origin = shown["session"]["start"]
    assert [r["trace_id"] for r in rows] == [t["trace_id"] for t in shown["traces"]]
    assert rows[0]["offset_ms"] == 0.0
    assert rows[0]["start"] == origin
    for row, trace in zip(rows, shown["traces"], strict=True):
        assert row["duration_ms"] == trace["duration_ms"]
        assert row["cost_usd"] == pytest.approx(trace["cost_usd"])


def test_a_session_of_twenty_thousand_spans(tmp_path):
    """Wide and deep at once: 200 traces of 100 spans, each a chain 10 deep."""
    docs = []
    for t in range(200):
        spans = []
        for i in range(100):
            parent = None if i == 0 else (f"{t}-{i - 1}" if i % 10 else f"{t}-0")
            session = {"session__id": "sess-big"} if i == 0 else {}
            spans.append(span(f"tr{t}", f"{t}-{i}", parent=parent, name=f"s{i}",
                              start_ms=t * 1000 + i, end_ms=t * 1000 + 500, **session))  # fmt: skip
        docs.append(document(*spans))
    path = tmp_path / "big.jsonl"
    path.write_text(lines(*docs))
    rows = events("sess-big", str(path), "--spans")
    assert len(rows) == 200 + 20_000
    assert max(r["depth"] for r in rows if r["kind"] == "span") == 10
    cut = events("sess-big", str(path), "--depth", "2")
    assert {r["depth"] for r in cut if r["kind"] == "span"} == {0, 1, 2}
    drawn = run(
        "timeline", "sess-big", str(path), "--spans", "--limit", "50", env={"COLUMNS": "80"}
    )
    assert drawn.exit_code == 0
    assert len(drawn.stdout.splitlines()) == 2 + 2 + 50


# ---------------------------------------------------------------------------------------------
# timeline: the drawing


def drawing(*args: str, columns: int) -> str:
    result = run("timeline", *args, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("columns", [80, 160])
@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("small_spans", ["sess-support-1", str(REAL), "--spans"]),
        ("large_traces", ["sess-6f3a", str(GENERATED)]),
        ("large_spans", ["sess-6f3a", str(GENERATED), "--spans", "--limit", "40"]),
    ],
)
def test_golden_timelines(name, args, columns):
    """Golden renderings; regenerate with UPDATE_GOLDEN=1 after checking them by eye."""
    text = drawing(*args, columns=columns)
    golden = GOLDEN / f"timeline_{name}_{columns}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert all(len(line) <= columns for line in text.splitlines()[2:])


def test_bars_are_placed_on_the_time_axis(tree):
    text = drawing(SESSION, str(tree), "--ascii", columns=100)
    header, rule, first, idle, second = text.splitlines()[2:]
    bar_start = rule.index("+")
    assert header[bar_start] == "0"
    first_bar, second_bar = first[bar_start:], second[bar_start:]
    width = len(rule) - bar_start
    # a runs 0-1000 ms of 5500: from the first cell; x runs 5000-5500: the last eleventh.
    assert first_bar.startswith("#")
    assert first_bar.rstrip() == "#" * len(first_bar.rstrip())
    assert len(first_bar.rstrip()) == pytest.approx(width * 1000 / 5500, abs=1)
    assert second_bar.lstrip(" ").startswith("#")
    assert len(second_bar) - len(second_bar.lstrip(" ")) == pytest.approx(
        width * 5000 / 5500, abs=1
    )
    assert "(idle)" in idle
    assert "." in idle[bar_start:]
    # Round ticks, each label starting at its tick on the rule.
    for label, ms in [("2s", 2000), ("4s", 4000)]:
        column = bar_start + int(ms * width / 5500)
        assert header[column:].startswith(label)
        assert rule[column] == "+"


def test_errors_are_marked_and_plain_ascii_stays_ascii(tree):
    text = drawing(SESSION, str(tree), "--spans", "--ascii", columns=120)
    d_row = next(line for line in text.splitlines() if "! d" in line)
    assert "error" in d_row
    assert "X" in d_row
    assert text.splitlines()[2:] == [line for line in text.splitlines()[2:] if line.isascii()]


def test_colour_only_when_asked_and_never_with_no_color(tree, monkeypatch):
    from sessions_cli.cli import steps

    assert "\x1b[" not in drawing(SESSION, str(tree), columns=100)  # not a terminal
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert steps.colour_wanted()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not steps.colour_wanted()


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "+0ms"), (349.6, "+350ms"), (999.6, "+1.0s"), (4200, "+4.2s"), (59_970, "+1m 00.0s"),
     (62_300, "+1m 02.3s"), (7_390_000, "+2h 03m 10s")],
)  # fmt: skip
def test_offsets_read_like_a_stopwatch(ms, text):
    assert humanise.offset(ms) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0"), (250, "250ms"), (1500, "1.5s"), (30_000, "30s"), (120_000, "2m"),
     (90_000, "1m30s"), (5_400_000, "1h30m"), (172_800_000, "2d")],
)  # fmt: skip
def test_ruler_labels_are_round(ms, text):
    assert humanise.tick_label(ms) == text


@pytest.fixture
def tree_events(tree):
    """The tree session's events with spans, and the drawing's time bounds."""
    spans, _ = loading.read_spans([inputs.Source(str(tree), tree)], attributes.CHAINS)
    built = model.build(spans)
    one = timeline.session(built, SESSION)
    return timeline.events(built, one, spans=True), dict(origin_ns=one.start_ns, end_ns=one.end_ns)


def test_a_drawing_made_a_block_at_a_time_is_the_same_drawing(tree_events):
    """Rows are drawn a block at a time, so that 1M spans are never held as text: widths,
    idle rows and bars must not depend on where the blocks fall."""
    rows, bounds = tree_events
    kwargs = dict(bounds, width=80)
    whole = "".join(draw.timeline(rows, **kwargs))
    assert "(idle)" in whole
    assert whole.count("\n") == 2 + rows.height + 1  # headers, rule, each row, the idle row
    for block in (1, 2, 5):
        assert "".join(draw.timeline(rows, block=block, **kwargs)) == whole


def test_colour_marks_bars_only(tree_events):
    rows, bounds = tree_events
    kwargs = dict(bounds, width=100)
    plain_text = "".join(draw.timeline(rows, **kwargs))
    coloured = "".join(draw.timeline(rows, colour=True, **kwargs))
    assert "\x1b[" not in plain_text
    lines = coloured.splitlines()
    assert "\x1b[" not in lines[0] + lines[1]  # headers and ruler stay plain
    d_row = next(line for line in lines if "✗ d" in line)
    assert "\x1b[31m" in d_row  # the failed span's bar is red
    assert "\n".join(click.unstyle(line) for line in lines) + "\n" == plain_text


def test_timeline_title_counts_traces_in_words():
    one = run("timeline", "sess-37dd86d8e9ad", str(GENERATED), "--ascii")
    assert " · 1 trace · " in one.stdout.splitlines()[0]
    three = run("timeline", "sess-support-1", str(REAL), "--ascii")
    assert " · 3 traces · " in three.stdout.splitlines()[0]


def test_timeline_of_a_session_without_times_is_a_clear_error_not_an_internal_one(tmp_path):
    # The only span has no start or end: the session exists, but nothing can be drawn.
    raw = span("t", "root", name="root", session__id="untimed")
    del raw["startTimeUnixNano"], raw["endTimeUnixNano"]
    path = tmp_path / "untimed.jsonl"
    path.write_text(lines(document(raw)))
    drawn = run("timeline", "untimed", str(path))
    assert drawn.exit_code == 1
    assert "sessions: error: untimed: no span of this session has times" in drawn.stderr
    assert "internal error" not in drawn.stderr
    (row,) = run_json("timeline", "untimed", str(path))
    assert row["start"] is None
    assert row["name"] == "root"


def test_a_deep_chain_is_drawn_with_a_bounded_indent_and_its_depth_as_a_number(tmp_path):
    """Two columns a level, then the depth written out: a chain of 100,000 spans once made
    rows 200,000 columns wide (10 GB of text). Depths here are worked out from the chain."""
    depth = 40
    chain = [
        span("deep", f"{i:016x}", parent=f"{i - 1:016x}" if i > 1 else None, name=f"n{i}",
             start_ms=i, end_ms=2 * depth - i, **({"session__id": "s-deep"} if i == 1 else {}))
        for i in range(1, depth + 1)
    ]  # fmt: skip
    path = tmp_path / "deep.jsonl"
    path.write_text(lines(document(*chain)))
    result = run("timeline", "s-deep", str(path), "--spans", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    named = {line.split()[2] if "[" not in line else line.split()[3]: line
             for line in result.stdout.splitlines() if " n" in line}  # fmt: skip
    assert len(named) == depth
    assert "  n3 " in named["n3"]  # depth 2: indented
    assert "[" not in named["n3"]  # with no number
    assert "[39] n40" in named["n40"]  # the leaf, 39 levels down
    indent = [named[f"n{i}"].index(f"n{i}") for i in range(1, depth + 1)]
    assert max(indent) - min(indent) < 2 * 12 + len("[39] ")
