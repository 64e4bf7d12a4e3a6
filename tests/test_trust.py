"""Numbers and verdicts a user can trust (contract §3): nothing read is not a pass, unknown cost
is not zero, and groups that split sessions add up to the totals."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from sessions_cli.query.timeparse import parse_until
from tests.conftest import FIXTURES, REAL, SESSIONS, by_id, run, run_json
from tests.otlp_builder import document, lines, span

BUDGET = ("--max-session-cost", "0.25")


def test_a_budget_on_an_empty_directory_fails_instead_of_holding(tmp_path):
    result = run("stats", str(tmp_path), *BUDGET, "--format", "markdown")
    assert result.exit_code == 1
    assert "all budgets held" not in result.stdout
    assert f"read no spans from {tmp_path}, so no budget was checked" in result.stderr


def test_a_budget_on_a_directory_of_unreadable_files_fails(tmp_path):
    # Two files: a lone file in a directory is read as if named, and is an error of its own.
    (tmp_path / "notes.txt").write_text("not traces at all\n")
    (tmp_path / "todo.txt").write_text("nor this\n")
    result = run("stats", str(tmp_path), *BUDGET)
    assert result.exit_code == 1
    assert "read no spans" in result.stderr


def test_a_budget_on_empty_stdin_fails():
    result = run("stats", "-", "--max-total-tokens", "10", input=b"")
    assert result.exit_code == 1
    assert "read no spans from -" in result.stderr


def test_allow_empty_lets_an_empty_input_pass(tmp_path):
    result = run("stats", str(tmp_path), *BUDGET, "--allow-empty", "--json")
    assert result.exit_code == 0, result.stderr
    assert '"held": true' in result.stdout


def test_without_a_budget_empty_input_is_still_a_note_and_exit_0(tmp_path):
    result = run("stats", str(tmp_path))
    assert result.exit_code == 0
    assert "no spans found" in result.stderr


def test_a_budget_on_real_priced_spans_holds(tmp_path):
    prices = tmp_path / "prices.json"  # the one model of the capture without a bundled price
    prices.write_text('{"acme-local-7b": {"input_per_mtok": 0.2, "output_per_mtok": 0.4}}')
    result = run("stats", str(REAL), "--max-session-cost", "1", "--prices", str(prices))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("command", ["list", "stats"])
@pytest.mark.parametrize("path", ["", "  "])
def test_an_empty_path_is_a_usage_error_not_the_current_directory(command, path):
    result = run(command, path)
    assert result.exit_code == 2
    assert "an empty PATH was given" in result.stderr


# ---------------------------------------------------------------------------------------------
# Unknown is not zero (contract §3)

M = 1_000_000


def _calls(tmp_path, *calls) -> str:
    """One trace per (session, model, input, output) call; the file's path."""
    path = tmp_path / "calls.jsonl"
    path.write_text(
        lines(*(
            document(span(f"t{n}", "1", session__id=session, gen_ai__request__model=model,
                          gen_ai__usage__input_tokens=inp, gen_ai__usage__output_tokens=out))
            for n, (session, model, inp, out) in enumerate(calls)
        ))
    )  # fmt: skip
    return str(path)


@pytest.fixture
def mixed(tmp_path) -> str:
    # s-part: one gpt-4o-mini call (list price $0.15/$0.60 per million) and one unpriced call;
    # s-none: only an unpriced call; s-full: only priced.
    return _calls(tmp_path, ("s-part", "gpt-4o-mini", 1000, 100), ("s-part", "home-brew", 50, 5),
                  ("s-none", "home-brew", 70, 7), ("s-full", "gpt-4o-mini", 2000, 0))  # fmt: skip


def test_unpriced_cost_is_null_and_partly_priced_is_the_known_part(mixed):
    rows = by_id(run_json("list", mixed))
    assert rows["s-none"]["cost_usd"] is None
    assert rows["s-none"]["unpriced_call_count"] == 1
    assert rows["s-part"]["cost_usd"] == pytest.approx((1000 * 0.15 + 100 * 0.6) / M)
    assert rows["s-part"]["unpriced_call_count"] == 1
    assert rows["s-full"]["unpriced_call_count"] == 0
    csv_rows = {
        r["session_id"]: r for r in csv.DictReader(io.StringIO(run("list", mixed, "--csv").stdout))
    }
    assert csv_rows["s-none"]["cost_usd"] == ""  # null, not 0


def test_tables_show_unknown_as_a_question_mark_and_lower_bounds(mixed):
    result = run("list", mixed, "--columns", "session_id,cost_usd")
    cells = dict(line.split() for line in result.stdout.splitlines()[2:])
    assert cells == {"s-none": "?", "s-part": "≥$0.0002", "s-full": "$0.0003"}
    shown = run("show", "s-part", mixed).stdout
    assert "Cost:       ≥$0.0002 (source: price_table, 1 unpriced call)" in shown


