"""`sessions diff BASE NEW`: the real agentmark capture against a copy of it in which the
support agent's gpt-4o-mini calls went to gpt-4o, with every metric worked out by hand from the
capture's token counts and the list prices of tests/test_real_capture.py; thresholds of every
kind on small hand-built pairs; the output formats; CI annotations; config files."""

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
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions_cli.query.diff import METRICS
from tests.conftest import GENERATED, REAL, run
from tests.otlp_builder import document, lines, span

ROOT = Path(__file__).resolve().parent.parent

M = 1_000_000
# Per priced session, cost in BASE and in NEW (the support session's 6,600 input and 560 output
# tokens of gpt-4o-mini repriced at gpt-4o's $2.50/$10; its own gpt-4o call costs $0.009).
SUPPORT_BASE = (6600 * 0.15 + 560 * 0.60 + 2400 * 2.50 + 300 * 10) / M
SUPPORT_NEW = (6600 * 2.50 + 560 * 10 + 2400 * 2.50 + 300 * 10) / M
RESEARCH = (5000 * 3 + 800 * 15) / M + 0.0123  # one call carries its own cost
HANDOFF = (1800 * 0.10 + 200 * 0.40) / M
# sess-batch-3's two calls name a model with no price: its cost is unknown on both sides.
TOKENS = {"sess-support-1": 9860, "sess-research-7": 9200, "sess-batch-3": 1408,
          "sess-handoff-2": 2000}  # fmt: skip


