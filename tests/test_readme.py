"""The README's usage lines, run as written from the repository root with a real shell."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _usage_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Usage\n.*?```sh\n(.*?)```", text, re.S)
    assert block, "the README has a Usage section with a sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize("line", _usage_lines())
def test_readme_usage_line_runs_as_written(line, tmp_path):
    if "| jq" in line and shutil.which("jq") is None:
        pytest.skip("jq is not installed here")
    # Run from a copy of the fixtures, so files the line writes stay out of the clone.
    shutil.copytree(ROOT / "fixtures", tmp_path / "fixtures")
    bin_dir = str(Path(sys.executable).parent)  # the `sessions` of this environment
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", line],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    expected = 3 if "# exit 3" in line else 0
    assert done.returncode == expected, done.stderr
    assert "internal error" not in done.stderr
    written = re.search(r" -o (\S+)", line)
    if written and expected == 0:  # a line that writes a file wrote it
        assert (tmp_path / written.group(1)).stat().st_size > 0
    elif expected == 0 and "> " not in line:
        assert done.stdout.strip(), "the line printed something"