def test_one_stderr_line_names_the_unpriced_models_of_what_is_shown(mixed):
    result = run("list", mixed)
    [note] = result.stderr.splitlines()
    assert note.startswith("sessions: warning: 2 LLM calls have tokens but no price")
    assert "home-brew (2)" in note
    assert '--prices FILE: {"home-brew"' in note
    assert run("list", mixed, "--user", "nobody").stderr == "sessions: no sessions match\n"
    assert run("show", "s-full", mixed).stderr == ""


def test_stats_totals_count_unpriced_calls(mixed):
    totals = run_json("stats", mixed)["totals"]
    assert totals["unpriced_call_count"] == 2
    assert totals["cost_usd"] == pytest.approx((3000 * 0.15 + 100 * 0.6) / M)
    table = run("stats", mixed).stdout
    assert "Cost:                      ≥$0.0005" in table


def test_a_provider_prefixed_model_is_priced_as_the_model(tmp_path):
    path = _calls(tmp_path, ("s", "openai/gpt-4o", 1000, 100))  # $2.50/$10 per million
    [row] = run_json("list", path)
    assert (row["cost_usd"], row["cost_source"]) == (pytest.approx(0.0035), "price_table")


def test_a_cost_budget_over_unpriced_calls_fails_as_unpriced(mixed):
    result = run("stats", mixed, "--max-session-cost", "5", "--json")
    assert result.exit_code == 3
    [budget] = json.loads(result.stdout)["budgets"]
    assert (budget["held"], budget["reason"], budget["unpriced_sessions"]) == (False, "unpriced", 2)
    assert "budget: session cost cannot be checked: 2 sessions have LLM calls without a price " \
           "(s-none, s-part)" in result.stderr  # fmt: skip
    markdown = run("stats", mixed, "--max-session-cost", "5", "--format", "markdown").stdout
    assert "❌ 1 of 1 budgets not checked (unpriced)" in markdown
    assert "✅" not in markdown


def test_allow_unpriced_checks_the_known_costs(mixed):
    held = run("stats", mixed, "--max-total-cost", "5", "--allow-unpriced", "--json")
    assert held.exit_code == 0, held.stderr
    over = run("stats", mixed, "--max-total-cost", "0.0001", "--allow-unpriced", "--json")
    assert over.exit_code == 3
    assert json.loads(over.stdout)["budgets"][0]["reason"] == "exceeded"
    # a proven breach is reported as one, priced or not
    breached = run("stats", mixed, "--max-total-cost", "0.0001", "--json")
    assert json.loads(breached.stdout)["budgets"][0]["reason"] == "exceeded"


def test_token_budgets_do_not_depend_on_prices(mixed):
    assert run("stats", mixed, "--max-session-tokens", "5000").exit_code == 0


# ---------------------------------------------------------------------------------------------
# Groups that split sessions


def test_by_model_gives_each_call_to_its_own_model():
    # sess-support-1: gpt-4o one call of 2,400 in / 300 out ($2.50/$10 per million);
    # gpt-4o-mini four calls, 6,600 in / 560 out ($0.15/$0.60).
    report = run_json("stats", str(REAL), "--by", "model")
    groups = {g["group"]: g for g in report["groups"]}
    assert report["group_unit"] == "llm_call"
    assert groups["gpt-4o"]["cost_usd"] == pytest.approx((2400 * 2.5 + 300 * 10) / M)
    assert groups["gpt-4o"]["llm_calls"] == 1
    assert groups["gpt-4o"]["total_tokens"] == 2700
    assert groups["gpt-4o-mini"]["cost_usd"] == pytest.approx((6600 * 0.15 + 560 * 0.6) / M)
    assert groups["gpt-4o-mini"]["traces"] == 3
    assert groups["gpt-4o-mini"]["sessions"] == 1
    assert groups["acme-local-7b"]["cost_usd"] is None
    assert run_json("stats", str(REAL), "--by", "user")["group_unit"] == "session"


