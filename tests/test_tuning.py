"""Tuning: worker counts follow the machine's cores (bounded, for memory); sizes are checked."""

from __future__ import annotations

import pytest

from sessions_cli import tuning
from sessions_cli.tuning import Tuning


@pytest.mark.parametrize(
    ("cores", "read_workers", "model_workers"),
    [(None, 1, 1), (1, 1, 1), (2, 2, 2), (6, 6, 4), (64, 8, 4)],
)
def test_workers_follow_the_cores(monkeypatch, cores, read_workers, model_workers):
    monkeypatch.setattr(tuning.os, "cpu_count", lambda: cores)
    made = Tuning()
    assert (made.read_workers, made.model_workers) == (read_workers, model_workers)


@pytest.mark.parametrize(
    "bad", [{"read_workers": 0}, {"chunk_bytes": 0}, {"memory_rows": 0}, {"group_rows": -1}]
)
def test_sizes_below_one_are_refused(bad):
    with pytest.raises(ValueError, match="must be at least 1"):
        Tuning(**bad)


def test_unlimited_memory_is_none_and_the_value_is_frozen():
    unlimited = Tuning(memory_rows=None)
    assert unlimited.memory_rows is None
    with pytest.raises(AttributeError):
        unlimited.chunk_bytes = 1  # type: ignore[misc]
