"""Aggregation rules of contract §3, on spans built in each test."""

from __future__ import annotations

import json

import polars as pl
import pytest

from sessions_cli.model import pricing
from sessions_cli.model import sessions as model
from sessions_cli.read import keys as attributes
from sessions_cli.read import otlp
from tests.conftest import run_json
from tests.otlp_builder import document, hex_id, lines, span


def build(*spans, cost_mode="auto", prices=None, resource=None):
    line = json.dumps(document(*spans, resource=resource))
    frame = otlp.spans_from_lines(pl.Series([line]), attributes.CHAINS)
    return model.build(frame, cost_mode=cost_mode, prices=prices)


def usage(i, o, m="acme-x", **extra):
    return dict(
        gen_ai__usage__input_tokens=i,
        gen_ai__usage__output_tokens=o,
        gen_ai__request__model=m,
        gen_ai__operation__name="chat",
        **extra,
    )


def test_wrapper_usage_is_ignored_when_a_descendant_carries_usage():
    m = build(
        span("t", "r", session__id="s", **usage(100, 50)),
        span("t", "a", parent="r", **usage(60, 30)),
        span("t", "b", parent="a", **usage(60, 30)),
        span("t", "c", parent="r", **usage(40, 20)),
    )
    [row] = m.sessions.to_dicts()
    assert (row["input_tokens"], row["output_tokens"], row["llm_call_count"]) == (100, 50, 2)
    counted = m.spans.filter("counted")["span_id"].to_list()
    assert sorted(counted) == [hex_id("b", 16), hex_id("c", 16)]


def test_trace_belongs_to_its_roots_session_not_a_childs():
    m = build(
        span("t", "r", session__id="root-session", start_ms=5),
        span("t", "c", parent="r", session__id="child-session", start_ms=0),
    )
    assert m.sessions["session_id"].to_list() == ["root-session"]
    assert m.sessions["span_count"].to_list() == [2]


def test_without_a_root_session_the_earliest_span_with_one_wins():
    m = build(
        span("t", "r", start_ms=0),
        span("t", "late", parent="r", session__id="late", start_ms=9),
        span("t", "early", parent="r", session__id="early", start_ms=3),
    )
    assert m.sessions["session_id"].to_list() == ["early"]


@pytest.mark.parametrize("value", ["", "  ", "null"])
def test_empty_and_null_session_ids_mean_no_session(value):
    m = build(span("t", "r", session__id=value))
    assert m.sessions.is_empty()
    assert m.orphans.height == 1


def test_session_ids_are_trimmed():
    m = build(span("t", "r", session__id="  s-1 "))
    assert m.sessions["session_id"].to_list() == ["s-1"]


def test_failed_model_call_without_usage_is_an_llm_call():
    m = build(
        span("t", "r", session__id="s"),
        span("t", "x", parent="r", name="ai.generateText.doGenerate", error=True),
        span("t", "y", parent="r", name="tool", error=True),
    )
    [row] = m.sessions.to_dicts()
    assert row["llm_call_count"] == 1
    assert row["error_count"] == 2
    assert row["failed_trace_count"] == 0  # the root did not fail


def test_times_use_nanoseconds_and_end_is_the_latest_end():
    m = build(
        span("t", "r", session__id="s", start_ms=0, end_ms=10),
        span("t", "c", parent="r", start_ms=5, end_ms=250),  # ends after the root
    )
    [row] = m.sessions.to_dicts()
    assert row["duration_ms"] == 250.0


def test_parent_cycle_and_self_parent_terminate():
    m = build(
        span("t", "a", parent="b", session__id="s", **usage(1, 1)),
        span("t", "b", parent="a", **usage(2, 2)),
        span("u", "c", parent="c", session__id="s2", **usage(3, 3)),
    )
    sessions = {r["session_id"]: r for r in m.sessions.to_dicts()}
    assert set(sessions) == {"s", "s2"}
    assert sessions["s2"]["input_tokens"] == 3  # a self-parent is a root


