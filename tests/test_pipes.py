"""A few real processes and pipes, as in a shell: the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REAL, SESSIONS, run
from tests.otlp_builder import document, lines, span


def test_json_pipes_into_a_json_tool():
    result = subprocess.run(
        f"'{SESSIONS}' list '{REAL}' --json | '{sys.executable}' -m json.tool",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(json.loads(result.stdout)) == 4


@pytest.fixture(scope="module")
def many_sessions(tmp_path_factory):
    """12,000 one-span sessions: more output than a pipe buffer, and more rows than one slice
    of rendering, so the write that fails after `head` exits can be a later one."""
    big = tmp_path_factory.mktemp("pipes") / "big.jsonl"
    big.write_text(
        lines(*(document(span(f"t{i}", "1", session__id=f"s-{i}")) for i in range(12_000)))
    )
    return big


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_head_closes_the_pipe_without_a_traceback(many_sessions, fmt):
    result = subprocess.run(
        f"set -o pipefail; '{SESSIONS}' list '{many_sessions}' --format {fmt} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        executable="/bin/bash",
    )
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.strip()


def test_stdin_pipe_and_python_dash_m(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sessions_cli", "list", "--csv", "--columns", "session_id"],
        input=REAL.read_bytes(),
        capture_output=True,
        check=True,
    )
    assert sorted(result.stdout.decode().split()) == [
        "sess-batch-3",
        "sess-handoff-2",
        "sess-research-7",
        "sess-support-1",
        "session_id",
    ]


def test_errors_reach_the_shell_as_exit_codes_without_tracebacks():
    result = subprocess.run([SESSIONS, "list", "/nonexistent"], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (1, "")
    assert "Traceback" not in result.stderr
    usage = subprocess.run(
        [SESSIONS, "list", str(REAL), "--since", "soon"], capture_output=True, text=True
    )
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr


def test_phase_timings_on_request_only():
    quiet = subprocess.run([SESSIONS, "list", str(REAL)], capture_output=True, text=True)
    assert "timing" not in quiet.stderr
    timed = subprocess.run(
        [SESSIONS, "list", str(REAL)],
        capture_output=True,
        text=True,
        env={**os.environ, "SESSIONS_TIMING": "1"},
    )
    assert timed.returncode == 0
    (line,) = [x for x in timed.stderr.splitlines() if "timing" in x]
    assert line.startswith("sessions: timing: read ")
    assert ", model " in line


def test_a_breached_budget_still_fails_when_the_reader_stops_early(monkeypatch):
    """`sessions stats ... | head -1` in CI: the budget's exit code must survive the reader
    going away. A real pipe closes at a moment the test cannot choose, so the closed pipe is
    simulated where stdout is written."""
    from sessions_cli.cli import steps

    def reader_gone(text):
        raise steps.ReaderGone

    monkeypatch.setattr(steps, "out", reader_gone)
    result = run("stats", str(REAL), "--max-session-cost", "0")
    assert result.exit_code == 3
    assert "budget:" in result.stderr
    with pytest.raises(steps.ReaderGone):  # nothing over budget: `main` ends quietly with 0
        run("stats", str(REAL))
