"""Invariants (hypothesis): order, file splits and re-sent batches never change a number."""

from __future__ import annotations

import io
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions_cli.model import sessions as model
from sessions_cli.query import stats
from sessions_cli.read import keys as attributes
from sessions_cli.read import sources as inputs
from sessions_cli.store import loading
from tests.conftest import run
from tests.otlp_builder import document, span

MODELS = ["gpt-4o-mini", "m-unpriced"]


@st.composite
def exports(draw):
    """A few traces, each a small tree; some spans carry usage, some a session id."""
    docs = []
    for t in range(draw(st.integers(1, 5))):
        trace = f"{t:032x}"
        session = draw(st.sampled_from([None, "s-a", "s-b", "s-c"]))
        count = draw(st.integers(1, 6))
        for i in range(count):
            parent = None if i == 0 else f"{draw(st.integers(0, i - 1)) + 1:016x}"
            attrs = {}
            if i == 0 and session:
                attrs["session.id"] = session
            if draw(st.booleans()):
                attrs["gen_ai.usage.input_tokens"] = draw(st.integers(0, 10_000))
                attrs["gen_ai.usage.output_tokens"] = draw(st.integers(0, 1_000))
                attrs["gen_ai.request.model"] = draw(st.sampled_from(MODELS))
                if draw(st.booleans()):
                    attrs["gen_ai.system"] = draw(st.sampled_from(["openai", "acme"]))
            start = draw(st.integers(0, 10_000))
            docs.append(
                document(
                    span(
                        trace,
                        f"{i + 1:016x}",
                        parent=parent,
                        start_ms=start,
                        end_ms=start + draw(st.integers(0, 5_000)),
                        error=draw(st.booleans()),
                        **{k.replace(".", "__"): v for k, v in attrs.items()},
                    )
                )
            )
    return docs


def sessions_of(tmp_path, files: list[list[dict]]):
    sources = []
    for n, docs in enumerate(files):
        path = tmp_path / f"part{n}.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        sources.append(inputs.Source(str(path), path))
    spans, _ = loading.read_spans(sources, attributes.CHAINS)
    return model.build(spans)


def totals(m: model.Model) -> list[tuple]:
    return sorted(m.sessions.drop("start", "end").rows()) + sorted(
        m.orphans.drop("start", "end", "start_ns", "end_ns").rows()
    )


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(exports(), st.randoms(use_true_random=False), st.integers(1, 4))
def test_shuffled_split_and_duplicated_inputs_give_identical_totals(tmp_path, docs, rnd, parts):
    expected = totals(sessions_of(tmp_path, [docs]))
    shuffled = docs[:]
    rnd.shuffle(shuffled)
    duplicated = shuffled + rnd.sample(shuffled, k=len(shuffled) // 2)
    split = [duplicated[i::parts] for i in range(parts)]
    assert totals(sessions_of(tmp_path, split)) == expected


@SETTINGS
@given(exports())
def test_each_span_in_one_trace_and_each_trace_in_at_most_one_session(tmp_path, docs):
    m = sessions_of(tmp_path, [docs])
    assert m.spans.select("trace_id", "span_id").is_unique().all()
    assert m.traces["trace_id"].is_unique().all()
    assert m.traces["span_count"].sum() == m.spans.height
    in_sessions = m.traces.filter(m.traces["session_id"].is_not_null())
    assert m.sessions["trace_count"].sum() == in_sessions.height
    assert m.sessions["span_count"].sum() + m.orphans["span_count"].sum() == m.spans.height


@SETTINGS
@given(exports())
def test_session_tokens_equal_the_deepest_usage_spans(tmp_path, docs):
    """Computed independently: a span counts when no descendant of it carries usage."""
    m = sessions_of(tmp_path, [docs])
    rows = m.spans.to_dicts()
    usage = {(r["trace_id"], r["span_id"]) for r in rows if r["input_tokens"] is not None}
    parent = {(r["trace_id"], r["span_id"]): r["parent_span_id"] for r in rows}
    covered = set()
    for trace_id, span_id in usage:
        p = parent[(trace_id, span_id)]
        while p is not None and (trace_id, p) in parent:
            covered.add((trace_id, p))
            p = parent[(trace_id, p)]
    expected = sum(
        r["input_tokens"] for r in rows if (r["trace_id"], r["span_id"]) in usage - covered
    )
    got = m.sessions["input_tokens"].sum() + m.orphans["input_tokens"].sum()
    assert got == expected


# Lines as they come in exports: JSON-ish text, blank and whitespace-only lines, CRLF endings.
_LINE = st.text(alphabet='{}[]":,ab é1 \t\r', max_size=40)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_LINE, max_size=30), block=st.integers(1, 64), last_newline=st.booleans())
def test_cutting_and_splitting_lines_loses_and_invents_nothing(lines, block, last_newline):
    """`_chunks` hands out every byte once, in order, cut after a newline, with the right first
    line numbers; polars' splitting gives the lines that Python's `str.split` gives."""
    data = "\n".join(lines).encode() + (b"\n" if last_newline and lines else b"")
    chunks = inputs._chunks(io.BufferedReader(io.BytesIO(data)), block, max_line_bytes=2**30)
    pieces = [(first, bytes(piece)) for first, piece in chunks]  # a view of a block, or bytes
    assert b"".join(piece for _, piece in pieces) == data
    for (first, piece), (after, _) in itertools.pairwise(pieces):
        assert piece.endswith(b"\n")
        assert after == first + piece.count(b"\n")
    assert not pieces or pieces[0][0] == 1

    batch = [inputs._Piece("x", first, piece) for first, piece in pieces]
    expected = [
        line.removesuffix("\r")  # polars drops the \r of a CRLF ending; JSON ignores it anyway
        for line in data.decode().split("\n")
        if line and not line.isspace()
    ]
    got = inputs._lines(batch) if batch else None
    assert (got.to_list() if got is not None else []) == expected


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(0, 5000), max_size=40), end=st.booleans())
def test_counting_lines_by_jumps_counts_every_newline(lengths, end):
    """Long lines are counted by jumping from newline to newline, short ones byte by byte."""
    data = b"\n".join(b"x" * n for n in lengths) + (b"\n" if end else b"")
    assert inputs._count_lines(data) == data.count(b"\n")
    start, stop = len(data) // 3, 2 * len(data) // 3  # a part of a block
    assert inputs._count_lines(data, start, stop) == data.count(b"\n", start, stop)


_FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(cents=st.lists(st.integers(0, 10**9), min_size=1, max_size=12), places=st.integers(2, 9))
def test_money_in_json_is_the_exact_decimal_sum_without_float_noise(tmp_path, cents, places):
    """Costs written with up to 9 decimal places add up, in JSON, to the shortest text of their
    exact decimal sum (worked out here with Python's Decimal), never 0.010326000000000002."""
    from decimal import Decimal

    from tests.conftest import run_json

    costs = [Decimal(c).scaleb(-places) for c in cents]
    # Sibling LLM calls under a root without usage: every call's cost counts once.
    calls = [
        span("t", f"c{i}", parent="root", name="chat", gen_ai__operation__name="chat",
             agentmark__usage__cost_usd=float(c))
        for i, c in enumerate(costs)
    ]  # fmt: skip
    root = span("t", "root", name="agent", session__id="s")
    path = tmp_path / "money.jsonl"
    path.write_text(json.dumps(document(root, *calls)) + "\n")
    (row,) = run_json("list", str(path))
    assert row["llm_call_count"] == len(costs)
    assert repr(row["cost_usd"]) == repr(float(sum(costs)))


@SETTINGS
@given(exports(), st.sampled_from(["model", "provider"]))
def test_groups_that_split_calls_add_up_to_the_totals(tmp_path, docs, by):
    m = sessions_of(tmp_path, [docs])
    total = stats.totals(m.sessions, m.orphans)
    groups = stats.groups(m.sessions, by)
    for field in ("llm_calls", "total_tokens", "unpriced_call_count"):
        assert groups.get_column(field).sum() == total[field], field
    known = groups.get_column("cost_usd").drop_nulls().sum()
    assert known == pytest.approx(total["cost_usd"] or 0.0, rel=1e-12, abs=1e-15)


@SETTINGS
@given(exports(), st.sampled_from(["model", "provider"]))
def test_groups_that_split_calls_count_each_trace_and_session_once(tmp_path, docs, by):
    """A trace with calls of one model under two providers (or the reverse) is one trace of
    that model (provider), counted here in Python from the LLM call spans themselves."""
    m = sessions_of(tmp_path, [docs])
    session_of = dict(m.traces.select("trace_id", "session_id").iter_rows())
    traces: dict = {}
    for trace_id, key in m.spans.filter("is_llm_call").select("trace_id", by).iter_rows():
        if session_of[trace_id] is not None:
            traces.setdefault(key, set()).add(trace_id)
    groups = stats.groups(m.sessions, by)
    got = {row["group"]: (row["traces"], row["sessions"]) for row in groups.iter_rows(named=True)}
    assert got == {
        key: (len(ids), len({session_of[t] for t in ids})) for key, ids in traces.items()
    }


@SETTINGS
@given(exports(), st.floats(0, 1e6))
def test_no_cost_budget_holds_over_unpriced_calls(tmp_path, docs, limit):
    m = sessions_of(tmp_path, [docs])
    budgets = stats.check_budgets(m.sessions, {"max_session_cost": limit, "max_total_cost": limit})
    if m.sessions.get_column("unpriced_call_count").sum():
        assert not any(b.held for b in budgets)