def test_cost_modes_and_price_overrides():
    spans = (
        span("t", "r", session__id="s"),
        span(
            "t", "a", parent="r", **usage(1000, 100, m="my-model", agentmark__usage__cost_usd=0.5)
        ),
        span("t", "b", parent="r", **usage(1000, 100, m="my-model")),
    )
    prices = {"my-model": (2.0, 10.0)}  # USD per million tokens
    table = (1000 * 2.0 + 100 * 10.0) / 1e6
    auto = build(*spans, prices=prices).sessions.row(0, named=True)
    assert auto["cost_usd"] == pytest.approx(0.5 + table)
    assert auto["cost_source"] == "mixed"
    attribute = build(*spans, cost_mode="attribute", prices=prices).sessions.row(0, named=True)
    assert attribute["cost_usd"] == pytest.approx(0.5)
    assert (attribute["cost_source"], attribute["unpriced_call_count"]) == ("attribute", 1)
    calculate = build(*spans, cost_mode="calculate", prices=prices).sessions.row(0, named=True)
    assert calculate["cost_usd"] == pytest.approx(2 * table)
    assert calculate["cost_source"] == "price_table"


@pytest.mark.parametrize("bad", ["-1", "NaN", "Infinity", "abc"])
def test_invalid_cost_attribute_falls_back_to_the_price_table(bad):
    m = build(
        span(
            "t",
            "r",
            session__id="s",
            **usage(1000, 0, m="my-model"),
            agentmark__usage__cost_usd=bad,
        ),
        prices={"my-model": (1.0, 0.0)},
    )
    assert m.sessions.row(0, named=True)["cost_usd"] == pytest.approx(0.001)


def test_token_values_as_float_text_count_and_garbage_does_not():
    m = build(
        span(
            "t",
            "r",
            session__id="s",
            gen_ai__usage__input_tokens="12.0",
            gen_ai__usage__output_tokens="lots",
            gen_ai__request__model="m",
        )
    )
    row = m.sessions.row(0, named=True)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (12, 0, 12)


def test_key_precedence_first_present_wins():
    m = build(
        span(
            "t",
            "r",
            session__id="s",
            gen_ai__request__model="requested",
            gen_ai__response__model="served",
            **{"user.id": "second", "agentmark.user_id": "first"},
        )
    )
    spans = m.spans.row(0, named=True)
    assert (spans["model"], spans["user_id"]) == ("served", "first")


def test_lists_within_one_trace_come_out_sorted_and_distinct():
    """A trace gathers its users and tags in no order (only the sessions' unions read them),
    and its models from its per-model rows: what is shown is sorted and distinct either way."""
    m = build(
        span("t1", "r", session__id="s", agentmark__user_id="zed", agentmark__tags="y, x",
             **usage(10, 1, m="zz-model")),
        span("t1", "a", parent="r", start_ms=1, agentmark__user_id="amy",
             agentmark__tags="x, w", **usage(10, 1, m="aa-model")),
        span("t1", "b", parent="r", start_ms=2, agentmark__user_id="zed",
             **usage(10, 1, m="zz-model")),
    )  # fmt: skip
    session = m.sessions.row(0, named=True)
    assert session["users"] == ["amy", "zed"]
    assert session["user_id"] == "zed"  # the root's, first in the contract's order
    assert session["tags"] == ["w", "x", "y"]
    assert session["models"] == ["aa-model", "zz-model"]
    assert m.traces.row(0, named=True)["models"] == ["aa-model", "zz-model"]


