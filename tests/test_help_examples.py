"""Every `Examples:` line of every command's --help, and every command line of docs/usage.md,
run as written with a real shell, in a folder laid out as the examples assume: traces/ holding
a session sess-42, main/ and pr/ for diff, a converted baseline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GENERATED, REAL, run

COMMANDS = ["list", "show", "timeline", "stats", "diff", "convert", "completion"]


def examples() -> list[tuple[str, str]]:
    found = []
    for command in COMMANDS:
        text = run(command, "--help").stdout
        block = text.split("Examples:\n", 1)[1] if "Examples:\n" in text else ""
        for line in block.splitlines():
            if not line.startswith("  "):
                break
            found.append((command, line.strip()))
    return found


def doc_lines() -> list[tuple[str, str]]:
    """The lines of the sh blocks of docs/usage.md."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [("docs/usage.md", line) for block in blocks for line in block.splitlines() if line]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    (root / "traces").mkdir()
    text = REAL.read_text().replace("sess-research-7", "sess-42")
    (root / "traces" / "agentmark.otlp.jsonl").write_text(text)
    (root / "traces.jsonl").write_text(text)
    shutil.copy(GENERATED, root / "export.jsonl.gz")
    for side in ("main", "pr"):
        (root / side).mkdir()
        (root / side / "traces.jsonl").write_text(text)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    # The converted files that examples read (`convert`'s own examples write spans.parquet too,
    # but each example must run on its own: `-k` picks any of them).
    for converted in ("baseline.parquet", "spans.parquet"):
        subprocess.run(["sessions", "convert", "traces/", "-o", converted], cwd=root,
                       env=env, check=True, capture_output=True)  # fmt: skip
    return root


@pytest.mark.parametrize(("command", "line"), examples() + doc_lines())
def test_help_example_runs_as_written(workdir, command, line):
    if "| jq" in line and shutil.which("jq") is None:
        pytest.skip("jq is not installed here")
    shell = "bash"
    for other in ("zsh", "fish"):
        if f"completion {other}" in line:
            shell = other
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"],
           "HOME": str(workdir), "GITHUB_STEP_SUMMARY": str(workdir / "summary.md")}  # fmt: skip
    (workdir / ".config" / "fish" / "completions").mkdir(parents=True, exist_ok=True)
    script = re.sub(r"\s+# .*$", "", line)  # the comment after a command
    done = subprocess.run([shell, "-c", f"set -o pipefail 2>/dev/null; {script}"] if shell != "fish"
                          else [shell, "-c", script], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, (line, done.stderr)
    assert "internal error" not in done.stderr
    assert "Usage:" not in done.stderr


def test_every_command_has_examples():
    assert {command for command, _ in examples()} == set(COMMANDS)
