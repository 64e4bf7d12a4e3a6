from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

from sessions_cli.cli.main import cli

# Hypothesis: CI runs a bounded number of examples; `--hypothesis-profile=long` runs many more.
settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile("long", max_examples=3000, deadline=None)
settings.load_profile("default")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL = FIXTURES / "agentmark.otlp.jsonl"
REAL_PROTO = FIXTURES / "agentmark.protojson.jsonl"
GENERATED = FIXTURES / "generated.otlp.jsonl.gz"  # benchmarks/generate.py, 2,000 spans
EDGE = FIXTURES / "edge"

# The console script installed beside this interpreter (pip install -e .), else on PATH: for
# tests that run it as a real process, with pipes and an environment of their own.
_BESIDE = Path(sys.executable).parent / "sessions"
SESSIONS = str(_BESIDE) if _BESIDE.exists() else shutil.which("sessions")
assert SESSIONS, "the `sessions` console script is not installed: pip install -e '.[test]'"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path_factory):
    for name in ("SESSIONS_TRACES", "SESSIONS_CONFIG", "COLUMNS", "NO_COLOR", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    # The price-rate cache of a test run lives and dies with it.
    monkeypatch.setenv("SESSIONS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def run(*args: str, input: bytes | str | None = None, env: dict | None = None):
    """Invoke the CLI as a user would; stdout and stderr are kept apart."""
    return CliRunner().invoke(
        cli, list(args), input=input, env=env, catch_exceptions=False, prog_name="sessions"
    )


def run_json(*args: str, input=None):
    result = run(*args, "--json", input=input)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def by_id(rows: list[dict], key: str = "session_id") -> dict[str, dict]:
    return {row[key]: row for row in rows}
