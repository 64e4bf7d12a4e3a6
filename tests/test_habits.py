"""The habits of gh, ccusage, sqlite-utils and jq users: short flags, format aliases, colour
control, completion, the "showing N of M" note, and errors that say what was meant."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess

import pytest

from tests.conftest import REAL, SESSIONS, run, run_json


def test_n_is_limit_and_the_note_says_how_many_matched():
    result = run("list", str(REAL), "-n", "2", "--json")
    assert len(json.loads(result.stdout)) == 2
    assert "sessions: showing 2 of 4 sessions (--limit)" in result.stderr
    assert "showing" not in run("list", str(REAL), "-n", "4").stderr  # all of them shown
    orphans = run("list", "--orphans", str(REAL), "--limit", "1")
    assert "showing 1 of 2 traces (--limit)" in orphans.stderr


def test_tsv_alias():
    assert run("list", str(REAL), "--tsv").stdout.split("\n", 1)[0].startswith("session_id\t")


@pytest.mark.parametrize("alias", ["--jsonl", "--nl"])
def test_jsonl_aliases(alias):
    lines = run("list", str(REAL), alias).stdout.splitlines()
    assert len(lines) == 4
    assert {json.loads(line)["session_id"] for line in lines} >= {"sess-research-7"}


@pytest.mark.parametrize(
    "args",
    [("--json", "--csv"), ("--json", "--format", "csv"), ("--jsonl", "--format", "tsv")],
)
def test_two_formats_asked_for_is_a_usage_error(args):
    result = run("list", str(REAL), *args)
    assert result.exit_code == 2
    assert "ask for different formats" in result.stderr


def test_the_same_format_twice_is_fine():
    assert run("list", str(REAL), "--json", "--format", "json").exit_code == 0


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_no_headers(fmt):
    args = ("list", str(REAL), "--format", fmt, "--columns", "session_id,trace_count")
    with_headers = run(*args).stdout.splitlines()
    without = run(*args, "--no-headers").stdout.splitlines()
    assert with_headers[0].replace("\t", ",") == "session_id,trace_count"
    assert without == with_headers[1:]
    rows = run("stats", str(REAL), "--by", "user", "--csv", "--no-headers").stdout
    assert next(csv.reader(io.StringIO(rows)))[0] in {"alice", "bob", "carol", "dave", "erin"}


def test_color_always_never_and_the_environment(tmp_path):
    args = ("timeline", "sess-research-7", str(REAL))
    assert "\x1b[" not in run(*args).stdout  # not a terminal
    assert "\x1b[" in run(*args, "--color", "always").stdout
    assert "\x1b[" in run(*args, "--colour", "always").stdout
    assert "\x1b[" in run(*args, env={"FORCE_COLOR": "1"}).stdout
    assert "\x1b[" not in run(*args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout
    assert "\x1b[" in run(*args, "--color", "always", env={"NO_COLOR": "1"}).stdout
    assert run(*args, "--color", "sometimes").exit_code == 2


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell):
    script = run("completion", shell).stdout
    assert "_SESSIONS_COMPLETE" in script


def test_completion_completes_commands_and_choices():
    """The protocol the bash script speaks, with the installed console script."""

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_SESSIONS_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(cword)}  # fmt: skip
        done = subprocess.run([SESSIONS], env=env, capture_output=True, text=True, check=True)
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]

    assert "list" in complete("sessions li", 1)
    assert set(complete("sessions list --sort c", 3)) == {"cost"}
    assert {"csv", "json", "jsonl"} <= set(complete("sessions list --format ", 3))


def test_swapped_show_arguments_are_named():
    result = run("show", str(REAL), "sess-research-7")
    assert result.exit_code == 2
    assert "the session id comes first" in result.stderr
    assert run("timeline", str(REAL), "sess-research-7").exit_code == 2


def test_a_trace_id_given_for_a_session_points_to_its_session():
    traces = run_json("show", "sess-research-7", str(REAL))["traces"]
    trace = traces[0]["trace_id"]
    for command in ("show", "timeline"):
        result = run(command, trace[:10], str(REAL))
        assert result.exit_code == 1
        assert f"is a trace of session 'sess-research-7': sessions {command} sess-research-7" in (
            result.stderr
        )
    orphans = json.loads(run("list", "--orphans", str(REAL), "--json").stdout)
    result = run("show", orphans[0]["trace_id"], str(REAL))
    assert "belongs to no session" in result.stderr


def test_convert_help_lists_only_what_convert_uses(tmp_path):
    text = run("convert", "--help").stdout
    assert "--prices" not in text
    assert "--cost-mode" not in text
    assert "--session-key" in text
    out = str(tmp_path / "x.parquet")
    assert run("convert", str(REAL), "-o", out, "--prices", "p.json").exit_code == 2


def test_timeline_help_example_runs(tmp_path):
    """`... --spans --jsonl | jq 'select(.status == "error")'`: one object per line, so jq's
    select works on each (the example used to pipe a JSON array)."""
    text = run("timeline", "--help").stdout
    assert "--spans --jsonl | jq 'select(.status == \"error\")'" in text
    events = run("timeline", "sess-research-7", str(REAL), "--spans", "--jsonl").stdout
    errors = [e for e in map(json.loads, events.splitlines()) if e["status"] == "error"]
    assert errors


# ---------------------------------------------------------------------------------------------
# Narrow terminals


@pytest.mark.parametrize("columns", [100, 80, 60, 40, 20])
def test_ids_and_money_are_never_cut_and_left_out_columns_are_named(columns):
    result = run("list", str(REAL), env={"COLUMNS": str(columns)})
    text = result.stdout
    for session_id in ("sess-research-7", "sess-support-1", "sess-batch-3", "sess-handoff-2"):
        assert f"{session_id} " in text
    for cost in ("$0.0393", "$0.0103", "$0.0003"):
        assert cost in text
    header = text.splitlines()[0].split()
    left_out = {"NAME", "USER", "START", "DURATION", "TRACES", "TOKENS", "ERRORS"} - set(header)
    if left_out:
        note = next(line for line in result.stderr.splitlines() if "left out" in line)
        assert set(note.split("left out ")[1].split(" to fit")[0].split(", ")) == left_out
        assert f"to fit {columns} columns" in note
    else:
        assert "left out" not in result.stderr
    if columns >= 60:  # room for all that is never cut, and more
        assert max(map(len, text.splitlines())) <= columns


def test_chosen_columns_are_cut_but_never_left_out():
    args = ("list", str(REAL), "--columns", "session_id,session_name,user_id,cost_usd")
    result = run(*args, env={"COLUMNS": "30"})
    assert result.stdout.splitlines()[0].split() == ["SESSION", "NAME", "USER", "COST"]
    assert "left out" not in result.stderr


def test_stats_groups_keep_the_group_name_whole():
    result = run("stats", str(REAL), "--by", "model", env={"COLUMNS": "80"})
    assert "claude-3-5-sonnet-20241022 " in result.stdout
    assert "left out" in result.stderr


def test_wide_characters_line_up(tmp_path):
    from wcwidth import wcswidth

    from tests.otlp_builder import document, lines, span

    names = ["日本語のセッション", "plain", "emoji 🚀🚀"]
    path = tmp_path / "wide.jsonl"
    path.write_text(lines(*(document(span(f"t{i}", "s", start_ms=i, session__id=f"s{i}",
                                          agentmark__session_name=name))
                            for i, name in enumerate(names))))  # fmt: skip
    rows = run("list", str(path), "--columns", "session_name,session_id").stdout.splitlines()
    # the id column starts at the same terminal cell on every line
    starts = {wcswidth(line[: line.index(" s")]) for line in rows[2:]}
    assert len(starts) == 1


# ---------------------------------------------------------------------------------------------
# --jq


def test_jq_filters_like_gh_does():
    ids = run("list", str(REAL), "--jq", ".[].session_id").stdout.splitlines()
    assert sorted(ids) == ["sess-batch-3", "sess-handoff-2", "sess-research-7", "sess-support-1"]
    first = run("list", str(REAL), "--sort", "cost", "--jq", ".[0] | {session_id, cost_usd}")
    assert json.loads(first.stdout) == {"session_id": "sess-research-7", "cost_usd": 0.0393}
    assert run("stats", str(REAL), "--jq", ".totals.sessions").stdout == "4\n"
    show = run("show", "sess-research-7", str(REAL), "--jq", ".traces | length").stdout
    assert show == "2\n"
    assert run("list", str(REAL), "--json", "--jq", "length").stdout == "4\n"


def test_jq_mistakes():
    syntax = run("list", str(REAL), "--jq", ".[")
    assert syntax.exit_code == 2
    assert "syntax error" in syntax.stderr
    runtime = run("list", str(REAL), "--jq", ".a")
    assert runtime.exit_code == 1
    assert "sessions: error: --jq: Cannot index array with string" in runtime.stderr
    both = run("list", str(REAL), "--jq", ".", "--csv")
    assert both.exit_code == 2
    assert "--csv and --jq ask for different formats" in both.stderr


# ---------------------------------------------------------------------------------------------
# jq-friendly values


def _ms_of_iso(text: str) -> int:
    """Whole ms since the epoch of `2026-11-26T08:48:07.847780620Z`, by hand."""
    from datetime import datetime, timezone

    seconds, fraction = text.rstrip("Z").split(".")
    whole = datetime.fromisoformat(seconds).replace(tzinfo=timezone.utc)
    return int(whole.timestamp()) * 1000 + int(fraction[:3])


def test_unix_ms_next_to_every_iso_time():
    for row in run_json("list", str(REAL)):
        assert row["start_unix_ms"] == _ms_of_iso(row["start"])
        assert row["end_unix_ms"] == _ms_of_iso(row["end"])
    shown = run_json("show", "sess-research-7", str(REAL))
    for row in [shown["session"], *shown["traces"]]:
        assert row["start_unix_ms"] == _ms_of_iso(row["start"])
    events = run_json("timeline", "sess-research-7", str(REAL), "--spans")
    assert all(e["end_unix_ms"] == _ms_of_iso(e["end"]) for e in events)
    orphans = run_json("list", "--orphans", str(REAL))
    assert all(o["start_unix_ms"] == _ms_of_iso(o["start"]) for o in orphans)
    # what jq users reach for works: the ISO text with nanoseconds does not parse in jq
    day = run("list", str(REAL), "--jq", ".[0].start_unix_ms / 1000 | todate").stdout
    assert day.startswith("2026-11-26T08:48:07Z")


def test_counts_are_integers_in_every_format():
    text = run("stats", str(REAL), "--csv").stdout
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(text))}
    assert (rows["total_tokens"]["min"], rows["total_tokens"]["max"]) == ("1408", "9860")
    assert (rows["trace_count"]["min"], rows["trace_count"]["max"]) == ("2", "3")
    assert rows["cost_usd"]["min"] == "0.00026"
    dist = {d["metric"]: d for d in run_json("stats", str(REAL))["distributions"]}
    assert dist["trace_count"]["max"] == 3
    assert isinstance(dist["trace_count"]["max"], int)
    line = run("stats", str(REAL), "--jsonl").stdout.splitlines()[1]
    assert '"min": 1408,' in line


def test_timeline_models_is_a_list_as_in_list_and_show():
    events = run_json("timeline", "sess-support-1", str(REAL), "--spans")
    trace = next(e for e in events if e["kind"] == "trace" and e["model"])
    assert trace["models"] == trace["model"].split(", ")
    call = next(e for e in events if e["kind"] == "span" and e["model"])
    assert call["models"] == [call["model"]]
    assert all(e["models"] == [] for e in events if e["model"] is None)


# ---------------------------------------------------------------------------------------------
# Files that are not traces: what was expected, what was found, one rule for one file or many


@pytest.fixture
def not_spans(tmp_path):
    path = tmp_path / "costs.csv"
    path.write_text("name,cost\nfoo,1\n")
    return path


def test_a_csv_of_other_columns_says_which_it_lacks_and_has(not_spans):
    result = run("list", str(not_spans))
    assert result.exit_code == 1
    assert (
        "a CSV table without the span record columns trace_id and span_id (found: name, cost"
        in (result.stderr)
    )


def test_a_named_file_is_an_error_alone_or_beside_others(not_spans):
    beside = run("list", str(not_spans), str(REAL))
    assert beside.exit_code == 1
    assert "not a trace file" in beside.stderr


def test_a_file_found_in_a_directory_is_skipped_with_a_warning(not_spans):
    (not_spans.parent / "good.jsonl").write_text(REAL.read_text())
    result = run("list", str(not_spans.parent), "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 4
    assert "costs.csv: not a trace file, skipped: a CSV table without" in result.stderr
    globbed = run("list", str(not_spans.parent / "*"), "--json")
    assert globbed.exit_code == 0
    assert run("list", str(not_spans.parent), "--strict").exit_code == 1


def test_a_langfuse_ui_export_is_named_as_such(tmp_path):
    path = tmp_path / "langfuse.json"
    path.write_text(json.dumps([{"id": "t1", "timestamp": "2026-01-01T00:00:00Z", "name": "chat",
                                 "sessionId": "s1", "observations": []}]))  # fmt: skip
    result = run("list", str(path))
    assert "a Langfuse UI export (traces or observations), not OpenTelemetry spans" in (
        result.stderr
    )
    assert "resourceSpans is" not in result.stderr


def test_aliases_of_other_tools():
    fields = run("list", str(REAL), "--fields", "session_id", "--csv").stdout
    assert fields.splitlines()[0] == "session_id"
    paris = run("list", str(REAL), "-z", "Europe/Paris", "--columns", "session_id,start").stdout
    assert "09:48" in paris  # 08:48 UTC
    assert run("list", str(REAL), "--timezone", "Europe/Paris").exit_code == 0
    by_cost = ["--sort", "cost", "--jq", ".[].session_id"]
    assert (
        run("list", str(REAL), *by_cost, "--order", "asc").stdout
        == run("list", str(REAL), *by_cost, "--asc").stdout
    )
    assert run("list", str(REAL), "--asc", "--order", "desc").exit_code == 2


def test_an_unknown_field_suggests_the_one_meant():
    result = run("list", str(REAL), "--columns", "session_id,cost")
    assert result.exit_code == 2
    assert "unknown field 'cost' (did you mean 'cost_usd'?)" in result.stderr
    assert "(did you mean 'user_id'?)" in run("list", str(REAL), "--columns", "usr_id").stderr


# ---------------------------------------------------------------------------------------------
# A pager on a terminal


def _on_a_terminal(*args: str, env: dict) -> bytes:
    """Run the installed `sessions` with a pseudo-terminal as stdin and stdout, as a shell
    would; what it shows on the terminal."""
    import pty

    leader, follower = pty.openpty()
    done = subprocess.run(
        [SESSIONS, *args], stdin=follower, stdout=follower, stderr=subprocess.PIPE,
        env={**os.environ, **env}, timeout=60,
    )  # fmt: skip
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end is closed: all was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert done.returncode == 0, done.stderr
    return shown


def test_a_terminal_gets_the_pager_and_no_pager_turns_it_off(tmp_path):
    paged = tmp_path / "paged.txt"
    env = {"PAGER": f"tee {paged}"}
    shown = _on_a_terminal("list", str(REAL), env=env)
    assert "sess-research-7" in paged.read_text()
    assert b"sess-research-7" in shown
    paged.unlink()
    _on_a_terminal("list", str(REAL), "--no-pager", env=env)
    assert not paged.exists()
    # piped, there is no pager whatever $PAGER says
    done = subprocess.run([SESSIONS, "list", str(REAL)], capture_output=True,
                          env={**os.environ, **env}, check=True)  # fmt: skip
    assert b"sess-research-7" in done.stdout
    assert not paged.exists()


def test_totals_row_sums_what_is_shown():
    lines = run("list", str(REAL), "--totals").stdout.splitlines()
    assert lines[-2] == lines[1]  # the rule again
    # 3 + 2 + 2 + 2 traces, the sessions' tokens, the known costs as a lower bound (sess-batch-3
    # is unpriced), sess-research-7's two error spans
    assert lines[-1].split() == ["TOTAL", "9", "22,468", "≥$0.0499", "2"]
    limited = run("list", str(REAL), "--totals", "--sort", "cost", "-n", "1").stdout
    assert limited.splitlines()[-1].split() == ["TOTAL", "2", "9,200", "$0.0393", "2"]
    assert run("list", str(REAL), "--totals", "--json").exit_code == 2


def test_json_fields_as_gh_spells_it(tmp_path, monkeypatch):
    rows = json.loads(run("list", str(REAL), "--json", "session_id,cost_usd").stdout)
    assert list(rows[0]) == ["session_id", "cost_usd"]
    events = json.loads(run("timeline", "sess-research-7", str(REAL), "--json", "kind").stdout)
    assert {tuple(e) for e in events} == {("kind",)}
    # a path or a session id after a bare --json is still a path or a session id
    assert len(json.loads(run("list", "--json", str(REAL)).stdout)) == 4
    shown = json.loads(run("show", "--json", "sess-research-7", str(REAL)).stdout)
    assert shown["session"]["session_id"] == "sess-research-7"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "traces").write_text(REAL.read_text())  # a file named like a field list
    assert len(json.loads(run("list", "--json", "traces").stdout)) == 4
    unknown = run("list", str(REAL), "--json", "session_id,cost")
    assert unknown.exit_code == 2
    assert "did you mean 'cost_usd'" in unknown.stderr