@pytest.mark.parametrize("path", sorted(p.name for p in FIXTURES.glob("*.jsonl*")))
@pytest.mark.parametrize("by", ["model", "provider"])
def test_split_groups_add_up_to_the_totals_on_every_fixture(path, by):
    report = run_json("stats", str(FIXTURES / path), "--by", by)
    totals, groups = report["totals"], report["groups"]
    for field, total in (("llm_calls", "llm_calls"), ("total_tokens", "total_tokens"),
                         ("unpriced_call_count", "unpriced_call_count")):  # fmt: skip
        assert sum(g[field] for g in groups) == totals[total], field
    known = [g["cost_usd"] for g in groups if g["cost_usd"] is not None]
    assert sum(known) == pytest.approx(totals["cost_usd"], rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------------------------------------
# Flat span records get the same checks as OTLP; sums never wrap; the same bytes, the same spans

TRACE = "0123456789abcdef0123456789abcdef"


def _records(tmp_path, name: str, *records: dict) -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _record(n: int, **fields) -> dict:
    return {"trace_id": f"{n:032x}", "span_id": f"{n:016x}", "session_id": "s",
            "start_time_unix_nano": 1_790_000_000_000_000_000 + n,
            "end_time_unix_nano": 1_790_000_000_000_000_100 + n, **fields}  # fmt: skip


def test_a_negative_cost_in_a_record_is_ignored_with_a_warning(tmp_path):
    path = _records(tmp_path, "r.jsonl",
                    _record(1, input_tokens=10, cost_usd=-99.5, model="home-brew"),
                    _record(2, input_tokens=10, cost_usd=0.5))  # fmt: skip
    result = run("stats", path, "--max-session-cost", "0.5", "--allow-unpriced", "--json")
    assert f"{path}: 1 token count or cost that is not a non-negative number" in result.stderr
    report = json.loads(result.stdout)
    assert report["totals"]["cost_usd"] == 0.5  # not 0.5 - 99.5 = -99
    assert report["totals"]["unpriced_call_count"] == 1
    assert result.exit_code == 0  # 0.5 is the limit: it holds


@pytest.mark.parametrize("bad", [-3, "NaN", 12.5, "1e30", 2**63])
def test_bad_token_counts_in_csv_and_jsonl_are_ignored(tmp_path, bad):
    csv_path = tmp_path / "r.csv"
    csv_path.write_text(f"trace_id,span_id,session_id,input_tokens,output_tokens\n"
                        f"{TRACE},0123456789abcdef,s,{bad},7\n")  # fmt: skip
    jsonl = _records(tmp_path, "r.jsonl", _record(1, input_tokens=bad, output_tokens=7))
    for path in (str(csv_path), jsonl):
        result = run("list", path, "--json")
        [row] = json.loads(result.stdout)
        assert (row["input_tokens"], row["total_tokens"]) == (0, 7), path
        assert "not a non-negative number" in result.stderr


def test_a_missing_total_is_input_plus_output_so_token_budgets_trip(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(f"trace_id,span_id,session_id,input_tokens,output_tokens\n"
                    f"{TRACE},0123456789abcdef,s,900,200\n")  # fmt: skip
    [row] = run_json("list", str(path))
    assert row["total_tokens"] == 1100
    assert run("stats", str(path), "--max-session-tokens", "1000").exit_code == 3


@pytest.mark.parametrize(
    ("start", "end", "duration_ms"),
    [("2026-11-26T08:48:07.25Z", "2026-11-26T08:48:08.75Z", 1500.0),
     ("2026-11-26T10:48:07+02:00", "2026-11-26T08:48:08Z", 1000.0),
     ("2026-11-26 08:48:07", "2026-11-26T08:48:07.000000001", 1e-6)],
)  # fmt: skip
def test_iso_times_work_in_jsonl_and_csv(tmp_path, start, end, duration_ms):
    record = {"trace_id": TRACE, "span_id": "0123456789abcdef", "session_id": "s",
              "start": start, "end": end}  # fmt: skip
    jsonl = _records(tmp_path, "r.jsonl", record)
    csv_path = tmp_path / "r.csv"
    csv_path.write_text(f"trace_id,span_id,session_id,start,end\n"
                        f"{TRACE},0123456789abcdef,s,{start},{end}\n")  # fmt: skip
    for path in (jsonl, str(csv_path)):
        [row] = run_json("list", path)
        assert row["duration_ms"] == duration_ms, path
        assert row["start"].startswith("2026-11-26T08:48:07"), path


def test_record_status_text_in_any_case_is_read_not_a_crash(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(f"trace_id,span_id,name,status\n{TRACE},0123456789abcdef,x,ERROR\n"
                    f"{TRACE},0123456789abcdee,y,Ok\n")  # fmt: skip
    [row] = run_json("list", "--orphans", str(path))
    assert (row["status"], row["span_count"]) == ("error", 2)


def test_token_sums_never_wrap(tmp_path):
    most = 2**62 - 1  # the largest count a span may carry
    path = _records(tmp_path, "r.jsonl", *(_record(n, input_tokens=most) for n in (1, 2, 3)))
    [row] = run_json("list", path)
    assert row["input_tokens"] == 3 * most  # past 2^63: 64-bit sums would be negative
    totals = run_json("stats", path)["totals"]
    assert totals["total_tokens"] == 3 * most
    result = run("stats", path, "--max-total-tokens", str(2**63))
    assert result.exit_code == 3
    assert f"budget: total tokens {3 * most:,} > {2**63:,}" in result.stderr


def test_typed_counts_and_times_out_of_range_are_ignored_as_their_text_would_be(tmp_path):
    # Integer columns (Parquet, unsigned too) are checked as they are, without a text round
    # trip: the same rules as for "-5" or "4611686018427387904" written as text.
    import polars as pl

    records = [_record(n) for n in (1, 2, 3, 4)]
    tokens = [-5, 2**62, 7, 2**62 - 1]
    frame = pl.DataFrame(records).with_columns(
        pl.Series("input_tokens", tokens, dtype=pl.Int64),
        pl.Series("output_tokens", [2**64 - 1, 1, 2, 3], dtype=pl.UInt64),
        pl.Series("start_time_unix_nano", [0, -1] + [r["start_time_unix_nano"] for r in
                                                      records[2:]], dtype=pl.Int64),
    )  # fmt: skip
    path = tmp_path / "typed.parquet"
    frame.write_parquet(path)
    result = run("list", str(path), "--json")
    [row] = json.loads(result.stdout)
    assert row["input_tokens"] == 7 + 2**62 - 1  # -5 and 2^62 are not counts
    assert row["output_tokens"] == 1 + 2 + 3  # 2^64 - 1 is past any count
    assert f"{path}: 3 token counts or costs that are not" in result.stderr
    assert f"{path}: 2 spans without valid start and end times" in result.stderr


def test_a_repeated_key_resolves_first_whatever_else_is_in_the_batch(tmp_path):
    # The same span, its input token value given twice in one JSON object; in the second file
    # an unrelated malformed line sends the batch down the line-by-line path.
    line = (
        f'{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{{"traceId": "{TRACE}", "spanId": '
        '"0123456789abcdef", "startTimeUnixNano": "1790000000000000000", "endTimeUnixNano": '
        '"1790000000000000001", "attributes": [{"key": "session.id", "value": {"stringValue": '
        '"s"}}, {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "20", '
        '"intValue": "1000000"}}]}]}]}]}\n'
    )
    clean, noisy = tmp_path / "clean.jsonl", tmp_path / "noisy.jsonl"
    clean.write_text(line)
    noisy.write_text(line + '{"resourceSpans": [\n')
    for path in (clean, noisy):
        [row] = run_json("list", str(path))
        assert row["input_tokens"] == 20, path


# ---------------------------------------------------------------------------------------------
# One time zone rule: --tz (default UTC) for typed times and for tables alike


def test_a_typed_time_means_utc_like_the_table_whatever_the_system_zone():
    # The capture's sessions start at 08:48Z; under New York's zone 04:00 local would be 09:00Z.
    env = {**os.environ, "TZ": "America/New_York"}
    listed = subprocess.run([SESSIONS, "list", str(REAL), "--since", "2026-11-26 04:00",
                             "--until", "2026-11-26 08:49", "--json"],
                            env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert len(json.loads(listed.stdout)) == 4


def test_tz_applies_to_typed_times_too():
    # 08:48Z is 17:48 in Tokyo
    def ids(*args: str) -> int:
        return len(run_json("list", str(REAL), "--tz", "Asia/Tokyo", *args))

    assert ids("--since", "2026-11-26 17:00", "--until", "2026-11-26 17:50") == 4
    assert ids("--since", "2026-11-26 18:00") == 0


def test_until_a_date_takes_in_that_whole_day():
    assert len(run_json("list", str(REAL), "--until", "2026-11-26")) == 4
    assert run("list", str(REAL), "--until", "2026-11-25", "--json").stdout == "[]\n"
    assert len(run_json("list", str(REAL), "--since", "2026-11-26", "--until", "2026-11-26")) == 4


def test_until_a_date_ends_at_the_next_local_midnight_across_a_clock_change():
    new_york = ZoneInfo("America/New_York")  # clocks go back on 2026-11-01: a 25-hour day
    bound, inclusive = parse_until("2026-11-01", zone=new_york)
    assert (bound, inclusive) == (datetime(2026, 11, 2, 5, tzinfo=timezone.utc), False)
    bound, inclusive = parse_until("2026-11-01 13:00", zone=new_york)
    assert (bound, inclusive) == (datetime(2026, 11, 1, 18, tzinfo=timezone.utc), True)
    assert parse_until("30m", now=datetime(2026, 1, 1, tzinfo=timezone.utc))[1] is True