def test_metadata_tags_and_users_merge_across_traces():
    m = build(
        span(
            "t1",
            "r",
            session__id="s",
            start_ms=0,
            agentmark__tags="a, b",
            agentmark__metadata__plan="pro",
            agentmark__user_id="u1",
        ),
        span(
            "t2",
            "r",
            session__id="s",
            start_ms=50,
            agentmark__tags='["b","c"]',
            agentmark__metadata__plan="free",
            agentmark__metadata__team="x",
            agentmark__user_id="u2",
        ),
    )
    row = m.sessions.row(0, named=True)
    assert row["tags"] == ["a", "b", "c"]
    assert {kv["key"]: kv["value"] for kv in row["metadata"]} == {"plan": "pro", "team": "x"}
    assert (row["user_id"], row["users"]) == ("u1", ["u1", "u2"])


def test_price_rates_are_cached_on_disk_and_a_broken_cache_is_ignored(tmp_path, monkeypatch):
    from tests.conftest import REAL, run_json

    monkeypatch.setenv("SESSIONS_CACHE_DIR", str(tmp_path))
    first = run_json("list", str(REAL))
    (cache,) = tmp_path.glob("rates-v*-genai-prices-*.json")
    rates = json.loads(cache.read_text())
    assert rates["gpt-4o-mini\topenai"][0] is False  # not tiered
    assert rates["gpt-4o-mini\topenai"][2] == pytest.approx(0.15 / 1_000_000)
    assert rates["acme-local-7b\t"] == [
        False,
        None,
        None,
        None,
        None,
        None,
    ]  # unknown: remembered as such
    assert run_json("list", str(REAL)) == first  # from the cache
    cache.write_text("{not json")
    pricing._stored_rates.cache_clear()  # as a new process would: read the file again
    assert run_json("list", str(REAL)) == first
    assert json.loads(cache.read_text()) == rates  # rebuilt from the price table


def test_groups_built_side_by_side_add_up_to_one_frame_notices_included():
    """Groups of whole traces (as a spilled store gives them) are summarised two at a time on
    threads: traces, sessions and the notices each group found must add up to what one frame
    gives."""
    traces = [
        # a parent cycle, a self-parent, and a trace with two session ids: one of each notice
        (span("t1", "a", parent="b", session__id="s", **usage(1, 1)),
         span("t1", "b", parent="a", **usage(2, 2))),
        (span("t2", "c", parent="c", session__id="s2", **usage(3, 3)),),
        (span("t3", "r", session__id="s"), span("t3", "x", parent="r", session__id="s3")),
        (span("t4", "r", session__id="s4", **usage(5, 5)),),
        (span("t5", "d", parent="e", session__id="s5"), span("t5", "e", parent="d")),
    ]  # fmt: skip

    def frame(*spans):
        line = json.dumps(document(*spans))
        return otlp.spans_from_lines(pl.Series([line]), attributes.CHAINS)

    whole = model.build(frame(*(s for trace in traces for s in trace)))
    grouped = model.build(frame(*trace) for trace in traces)
    assert len(whole.notices) == 3
    assert grouped.notices == whole.notices
    assert grouped.sessions.to_dicts() == whole.sessions.to_dicts()
    assert grouped.traces.to_dicts() == whole.traces.to_dicts()


def test_a_chain_deeper_than_the_polars_levels_still_counts_usage_once(tmp_path):
    """Past 64 levels the ancestors are walked in Python: the same answer, linear time."""
    depth = 300
    chain = [
        span("deep", f"{i:016x}", parent=f"{i - 1:016x}" if i > 1 else None, start_ms=i,
             end_ms=i + 1, **({"session__id": "s-deep"} if i == 1 else {}),
             # the root and a middle span repeat the leaf's usage; only the leaf counts
             **({"gen_ai__usage__input_tokens": 7} if i in (1, 150, depth) else {}))
        for i in range(1, depth + 1)
    ]  # fmt: skip
    path = tmp_path / "deep.jsonl"
    path.write_text(lines(document(*chain)))
    [row] = run_json("list", str(path))
    assert (row["span_count"], row["input_tokens"], row["llm_call_count"]) == (depth, 7, 1)