def linear(values: list[float], q: float) -> float:
    """The percentile the contract names (linear between ranks), written out."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def durations_ms(path) -> list[float]:
    """Each session's span of time, from the raw file: a trace belongs to the session any of
    its spans names (by the two keys the capture uses; it has no conflicts), from its first
    start to its last end."""
    spans = []
    for line in path.read_text().splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                spans += scope["spans"]
    session_of = {}
    for s in spans:
        for attribute in s["attributes"]:
            if attribute["key"] in ("agentmark.session_id", "ai.telemetry.metadata.sessionId"):
                session_of[s["traceId"]] = attribute["value"]["stringValue"]
    times = defaultdict(list)
    for s in spans:
        if s["traceId"] in session_of:
            times[session_of[s["traceId"]]].append(s)
    return [
        (max(int(s["endTimeUnixNano"]) for s in group) - min(int(s["startTimeUnixNano"])
                                                             for s in group)) / 1e6
        for group in times.values()
    ]  # fmt: skip


@pytest.fixture(scope="module")
def costlier(tmp_path_factory):
    """The capture with every gpt-4o-mini call made by gpt-4o instead."""
    path = tmp_path_factory.mktemp("diff") / "costlier.otlp.jsonl"
    text = REAL.read_text()
    assert text.count('"gpt-4o-mini"') > 0
    path.write_text(text.replace('"gpt-4o-mini"', '"gpt-4o"'))
    return path


def diff_json(*args: str, code: int = 0) -> dict:
    result = run("diff", *args, "--json")
    assert result.exit_code == code, result.stderr
    return json.loads(result.stdout)


def metrics_of(group: dict) -> dict[str, dict]:
    return {m["metric"]: m for m in group["metrics"]}


def test_every_metric_against_hand_computed_figures(costlier):
    found = diff_json(str(REAL), str(costlier))
    assert found["by"] is None
    assert found["verdict"] is None
    assert found["breaches"] == []
    [group] = found["groups"]
    assert (group["group"], group["status"]) == (None, "both")
    got = metrics_of(group)
    assert list(got) == [
        "sessions", "cost_total", "cost_mean", "cost_p50", "cost_p95", "tokens_total",
        "tokens_mean", "tokens_p95", "duration_p50", "duration_p95", "llm_calls_mean",
        "error_rate", "unpriced_calls",
    ]  # fmt: skip
    base_costs, new_costs = [SUPPORT_BASE, RESEARCH, HANDOFF], [SUPPORT_NEW, RESEARCH, HANDOFF]
    durations = durations_ms(REAL)
    expected = {
        "sessions": (4, 4),
        "cost_total": (sum(base_costs), sum(new_costs)),
        "cost_mean": (sum(base_costs) / 3, sum(new_costs) / 3),
        "cost_p50": (SUPPORT_BASE, SUPPORT_NEW),  # the middle of three known costs
        "cost_p95": (linear(base_costs, 0.95), linear(new_costs, 0.95)),
        "tokens_total": (22468, 22468),
        "tokens_mean": (22468 / 4, 22468 / 4),
        "tokens_p95": (linear(list(TOKENS.values()), 0.95),) * 2,
        "duration_p50": (statistics.median(durations),) * 2,
        "duration_p95": (linear(durations, 0.95),) * 2,
        "llm_calls_mean": ((5 + 3 + 2 + 2) / 4,) * 2,
        "error_rate": (1 / 4,) * 2,  # sess-research-7 has error spans
        "unpriced_calls": (2, 2),
    }
    for metric, (base, new) in expected.items():
        row = got[metric]
        assert row["base"] == pytest.approx(base, rel=1e-9), metric
        assert row["new"] == pytest.approx(new, rel=1e-9), metric
        assert row["change"] == pytest.approx(new - base, rel=1e-9, abs=1e-12), metric
        assert row["change_pct"] == pytest.approx((new - base) / base * 100, rel=1e-9), metric
        assert (row["limit"], row["breached"], row["reason"]) == (None, False, None)
    for metric in ("sessions", "tokens_total", "unpriced_calls"):  # whole numbers stay whole
        assert isinstance(got[metric]["base"], int), metric


def test_a_cost_threshold_over_unpriced_calls_cannot_pass(costlier):
    args = (str(REAL), str(costlier), "--min-sessions", "1", "--max-increase", "cost_total=50%")
    result = run("diff", *args)
    assert result.exit_code == 3
    assert "cost_total cannot be checked against 50%" in result.stderr
    assert "--allow-unpriced" in result.stderr
    # With the known costs compared, +41.6% holds under 50% and crosses 40%.
    assert run("diff", *args, "--allow-unpriced").exit_code == 0
    found = diff_json(*args[:-1], "cost_total=40%", "--allow-unpriced", code=3)
    [breach] = found["breaches"]
    pct = (SUPPORT_NEW - SUPPORT_BASE) / (SUPPORT_BASE + RESEARCH + HANDOFF) * 100
    assert breach["change_pct"] == pytest.approx(pct)
    assert (breach["metric"], breach["limit"], breach["reason"]) == ("cost_total", "40%",
                                                                      "exceeded")  # fmt: skip


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        # p50 moves by SUPPORT_NEW - SUPPORT_BASE = $0.020774: an amount in dollars...
        ("cost_p50=$0.02", 3),
        ("cost_p50=0.021", 0),
        # ... or relative: +201.2%
        ("cost_p50=200%", 3),
        ("cost_p50=202%", 0),
        # what did not move holds at any limit, 0 included
        ("tokens_total=0", 0),
        ("duration_p95=0ms", 0),
        ("error_rate=0pp", 0),
    ],
)
def test_thresholds_on_the_real_pair(costlier, limit, code):
    args = ("--min-sessions", "1", "--allow-unpriced", "--max-increase", limit)
    assert run("diff", str(REAL), str(costlier), *args).exit_code == code


def test_by_model_splits_calls_and_lists_a_model_gone_from_new(costlier):
    found = diff_json(str(REAL), str(costlier), "--by", "model")
    groups = {g["group"]: g for g in found["groups"]}
    assert groups["gpt-4o-mini"]["status"] == "removed"
    gpt4o = metrics_of(groups["gpt-4o"])
    assert groups["gpt-4o"]["status"] == "both"
    assert (gpt4o["cost_total"]["base"], gpt4o["cost_total"]["new"]) == pytest.approx(
        ((2400 * 2.50 + 300 * 10) / M, SUPPORT_NEW)
    )
    assert (gpt4o["tokens_total"]["base"], gpt4o["tokens_total"]["new"]) == (2700, 9860)
    assert (gpt4o["llm_calls_mean"]["base"], gpt4o["llm_calls_mean"]["new"]) == (1, 5)
    assert not groups["gpt-4o"]["gated"]  # one session a side, under the default of 5


def test_too_few_sessions_is_reported_not_gated(costlier):
    result = run("diff", str(REAL), str(costlier), "--max-increase", "cost_p50=1%")
    assert result.exit_code == 0
    assert "not gated: no group has 5 sessions on both sides" in result.stderr
    found = diff_json(str(REAL), str(costlier), "--max-increase", "cost_p50=1%")
    assert found["verdict"] == "not gated"
    assert found["groups"][0]["gated"] is False


# ---------------------------------------------------------------------------------------------
# Hand-built pairs: each session one trace with one LLM call


def session(sid: str, *, ms: int, cost: float, tokens: int, error: bool = False, **attrs):
    return document(
        span(f"t-{sid}", "root", name="chat", end_ms=ms, session__id=sid, **attrs),
        span(f"t-{sid}", "call", parent="root", end_ms=ms, error=error,
             gen_ai__request__model="m", gen_ai__usage__input_tokens=tokens,
             gen_ai__usage__output_tokens=0, agentmark__usage__cost_usd=cost),
    )  # fmt: skip


@pytest.fixture
def pair(tmp_path):
    """Ten sessions a side. NEW: the same costs but one more error, 200 ms slower each, and a
    new user group."""
    base = [session(f"s{i}", ms=1000, cost=0.01, tokens=100, user__id="ann") for i in range(10)]
    new = [
        session(f"s{i}", ms=1200, cost=0.01, tokens=100, error=i < 1,
                user__id="ann" if i < 8 else "bo")
        for i in range(10)
    ]  # fmt: skip
    (tmp_path / "base.jsonl").write_text(lines(*base))
    (tmp_path / "new.jsonl").write_text(lines(*new))
    return str(tmp_path / "base.jsonl"), str(tmp_path / "new.jsonl")


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        ("duration_p95=199ms", 3),
        ("duration_p95=200ms", 0),  # equal to the limit holds
        ("duration_p95=20%", 0),
        ("duration_p95=19.9%", 3),
        ("error_rate=10pp", 0),  # 0% -> 10%
        ("error_rate=9pp", 3),
        ("error_rate=1000%", 3),  # relative to a base of 0: any increase crosses it
        ("cost_mean=0%", 0),
        ("sessions=0", 0),
    ],
)
def test_thresholds_of_every_kind(pair, limit, code):
    result = run("diff", *pair, "--max-increase", limit)
    assert result.exit_code == code, result.stderr


def test_groups_on_one_side_are_listed_never_dropped(pair):
    found = diff_json(*pair, "--by", "user", "--min-sessions", "1",
                      "--max-increase", "sessions=0")  # fmt: skip
    status = {g["group"]: g["status"] for g in found["groups"]}
    assert status == {"ann": "both", "bo": "added"}
    # ann went from 10 to 8 sessions: a fall holds; bo is new, so not gated
    assert found["verdict"] == "pass"
    bo = metrics_of(next(g for g in found["groups"] if g["group"] == "bo"))
    assert (bo["sessions"]["base"], bo["sessions"]["new"]) == (None, 2)


def test_empty_input_is_not_a_pass(pair, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run("diff", pair[0], str(empty), "--max-increase", "cost_total=10%")
    assert result.exit_code == 1
    assert "read no spans from" in result.stderr
    allowed = run("diff", pair[0], str(empty), "--max-increase", "cost_total=10%",
                  "--allow-empty")  # fmt: skip
    assert allowed.exit_code == 0  # an empty NEW group is under --min-sessions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-increase", "cost=5%"), "unknown metric 'cost'"),
        (("--max-increase", "cost_total"), "expected METRIC=LIMIT"),
        (("--max-increase", "cost_total=-5%"), "at least 0"),
        (("--max-increase", "duration_p95=fast"), "a duration"),
        (("--max-increase", "cost_total=1%", "--max-increase", "cost_total=2%"), "one limit"),
        (("--by", "name"), "expected one of trace_name"),
    ],
)
def test_usage_errors(pair, args, message):
    result = run("diff", *pair, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_diff_needs_both_sides(pair):
    result = run("diff", pair[0])
    assert result.exit_code == 2
    assert "diff needs BASE and NEW" in result.stderr


# ---------------------------------------------------------------------------------------------
# Output


def test_markdown_is_one_table_with_breaches_first(pair):
    limits = ("--max-increase", "duration_p95=100ms", "--max-increase", "error_rate=5pp")
    result = run("diff", *pair, "--by", "user", "--min-sessions", "1", "--format", "markdown",
                 *limits)  # fmt: skip
    assert result.exit_code == 3
    text = result.stdout
    assert text.startswith("### Sessions diff by user: ❌ 2 thresholds crossed\n")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in table)
    widths = {line.count("|") for line in table}
    assert widths == {9}  # 8 cells: user, metric, base, new, change, change %, limit, result
    header, rule, *rows = table
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "user", "metric", "base", "new", "change", "change %", "limit", "result"]  # fmt: skip
    assert set(rule) <= {"|", "-"}
    assert len(rows) == 2 * 13  # two groups, every metric
    results = [row.strip("|").split("|")[-1].strip() for row in rows]
    assert results[:2] == ["❌ exceeded", "❌ exceeded"]
    assert "❌ exceeded" not in results[2:]
    # ann's p95 rose 200 ms and its error rate 12.5 points (1 of 8 sessions); bo is new
    firsts = [[c.strip() for c in row.strip("|").split("|")[:2]] for row in rows[:2]]
    assert firsts == [["ann", "duration_p95"], ["ann", "error_rate"]]


def test_a_hostile_group_name_cannot_break_the_markdown(tmp_path):
    name = "x | y <img src=x onerror=alert(1)>\n## owned"
    for side in ("base", "new"):
        docs = [session(f"s{i}", ms=10, cost=0.01, tokens=1, user__id=name) for i in range(2)]
        (tmp_path / f"{side}.jsonl").write_text(lines(*docs))
    text = run("diff", str(tmp_path / "base.jsonl"), str(tmp_path / "new.jsonl"), "--by",
               "user", "--format", "markdown").stdout  # fmt: skip
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert {line.replace("\\|", "").count("|") for line in table} == {9}
    assert "\n## owned" not in text


def test_csv_rows_keep_whole_numbers_whole(pair):
    text = run("diff", *pair, "--csv").stdout
    rows = {row["metric"]: row for row in csv.DictReader(io.StringIO(text))}
    assert (rows["sessions"]["base"], rows["sessions"]["change"]) == ("10", "0")
    assert float(rows["duration_p95"]["change"]) == pytest.approx(200)
    assert list(rows["sessions"]) == ["group", "status", "gated", "metric", "base", "new",
                                      "change", "change_pct", "limit", "reason", "warned",
                                      "breached"]  # fmt: skip
    jsonl = [json.loads(line) for line in run("diff", *pair, "--format", "jsonl").stdout.split("\n")
             if line]  # fmt: skip
    assert len(jsonl) == 13
    assert jsonl[0]["base"] == 10
    chosen = run("diff", *pair, "--csv", "--columns", "metric,change").stdout
    assert chosen.splitlines()[0] == "metric,change"


def test_table_names_the_verdict_and_colours_only_on_a_terminal(pair):
    result = run("diff", *pair, "--max-increase", "duration_p95=100ms")
    assert result.stdout.startswith("sessions diff: ❌ 1 threshold crossed\n")
    assert "EXCEEDED" in result.stdout
    assert "\x1b[" not in result.stdout
    assert "diff: duration_p95 1.0s -> 1.2s (+200ms, +20.0%) > 100ms" in result.stderr


def test_warn_at_marks_a_change_near_its_limit(pair):
    result = run("diff", *pair, "--max-increase", "duration_p95=250ms", "--warn-at", "75%")
    assert result.exit_code == 0
    assert "sessions: warning: diff: duration_p95" in result.stderr
    assert "near its limit of 250ms" in result.stderr
    found = diff_json(*pair, "--max-increase", "duration_p95=250ms", "--warn-at", "0.9")
    assert not any(m["warned"] for m in found["groups"][0]["metrics"])  # 200 < 0.9 x 250


def test_github_actions_annotations(pair):
    env = {"GITHUB_ACTIONS": "true"}
    result = run("diff", *pair, "--max-increase", "duration_p95=100ms", env=env)
    assert result.exit_code == 3
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::")]
    assert annotations == [
        "::error title=sessions diff::diff: duration_p95 1.0s -> 1.2s (+200ms, +20.0%25) > 100ms"
    ]
    # stats budgets too: one error per session over 1s, a warning for tokens past 80%
    result = run("stats", pair[1], "--max-session-duration", "1s", "--max-total-tokens", "1100",
                 "--warn-at", "80%", env=env)  # fmt: skip
    levels = [line.split(" ", 1)[0] for line in result.stderr.splitlines() if line[:2] == "::"]
    assert levels.count("::error") == 10
    assert levels.count("::warning") == 1
    assert (
        "::warning title=sessions budget::budget: total tokens 1,000 is near its limit of 1,100"
        in result.stderr
    )
    assert "::" not in run("diff", *pair, "--max-increase", "duration_p95=100ms").stderr


def test_github_annotation_escaping():
    from sessions_cli.output.ci import github_annotation

    assert github_annotation("error", "a: b, c", "50% of x\nline two\r") == (
        "::error title=a%3A b%2C c::50%25 of x%0Aline two%0D"
    )


# ---------------------------------------------------------------------------------------------
# Config files


def test_a_config_file_holds_the_gate_and_flags_override_it(pair, tmp_path, monkeypatch):
    (tmp_path / "sessions.toml").write_text(
        '[diff]\nbase = "base.jsonl"\nnew = "new.jsonl"\n'
        'max-increase = ["duration_p95=100ms"]\nmin-sessions = 1\n'
        "[stats]\nmax-session-duration = 1\n"
    )
    (tmp_path / "deeper").mkdir()
    monkeypatch.chdir(tmp_path / "deeper")  # found from the working directory up
    result = run("diff")
    assert result.exit_code == 3
    assert "duration_p95" in result.stderr
    assert run("diff", "--max-increase", "duration_p95=1s").exit_code == 0  # flags win
    assert run("--no-config", "diff").exit_code == 2
    # a path on the command line is the working directory's
    assert run("stats", "../new.jsonl").exit_code == 3  # max-session-duration 1 (second)


def test_pyproject_tool_sessions_and_shared_keys(pair, tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.sessions]\npaths = ["new.jsonl"]\nformat = "json"\n'
    )
    monkeypatch.chdir(tmp_path)
    listed = json.loads(run("list").stdout)
    assert len(listed) == 10
    assert run("list", "--csv").stdout.startswith("session_id,")  # --csv beats the file's
    assert run("list", "--json", "--format", "csv").exit_code == 2  # two formats typed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1\n", "no command takes 'bogus'"),
        ("[stats]\nmax-session-cots = 1\n", "'max-session-cots' is not an option"),
        ("[lsit]\nlimit = 1\n", "[lsit] is not a command"),
        ("[stats\n", "not valid TOML"),
        ("[stats]\nmax-session-cost = 'lots'\n", "max-session-cost"),
    ],
)
def test_config_mistakes_are_usage_errors_naming_the_file(tmp_path, monkeypatch, text, message):
    (tmp_path / "sessions.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    result = run("stats", str(REAL))
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr


# ---------------------------------------------------------------------------------------------
# The pull-request gate of docs/usage.md, its shell steps run as written


def workflow_steps() -> dict[str, str]:
    """name -> `run:` script of each step of the diff workflow in docs/usage.md."""
    text = (ROOT / "docs" / "usage.md").read_text(encoding="utf-8")
    block = text.split("<!-- diff-ci-example -->", 1)[1].split("```yaml\n", 1)[1]
    block = block.split("```", 1)[0]
    steps, name, script, indent = {}, None, None, 0
    for line in block.splitlines():
        stripped = line.strip()
        if script is not None:
            if stripped and len(line) - len(line.lstrip()) <= indent:
                steps[name], script = "\n".join(script) + "\n", None
            else:
                script.append(line[indent + 2 :])
                continue
        if stripped.startswith("- name:"):
            name = stripped.removeprefix("- name:").strip()
        elif stripped == "run: |":
            script, indent = [], len(line) - len(line.lstrip())
    if script is not None:
        steps[name] = "\n".join(script) + "\n"
    return steps


# `gh` and `pip` stood in for: the package is installed here already, and there is no GitHub.
GH_STUB = """#!/bin/sh
echo "$*" >> "$GH_LOG"
case "$1 $2" in
  "run list") echo 4242 ;;
  "run download") mkdir -p baseline && cp "$ARTIFACT" baseline/spans.parquet ;;
  "pr comment") cp "$5" "$COMMENT" ;;
