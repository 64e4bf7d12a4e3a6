"""Nothing read is not a pass (contract §3): a budget check on input without spans fails, and an
empty PATH never means the current directory."""

from __future__ import annotations

import pytest

from tests.conftest import REAL, run

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


def test_a_budget_on_real_spans_is_unaffected():
    result = run("stats", str(REAL), "--max-session-cost", "1")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("command", ["list", "stats"])
@pytest.mark.parametrize("path", ["", "  "])
def test_an_empty_path_is_a_usage_error_not_the_current_directory(command, path):
    result = run(command, path)
    assert result.exit_code == 2
    assert "an empty PATH was given" in result.stderr
