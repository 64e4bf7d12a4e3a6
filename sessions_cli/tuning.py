"""Every performance knob in one frozen value, made by the CLI and passed down.

Tests build a `Tuning(...)` with small sizes to reach spilling, many batches or many groups on
small inputs; nothing else in the package reads a size or a worker count of its own.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field


def _cores() -> int:
    return os.cpu_count() or 1


def _read_workers() -> int:
    # Batches decode in parallel (polars releases the GIL); each one in flight holds a batch
    # of raw text and its decoded frame, so the count is capped to keep memory bounded.
    return max(1, min(_cores(), 8))


def _protobuf_processes() -> int:
    # Walking protobuf messages is Python (one core per process); each process holds a batch of
    # bodies and its frame, and costs a start-up, so there are fewer than read threads.
    return max(1, min(_cores(), 4))


def _model_workers() -> int:
    # One group is summarised while the next is read; each group in flight holds its spans.
    return max(1, min(_cores(), 4))


def _chunk_bytes() -> int:
    # Most steps after decoding cost per call, not per byte, so batches are large. The native
    # reader gains up to twice 16 MB and no more (past it memory grows); polars' own decoding
    # holds several times a batch, and is slower and bigger at 32 MB than at 16
    # (benchmarks/RESULTS.md has the measurements).
    return (32 if _native_json() else 16) * 1024 * 1024


def _native_json() -> bool:
    # What read.native.active() answers, asked without importing it: it imports polars,
    # which `--help` must not load. (An extension found but failing to load only makes the
    # fallback's batches the bigger size.)
    found = importlib.util.find_spec("sessions_cli.read._otlp_simdjson") is not None
    return found and os.environ.get("SESSIONS_NATIVE", "1") != "0"


def _from_env(name: str, default: int) -> int | None:
    """A size from the environment (`0` or `none`: no limit); the default when unset or not a
    whole number."""
    text = os.environ.get(name, "").strip().lower()
    if text in ("0", "none"):
        return None
    return int(text) if text.isdigit() else default


@dataclass(frozen=True)
class Tuning:
    # Threads that decode batches of JSON lines at once.
    read_workers: int = field(default_factory=_read_workers)
    # Processes that walk batches of protobuf messages at once, for an input of more than one
    # batch (1: in the main process).
    protobuf_processes: int = field(default_factory=_protobuf_processes)
    # Groups of whole traces summarised at once while the model is built.
    model_workers: int = field(default_factory=_model_workers)
    # A batch of JSON lines (or protobuf bodies) handed to one worker.
    chunk_bytes: int = field(default_factory=_chunk_bytes)
    # A longer line is skipped while it streams past, never held in memory.
    max_line_bytes: int = 256 * 1024 * 1024
    # A longer line is read only by the native reader: decoding it with polars takes about ten
    # times its size in memory. None: no such limit.
    polars_line_bytes: int | None = 64 * 1024 * 1024
    # Formats read whole (a JSON document, CSV, console output, a protobuf body, Parquet from a
    # stream): a larger input is refused with an error instead of exhausting memory (a gzip
    # bomb, /dev/zero). $SESSIONS_MAX_WHOLE_BYTES overrides it; None: no limit.
    max_whole_bytes: int | None = field(default_factory=lambda: _from_env(
        "SESSIONS_MAX_WHOLE_BYTES", 512 * 1024**2))  # fmt: skip
    # Spans held in memory before the store spills to disk by trace; None: never spill.
    memory_rows: int | None = 150_000
    # Spans per group read back from the store: one model build each.
    group_rows: int = 100_000
    # Spans past memory_rows that stay in memory, by polars' estimate, when a command reads
    # them only once (list, stats, diff, convert): bucketed as a spill is, and let go group by
    # group. An export of about a million spans fits; the rest goes to disk.
    once_bytes: int = 256 * 1024**2

    def __post_init__(self) -> None:
        for name in (
            "read_workers",
            "protobuf_processes",
            "model_workers",
            "chunk_bytes",
            "max_line_bytes",
            "group_rows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.polars_line_bytes is not None and self.polars_line_bytes < 1:
            raise ValueError("polars_line_bytes must be at least 1, or None for unlimited")
        if self.max_whole_bytes is not None and self.max_whole_bytes < 1:
            raise ValueError("max_whole_bytes must be at least 1, or None for unlimited")
        if self.memory_rows is not None and self.memory_rows < 1:
            raise ValueError("memory_rows must be at least 1, or None for unlimited")
