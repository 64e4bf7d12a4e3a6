"""The real agentmark-sdk capture (scripts/capture_agentmark.py), checked against hand-computed
figures. The script fixes every token count; prices are the providers' list prices per million
tokens (gpt-4o-mini $0.15/$0.60, gpt-4o $2.50/$10, claude-3-5-sonnet $3/$15,
gemini-2.0-flash $0.10/$0.40)."""

from __future__ import annotations

import gzip

import pytest
import zstandard

from tests.conftest import REAL, REAL_PROTO, by_id, run, run_json

M = 1_000_000
EXPECTED = {
    # 3 turns; each wrapper `invoke_agent` repeats its children's usage and is not counted.
    "sess-support-1": dict(
        session_name="Refund request",
        session_name_source="attribute",
        user_id="alice",
        users=["alice"],
        trace_count=3,
        span_count=16,
        llm_call_count=5,
        input_tokens=1200 + 1500 + 1800 + 2100 + 2400,
        output_tokens=150 + 90 + 200 + 120 + 300,
        cost_usd=(6600 * 0.15 + 560 * 0.60 + 2400 * 2.50 + 300 * 10) / M,
        cost_source="price_table",
        unpriced_call_count=0,
        error_count=0,
        failed_trace_count=0,
        models=["gpt-4o", "gpt-4o-mini"],
        tags=["prod", "support"],
        metadata={"plan": "pro", "region": "eu"},
    ),
    # One call priced from the table, one carrying its own cost, one failed before usage.
    "sess-research-7": dict(
        session_name="Market research",
        session_name_source="attribute",
        user_id="bob",
        users=["bob"],
        trace_count=2,
        span_count=5,
        llm_call_count=3,
        input_tokens=8000,
        output_tokens=1200,
        cost_usd=(5000 * 3 + 800 * 15) / M + 0.0123,
        cost_source="mixed",
        unpriced_call_count=0,
        error_count=2,
        failed_trace_count=1,
        models=["claude-3-5-sonnet-20241022"],
        tags=["research"],
        metadata={"plan": "team"},
    ),
    # Session id only on a child span; a model with no known price; no session name attribute:
    # the first trace's name (the script's root span, `batch-summarise`).
    "sess-batch-3": dict(
        session_name="batch-summarise",
        session_name_source="trace",
        user_id="carol",
        users=["carol"],
        trace_count=2,
        span_count=6,
        llm_call_count=2,
        input_tokens=1280,
        output_tokens=128,
        cost_usd=None,  # unknown, not $0
        cost_source="none",
        unpriced_call_count=2,
        error_count=0,
        failed_trace_count=0,
        models=["acme-local-7b"],
        tags=[],
        metadata={},
    ),
    "sess-handoff-2": dict(
        session_name="triage",  # no name attribute: its first trace's root span
        session_name_source="trace",
        user_id="dave",
        users=["dave", "erin"],
        trace_count=2,
        span_count=4,
        llm_call_count=2,
        input_tokens=1800,
        output_tokens=200,
        cost_usd=(1800 * 0.10 + 200 * 0.40) / M,
        cost_source="price_table",
        unpriced_call_count=0,
        error_count=0,
        failed_trace_count=0,
        models=["gemini-2.0-flash"],
        tags=[],
        metadata={},
    ),
}


def check(rows: list[dict]) -> None:
    sessions = by_id(rows)
    assert set(sessions) == set(EXPECTED)
    for session_id, expected in EXPECTED.items():
        row = sessions[session_id]
        for field, want in expected.items():
            got = row[field]
            if field == "cost_usd" and want is not None:
                assert got == pytest.approx(want, rel=1e-9), (session_id, field)
            else:
                assert got == want, (session_id, field)
        assert row["total_tokens"] == expected["input_tokens"] + expected["output_tokens"]
        assert row["end"] > row["start"]
        assert row["duration_ms"] > 0


def test_real_capture_sessions_match_hand_computed_figures():
    check(run_json("list", str(REAL)))


def test_protobuf_json_form_gives_the_same_sessions():
    assert run_json("list", str(REAL_PROTO)) == run_json("list", str(REAL))


def test_gzip_and_zstd_of_protobuf_json_give_the_same_sessions(tmp_path):
    data = REAL_PROTO.read_bytes()
    (tmp_path / "a.gz").write_bytes(gzip.compress(data))
    (tmp_path / "b.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    check(run_json("list", str(tmp_path / "a.gz")))
    check(run_json("list", str(tmp_path / "b.zst")))


def test_file_given_twice_counts_each_span_once():
    check(run_json("list", str(REAL), str(REAL)))
    check(run_json("list", str(REAL), str(REAL_PROTO)))


def test_stdin_gives_the_same_sessions():
    check(run_json("list", input=REAL.read_bytes()))
    check(run_json("list", "-", input=REAL.read_bytes()))


def test_orphans_are_the_traces_without_session():
    rows = by_id(run_json("list", "--orphans", str(REAL)), "trace_name")
    assert set(rows) == {"healthcheck", "one-off-classify"}
    assert rows["one-off-classify"]["user_id"] == "alice"
    assert rows["one-off-classify"]["total_tokens"] == 330
    assert rows["one-off-classify"]["cost_usd"] == pytest.approx((300 * 0.15 + 30 * 0.6) / M)
    assert rows["healthcheck"]["llm_call_count"] == 0


def test_table_lists_every_session_for_people():
    result = run("list", str(REAL))
    assert result.exit_code == 0
    # Only the model without a price is noted, once, with the way to give one.
    [note] = result.stderr.splitlines()
    assert "2 LLM calls have tokens but no price, so their cost is unknown" in note
    assert "acme-local-7b (2)" in note
    assert "--prices FILE" in note
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["SESSION", "NAME", "USER"]
    assert len(lines) == 2 + len(EXPECTED)
    assert "$0.0393" in result.stdout  # the research session, money as people read it
    assert "9,860" in result.stdout  # thousands separators
    [batch] = [line for line in lines if line.startswith("sess-batch-3")]
    assert batch.split()[-2] == "?"  # its cost is unknown, not $0