@settings(max_examples=15, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(exports(), st.integers(1, 3))
def test_every_input_form_gives_identical_numbers(tmp_path, docs, parts):
    """The same spans as OTLP JSON (in one file or several) and as span records written by
    `convert` (JSONL, CSV, Parquet) give the same sessions, field for field."""
    work = tmp_path / f"forms-{parts}-{len(docs)}"
    work.mkdir(exist_ok=True)
    otlp = work / "otlp"
    otlp.mkdir(exist_ok=True)
    for n in range(parts):
        (otlp / f"{n}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[n::parts]))
    expected = run("list", str(otlp), "--json")
    assert expected.exit_code == 0, expected.stderr
    for suffix in ("jsonl", "csv", "parquet"):
        converted = work / f"spans.{suffix}"
        assert run("convert", str(otlp), "-o", str(converted)).exit_code == 0
        again = run("list", str(converted), "--json")
        assert again.exit_code == 0, again.stderr
        assert json.loads(again.stdout) == json.loads(expected.stdout), suffix


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(st.lists(st.integers(0, 5), max_size=40), min_size=1, max_size=4),
    wanted=st.sets(st.integers(0, 5)),
    batch_rows=st.integers(1, 8),
)
def test_spilled_rows_come_back_by_bucket_in_the_order_written(
    tmp_path, monkeypatch, writes, wanted, batch_rows
):
    """Any set of buckets reads back as its rows, file after file, each file's by bucket and
    each bucket's in the order written, whatever slices of record batches that takes."""
    import polars as pl

    from sessions_cli.store.spans import Spilled

    monkeypatch.setattr(Spilled, "BATCH_ROWS", batch_rows)
    spilled = Spilled(6)
    expected = []
    for number, buckets in enumerate(writes):
        rows = [(bucket, f"{number}-{i}") for i, bucket in enumerate(buckets)]
        frame = pl.DataFrame(rows, schema={"b": pl.Int64, "row": pl.String}, orient="row")
        spilled.write(frame, pl.col("b"), tmp_path / f"part-{len(spilled)}-{number}.arrow")
        expected += [row for bucket in sorted(wanted) for row in rows if row[0] == bucket]
    read = spilled.read(wanted)
    assert read.columns == ["b", "row"]
    assert read.rows() == expected
    assert [spilled.rows(b) for b in range(6)] == [
        sum(row.count(b) for row in writes) for b in range(6)
    ]


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(["", "0" * 16, "0" * 32, "ab" * 8, "ab" * 16, "AB" * 8]),
            st.text(alphabet="0123456789abcdefABG \n\u00e9-", max_size=34),
        ),
        max_size=12,
    ),
    length=st.sampled_from([16, 32]),
)
def test_ids_are_hex_says_what_the_definition_says(ids, length):
    """Every id absent, empty or exactly `length` lowercase hex digits, checked one by one in
    Python, is what the joined-text check answers."""
    import polars as pl

    from sessions_cli.read.otlp import ids_are_hex

    def hex_id(value: str | None) -> bool:
        if value is None or value == "":
            return True
        return len(value) == length and all(c in "0123456789abcdef" for c in value)

    frame = pl.DataFrame({"id": ids}, schema={"id": pl.String})
    assert ids_are_hex(frame, (("id", length),)) == all(hex_id(v) for v in ids)


# Rows of a session table in small: (start, id) is unique, as (start, session_id) is.
STACK_ROWS = st.lists(
    st.tuples(st.none() | st.integers(0, 3), st.sampled_from("abc"),
              st.lists(st.integers(0, 9), max_size=2)),
    max_size=12, unique_by=lambda row: (row[0], row[1]),
)  # fmt: skip


@given(STACK_ROWS, st.lists(st.integers(0, 12), max_size=3))
def test_sorted_stack_is_the_parts_stacked_and_sorted(rows, cuts):
    """What sessions are put in order with, column by column, is a plain stack and sort."""
    import polars as pl

    from sessions_cli.frames import sorted_stack

    schema = {"start": pl.Int64, "id": pl.String, "calls": pl.List(pl.Int64)}
    edges = [0, *sorted(min(c, len(rows)) for c in cuts), len(rows)]
    parts = [
        pl.DataFrame(rows[a:b], schema=schema, orient="row") for a, b in itertools.pairwise(edges)
    ]
    expected = pl.concat(parts).sort("start", "id", nulls_last=True)
    given_parts = list(parts)
    assert sorted_stack(given_parts, by=("start", "id")).equals(expected)
    assert given_parts == []  # let go of, as the caller expects