esac
"""


def run_step(script: str, cwd, traces, **env) -> subprocess.CompletedProcess:
    bin_dir = cwd / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("pip", "#!/bin/sh\nexit 0\n"), ("gh", GH_STUB)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    full = {**os.environ, "PATH": path, "TRACES": str(traces), "PR": "7",
            "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(cwd / "summary.md"),
            "GH_LOG": str(cwd / "gh.log"), "COMMENT": str(cwd / "comment.md"), **env}  # fmt: skip
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd, env=full, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(("new_side", "code"), [("same", 0), ("costlier", 3)])
def test_the_pull_request_gate_runs_as_documented(tmp_path, costlier, new_side, code):
    steps = workflow_steps()
    assert list(steps) == ["Install sessions", "Keep these traces as the baseline",
                           "Fetch the baseline of main", "Compare with main"]  # fmt: skip
    main_run, pr_run = tmp_path / "main", tmp_path / "pr"
    main_run.mkdir()
    pr_run.mkdir()
    # On main: the baseline artifact is this run's traces, converted.
    for name in ("Install sessions", "Keep these traces as the baseline"):
        done = run_step(steps[name], main_run, REAL)
        assert done.returncode == 0, done.stderr
    artifact = main_run / "spans.parquet"
    # On the pull request: fetch it, compare, comment, and fail on a breach. Five copies of
    # each side give gpt-4o five sessions on both sides: enough to be gated.
    traces = pr_run / "traces"
    traces.mkdir()
    source = REAL if new_side == "same" else costlier
    baseline_sessions = tmp_path / "baseline-src"
    baseline_sessions.mkdir()
    for i in range(5):
        for src, folder in ((source, traces), (REAL, baseline_sessions)):
            # other sessions and other traces in each copy, not re-sent spans
            text = src.read_text().replace('"sess-', f'"r{i}-sess-')
            text = re.sub(r'("traceId": ?")[0-9a-f]', rf"\g<1>{i}", text)
            (folder / f"copy{i}.jsonl").write_text(text)
    done = run_step(steps["Keep these traces as the baseline"], main_run, baseline_sessions)
    assert done.returncode == 0, done.stderr
    # The repository prices its own model in its config file, which the step picks up.
    (pr_run / "sessions.toml").write_text('prices = "prices.json"\n')
    (pr_run / "prices.json").write_text(
        json.dumps({"acme-local-7b": {"input_per_mtok": 0.05, "output_per_mtok": 0.1}})
    )
    for name in ("Fetch the baseline of main", "Compare with main"):
        done = run_step(steps[name], pr_run, traces, ARTIFACT=str(artifact))
        if name == "Fetch the baseline of main":
            assert done.returncode == 0, done.stderr
    assert done.returncode == code, done.stderr
    comment = (pr_run / "comment.md").read_text(encoding="utf-8")
    assert comment == (pr_run / "summary.md").read_text(encoding="utf-8")
    assert comment.startswith("### Sessions diff by model: ")
    log = (pr_run / "gh.log").read_text()
    assert "run download 4242 --name llm-baseline --dir baseline" in log
    assert "pr comment 7 --body-file diff.md --edit-last" in log
    if code == 3:
        assert "❌" in comment.splitlines()[0]
        assert "::error title=sessions diff::diff: model gpt-4o: cost_p95" in done.stderr
    else:
        assert "✅ every threshold held" in comment.splitlines()[0]
        assert "::error" not in done.stderr


def test_by_trace_name_compares_the_part_of_each_session_of_that_name(tmp_path):
    """Each session: a `plan` trace (100 ms, $0.01) and an `act` trace; in NEW `act` takes
    300 ms instead of 100 ms and costs $0.03 instead of $0.02."""

    def sessions(act_ms: int, act_cost: float) -> str:
        docs = []
        for i in range(5):
            for name, start, ms, cost in (("plan", 0, 100, 0.01), ("act", 200, act_ms, act_cost)):
                trace = f"{name}-{i}"
                docs.append(document(
                    span(trace, "root", name=name, start_ms=start, end_ms=start + ms,
                         session__id=f"s{i}"),
                    span(trace, "call", parent="root", start_ms=start, end_ms=start + ms,
                         gen_ai__request__model="m", gen_ai__usage__input_tokens=10,
                         agentmark__usage__cost_usd=cost),
                ))  # fmt: skip
        return lines(*docs)

    (tmp_path / "base.jsonl").write_text(sessions(100, 0.02))
    (tmp_path / "new.jsonl").write_text(sessions(300, 0.03))
    found = diff_json(str(tmp_path / "base.jsonl"), str(tmp_path / "new.jsonl"), "--by",
                      "trace_name", "--max-increase", "duration_p50=150ms", code=3)  # fmt: skip
    groups = {g["group"]: metrics_of(g) for g in found["groups"]}
    assert groups["plan"]["cost_total"]["change"] == pytest.approx(0)
    assert groups["plan"]["duration_p50"]["base"] == pytest.approx(100)
    assert groups["act"]["duration_p50"]["change"] == pytest.approx(200)
    assert groups["act"]["cost_mean"]["new"] == pytest.approx(0.03)
    assert [(b["group"], b["metric"]) for b in found["breaches"]] == [("act", "duration_p50")]
    # overall, a session lasts from plan's start to act's end: 300 ms, then 500 ms
    overall = metrics_of(diff_json(str(tmp_path / "base.jsonl"), str(tmp_path / "new.jsonl"))
                         ["groups"][0])  # fmt: skip
    assert (overall["duration_p50"]["base"], overall["duration_p50"]["new"]) == (300, 500)


def test_changes_are_coloured_only_on_a_terminal(pair, monkeypatch):
    from sessions_cli.cli import steps

    assert "\x1b[" not in run("diff", *pair).stdout
    monkeypatch.setattr(steps, "colour_wanted", lambda: True)
    text = run("diff", *pair, "--max-increase", "duration_p95=100ms").stdout
    assert "\x1b[31m+200ms\x1b[0m" in text  # slower: worse
    assert "\x1b[1;31mEXCEEDED\x1b[0m" in text


@settings(max_examples=40, deadline=None)
@given(
    metric=st.sampled_from(sorted(METRICS)),
    relative=st.booleans(),
    amount=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_an_export_against_itself_never_crosses_a_threshold(metric, relative, amount):
    """Invariant: nothing changed, so no limit of any kind can be crossed, and every change
    is 0 (or unknown where the value is)."""
    limit = f"{amount:.6f}%" if relative else f"{amount:.6f}"
    if METRICS[metric] == "ms" and not relative:
        limit += "ms"
    args = (str(GENERATED), str(GENERATED), "--max-increase", f"{metric}={limit}",
            "--min-sessions", "1", "--allow-unpriced")  # fmt: skip
    found = diff_json(*args)
    assert found["verdict"] == "pass"
    for row in found["groups"][0]["metrics"]:
        assert row["change"] in (0, None)


def test_swapping_the_sides_negates_every_change(costlier):
    forward = metrics_of(diff_json(str(REAL), str(costlier))["groups"][0])
    backward = metrics_of(diff_json(str(costlier), str(REAL))["groups"][0])
    for metric, row in forward.items():
        assert backward[metric]["change"] == pytest.approx(-row["change"], abs=1e-12), metric


def test_the_base_side_is_let_go_before_the_new_side_is_read(monkeypatch):
    """Each side's store (its spill files, its spans) is closed once its metrics are made, so a
    diff of two big exports holds one at a time."""
    from sessions_cli.cli import steps
    from sessions_cli.store.spans import SpanStore

    events = []
    load, close = steps.load, SpanStore.close
    monkeypatch.setattr(steps, "load", lambda *a, **k: (events.append("load"), load(*a, **k))[1])
    monkeypatch.setattr(SpanStore, "close", lambda self: (events.append("close"), close(self))[0])
    result = run("diff", str(GENERATED), str(GENERATED), "--json")
    assert result.exit_code == 0, result.stderr
    assert events[:3] == ["load", "close", "load"]
