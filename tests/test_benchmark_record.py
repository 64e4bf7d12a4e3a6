"""benchmarks/run.py records each report in RESULTS.md, newest first, keeping what was there."""

from __future__ import annotations

import importlib.util
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


def _run_module():
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reports_go_under_the_runs_heading_newest_first(tmp_path):
    run = _run_module()
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nHand-written history.\n")
    run.record("## first run\n\n| a |\n", results)
    run.record("## second run\n\n| b |\n", results)
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nHand-written history.\n")
    assert text.count(run.RUNS) == 1
    assert text.index("## second run") < text.index("## first run")
    assert text.index(run.RUNS) < text.index("## second run")
    assert [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]


def test_a_missing_results_file_is_made(tmp_path):
    run = _run_module()
    results = tmp_path / "RESULTS.md"
    run.record("## only run\n", results)
    assert results.read_text() == f"{run.RUNS}\n\n## only run\n"
