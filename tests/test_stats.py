"""`sessions stats`: totals, percentiles and groups checked against values computed here from
`list`'s rows (not by the stats code path); budgets at, under and over their limits; the
CI example in docs/usage.md run as written."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import GENERATED as GENERATED_PATH
from tests.conftest import REAL, run, run_json
from tests.otlp_builder import document, lines, span

GENERATED = str(GENERATED_PATH)
USAGE_DOC = Path(__file__).resolve().parent.parent / "docs" / "usage.md"


def percentile(values: list[float], p: int) -> float:
    """Linear interpolation between closest ranks (numpy's default), via the standard library."""
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@pytest.fixture(scope="module")
def listed() -> list[dict]:
    return run_json("list", GENERATED)


@pytest.fixture(scope="module")
def report() -> dict:
    return run_json("stats", GENERATED)


def test_totals_are_the_sums_of_the_listed_sessions(listed, report):
    totals = report["totals"]
    assert totals["sessions"] == len(listed)
    pairs = [("traces", "trace_count"), ("spans", "span_count"), ("llm_calls", "llm_call_count"),
             ("input_tokens", "input_tokens"), ("output_tokens", "output_tokens"),
             ("total_tokens", "total_tokens")]  # fmt: skip
    for field, column in pairs:
        assert totals[field] == sum(row[column] for row in listed), field
    assert totals["cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in listed), rel=1e-12)
    assert totals["sessions_with_errors"] == sum(row["error_count"] > 0 for row in listed)
    assert totals["traces_without_session"] == len(run_json("list", "--orphans", GENERATED))


@pytest.mark.parametrize("metric", ["cost_usd", "total_tokens", "duration_ms", "trace_count"])
def test_distributions_match_an_independent_computation(listed, report, metric):
    values = sorted(row[metric] for row in listed)
    row = next(r for r in report["distributions"] if r["metric"] == metric)
    assert row["count"] == len(values)
    assert row["min"] == values[0]
    assert row["max"] == values[-1]
    assert row["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    for p in (50, 90, 95, 99):
        assert row[f"p{p}"] == pytest.approx(percentile(values, p), rel=1e-12), p


def test_percentiles_of_an_even_count_interpolate(tmp_path):
    path = tmp_path / "four.jsonl"
    path.write_text(
        lines(*(
            document(span(f"t{i}", "1", session__id=f"s{i}", agentmark__usage__cost_usd=cost,
                          gen_ai__usage__input_tokens=1))
            for i, cost in enumerate([1.0, 2.0, 3.0, 10.0])
        ))
    )  # fmt: skip
    cost = run_json("stats", str(path))["distributions"][0]
    assert cost["p50"] == 2.5  # halfway between 2 and 3
    assert cost["p90"] == pytest.approx(7.9)  # rank 3.7: 3 + 0.7 * (10 - 3)
    assert cost["mean"] == 4.0


@pytest.mark.parametrize("by", ["user", "tag", "name", "day", "month", "meta:plan"])
def test_whole_session_groups_match_an_independent_computation(listed, by):
    groups: dict[str | None, list[dict]] = defaultdict(list)
    for row in listed:
        if by in ("user", "tag"):
            keys = row[{"user": "users", "tag": "tags"}[by]] or [None]
        elif by == "name":
            keys = [row["session_name"]]
        elif by == "day":
            keys = [row["start"][:10]]
        elif by == "month":
            keys = [row["start"][:7]]
        else:
            keys = [row["metadata"].get("plan")]
        for key in keys:
            groups[key].append(row)
    got = run_json("stats", GENERATED, "--by", by)["groups"]
    assert {g["group"] for g in got} == set(groups)
    costs = [g["cost_usd"] for g in got]
    assert costs == sorted(costs, reverse=True)
    for g in got:
        members = groups[g["group"]]
        member_costs = sorted(r["cost_usd"] for r in members)
        assert g["sessions"] == len(members)
        assert g["traces"] == sum(r["trace_count"] for r in members)
        assert g["total_tokens"] == sum(r["total_tokens"] for r in members)
        assert g["cost_usd"] == pytest.approx(sum(member_costs), rel=1e-12)
        assert g["p50_session_cost"] == pytest.approx(percentile(member_costs, 50), rel=1e-12)
        assert g["p95_session_cost"] == pytest.approx(percentile(member_costs, 95), rel=1e-12)


def test_week_groups_are_iso_weeks(tmp_path):
    path = tmp_path / "weeks.jsonl"
    # BASE is 2026-09-21 (a Monday): day 6 is that Sunday, day 7 the next Monday.
    path.write_text(lines(*(
        document(span(f"t{d}", "1", start_ms=d * 86_400_000, end_ms=d * 86_400_000 + 5,
                      session__id=f"s{d}"))
        for d in (0, 6, 7)
    )))  # fmt: skip
    got = {
        g["group"]: g["sessions"] for g in run_json("stats", str(path), "--by", "week")["groups"]
    }
    assert got == {"2026-W39": 2, "2026-W40": 1}


def test_stats_filters_like_list():
    report = run_json("stats", str(REAL), "--user", "alice")
    assert report["totals"]["sessions"] == 1
    assert report["totals"]["total_tokens"] == 9860


def test_stats_formats():
    table = run("stats", str(REAL), "--by", "model")
    assert table.exit_code == 0
    for heading in (
        "Sessions:",
        "Per session (percentiles interpolate",
        "By model (each LLM call counts for its own model, so the rows add up to the totals):",
    ):
        assert heading in table.stdout
    rows = list(csv.DictReader(io.StringIO(run("stats", str(REAL), "--csv").stdout)))
    assert [r["metric"] for r in rows] == ["cost_usd", "total_tokens", "duration_ms", "trace_count"]
    grouped = run("stats", str(REAL), "--by", "user", "--format", "tsv").stdout.splitlines()
    assert grouped[0].split("\t")[0] == "group"
    assert len(grouped) == 1 + 5  # alice, bob, carol, dave, erin
    markdown = run("stats", str(REAL), "--format", "markdown").stdout
    # a lower bound: sess-batch-3 has no price
    assert markdown.startswith("### Sessions: 4 sessions, ≥$0.0499, 22,468 tokens\n")


def test_bad_grouping_is_a_usage_error():
    result = run("stats", str(REAL), "--by", "colour")
    assert result.exit_code == 2
    assert "Invalid value for '--by': expected one of user, model" in result.stderr


def test_no_sessions_is_not_an_error(tmp_path):
    result = run("stats", str(REAL), "--user", "nobody", "--json")
    assert result.exit_code == 0
    assert result.stderr == "sessions: no sessions match\n"


# ---------------------------------------------------------------------------------------------
# Budgets


@pytest.fixture
def budgeted(tmp_path):
    """s1: two calls of $0.10 and $0.20 (float sum 0.30000000000000004), 1,000 tokens, 60 s,
    2 traces. s2: $0.50, 3,000 tokens, 90 s, 2 traces of which one failed. Totals: $0.80,
    4,000 tokens, 1 failed trace of 4."""
    path = tmp_path / "budget.jsonl"
    path.write_text(
        lines(
            document(
                span(
                    "a1",
                    "1",
                    start_ms=0,
                    end_ms=30_000,
                    session__id="s1",
                    agentmark__usage__cost_usd=0.1,
                    gen_ai__usage__input_tokens=400,
                ),
                span(
                    "a2",
                    "2",
                    start_ms=40_000,
                    end_ms=60_000,
                    session__id="s1",
                    agentmark__usage__cost_usd=0.2,
                    gen_ai__usage__input_tokens=600,
                ),
                span(
                    "b1",
                    "3",
                    start_ms=0,
                    end_ms=90_000,
                    session__id="s2",
                    agentmark__usage__cost_usd=0.5,
                    gen_ai__usage__input_tokens=3000,
                ),
                span("b2", "4", start_ms=1000, end_ms=2000, session__id="s2", error=True),
            )
        )
    )
    return str(path)


@pytest.mark.parametrize(
    ("option", "at", "under", "over", "breach"),
    [
        ("--max-session-cost", "0.5", "0.5001", "0.4999",
         "budget: session s2 cost $0.5000 > $0.4999"),
        ("--max-total-cost", "0.8", "0.8001", "0.7999", "budget: total cost $0.8000 > $0.7999"),
        ("--max-session-tokens", "3000", "3001", "2999", "budget: session s2 tokens 3,000 > 2,999"),
        ("--max-total-tokens", "4000", "4001", "3999", "budget: total tokens 4,000 > 3,999"),
        ("--max-session-duration", "90s", "90.001", "89.999s",
         "budget: session s2 duration 90000ms > 89999ms"),  # 1m 30s both: shown exactly
        ("--max-error-rate", "0.25", "25.01%", "24.99%", "budget: error rate 25% > 24.99%"),
    ],
)  # fmt: skip
def test_each_budget_at_under_and_over_its_limit(budgeted, option, at, under, over, breach):
    for limit in (at, under):  # the value is at, or just under, the limit: it holds
        result = run("stats", budgeted, option, limit, "--json")
        assert result.exit_code == 0, (limit, result.stderr)
        assert result.stderr == ""
        assert all(b["held"] for b in run_json("stats", budgeted, option, limit)["budgets"])
    result = run("stats", budgeted, option, over)  # the value is just over the limit
    assert result.exit_code == 3
    assert result.stdout.startswith("Sessions:")  # the report is still printed
    assert result.stderr == breach + "\n"


def test_a_limit_below_a_hundredth_of_a_cent_is_shown_as_set(budgeted):
    result = run("stats", budgeted, "--max-session-cost", "0.0000001", "--format", "markdown")
    assert result.exit_code == 3
    assert "budget: session s2 cost $0.5000 > $1e-07\n" in result.stderr
    assert re.search(r"\| max_session_cost \| +\$1e-07 \|", result.stdout)


def test_a_session_cost_below_a_hundredth_of_a_cent_is_shown_in_full_beside_its_limit(tmp_path):
    path = tmp_path / "tiny.jsonl"
    path.write_text(
        lines(document(span("a1", "1", session__id="s1", agentmark__usage__cost_usd=2e-7)))
    )
    result = run("stats", str(path), "--max-session-cost", "0.0000001")
    assert result.exit_code == 3
    assert result.stderr == "budget: session s1 cost $2e-07 > $1e-07\n"


def test_float_noise_never_breaks_a_money_budget(budgeted):
    for option in ("--max-session-cost", "--max-total-cost"):  # s1: 0.1 + 0.2 against $0.30
        result = run("stats", budgeted, "--search", "s1", option, "0.3")
        assert result.exit_code == 0, result.stderr


def test_budgets_in_json(budgeted):
    result = run("stats", budgeted, "--json", "--max-session-cost", "0.4", "--max-total-tokens",
                 "5000")  # fmt: skip
    assert result.exit_code == 3
    budgets = {b["budget"]: b for b in json.loads(result.stdout)["budgets"]}
    assert budgets["max_session_cost"] == {
        "budget": "max_session_cost", "limit": 0.4, "value": 0.5, "held": False,
        "reason": "exceeded", "warned": False, "session_id": "s2", "breaching_sessions": 1,
        "unpriced_sessions": 0,
    }  # fmt: skip
    assert budgets["max_total_tokens"] == {
        "budget": "max_total_tokens", "limit": 5000, "value": 4000, "held": True, "reason": None,
        "warned": False,
    }  # fmt: skip


def test_no_budget_means_exit_0_whatever_the_spend(budgeted):
    result = run("stats", budgeted)
    assert result.exit_code == 0
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("option", "value"),
    [("--max-session-cost", "-1"), ("--max-error-rate", "1.5"), ("--max-error-rate", "lots"),
     ("--max-session-duration", "soon"), ("--max-total-tokens", "1.5")],
)  # fmt: skip
def test_bad_budget_values_are_usage_errors(budgeted, option, value):
    result = run("stats", budgeted, option, value)
    assert result.exit_code == 2
    assert option in result.stderr


# ---------------------------------------------------------------------------------------------
# The CI example of docs/usage.md, run as written


def ci_example() -> str:
    """The `run:` script of the GitHub Actions step in docs/usage.md."""
    text = USAGE_DOC.read_text(encoding="utf-8")
    block = text.split("<!-- ci-example -->", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    script = block.split("run: |\n", 1)[1]
    indent = len(script) - len(script.lstrip(" "))
    return "".join(line[indent:] + "\n" for line in script.splitlines())


def run_ci_example(tmp_path, traces: str) -> subprocess.CompletedProcess:
    # The package is installed in this environment already: `pip` is a no-op stand-in, so the
    # rest of the script runs exactly as written, with GitHub's shell options.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pip").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "pip").chmod(0o755)
    summary = tmp_path / "summary.md"
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {
        **os.environ,
        "PATH": path,
        "TRACES": traces,
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", ci_example()],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_readme_ci_example_passes_within_budget(tmp_path):
    assert "sessions stats" in ci_example()
    result = run_ci_example(tmp_path, GENERATED)  # worst session $0.2129, 2.84% failed
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("### Sessions: 66 sessions")
    assert "✅ all budgets held" in summary
    assert "#### By model" in summary


def test_readme_ci_example_fails_the_step_over_budget(tmp_path):
    expensive = tmp_path / "expensive.jsonl"
    expensive.write_text(lines(document(span("t", "1", session__id="sess-pricey",
                                             agentmark__usage__cost_usd=1.25,
                                             gen_ai__usage__input_tokens=10))))  # fmt: skip
    result = run_ci_example(tmp_path, str(expensive))
    assert result.returncode == 3
    assert re.search(r"^budget: session sess-pricey cost \$1\.25 > \$0\.2500$", result.stderr, re.M)
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "❌ 1 of 2 budgets exceeded" in summary  # written before the step failed
