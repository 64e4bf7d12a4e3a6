"""Where the per-trace table waits for the sessions to be built: in memory, or, when the spans
were spilled (a big export) and the trace rows outgrow `memory_bytes`, on disk by session.

A session's figures need all of its traces, and its traces may come from any group of spans.
Each trace row belongs to one of 16 buckets by a hash of its session id (traces without a
session to a bucket of their own). For a big export, sessions are built a bucket at a time, so
the model's working memory follows a sixteenth of the traces, not all of them. Trace rows that
fit in memory are put in bucket order as they are made; past that, they are buffered and
written to Arrow IPC files (as the spans are: `spans.Spilled`), and one session's traces are
read back from its bucket alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sessions_cli.store.spans import Spilled, by_bucket

_BUCKETS = 16
_ORPHANS = _BUCKETS  # the bucket of traces without a session
_FLUSH_ROWS = 100_000  # buffered trace rows written out at once, across buckets, once spilling
# Trace rows (and their spans with metadata) held, by polars' estimate, before they go to
# disk. A trace row is wide (a list of per-model sums): writing them out and reading them back
# cost more than writing the spans, so they stay in memory up to this bound, which keeps an
# export of about a million spans in a few hundred thousand traces well under 1 GiB in all.
_MEMORY_BYTES = 192 * 1024**2


def _bucket(session_id: pl.Expr) -> pl.Expr:
    return (
        pl.when(session_id.is_null())
        .then(pl.lit(_ORPHANS, pl.UInt64))
        .otherwise(session_id.hash(seed=11) % _BUCKETS)
    )


@dataclass(frozen=True)
class Rows:
    """Trace rows and their spans with metadata as `TraceStore.add` takes them (`prepare`)."""

    traces: pl.DataFrame
    metadata: pl.DataFrame  # with their trace's session id
    # Where each bucket starts in each frame (then the end), when they are in bucket order.
    starts: tuple[list[int], list[int]] | None


class TraceStore:
    """Trace rows, and the spans with metadata (with their trace's session id) beside them."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory  # None: everything stays in memory, as one bucket
        self.memory_bytes = _MEMORY_BYTES
        self.traces: list[pl.DataFrame] = []
        self.metadata: list[pl.DataFrame] = []
        self.trace_starts: list[list[int]] = []  # of each frame held (Rows.starts)
        self.metadata_starts: list[list[int]] = []
        self.held = 0  # rows
        self.held_bytes = 0
        self.files = {kind: Spilled(_BUCKETS + 1) for kind in ("traces", "metadata")}
        self.empty: dict[str, pl.DataFrame] = {}  # each kind's columns, for empty answers

    def prepare(self, traces: pl.DataFrame, metadata: pl.DataFrame) -> Rows:
        """`traces`, and `metadata` (their spans with metadata: trace_id, span_id, start,
        metadata), as `add` takes them: in bucket order when the store has buckets. Called
        where the rows are made (on the model's threads), so that sorting them is not left to
        one thread at the end; it reads nothing `add` changes."""
        metadata = metadata.join(traces.select("trace_id", "session_id"), on="trace_id").filter(
            pl.col("session_id").is_not_null()
        )
        if self.directory is None:
            return Rows(traces, metadata, None)
        bucket = _bucket(pl.col("session_id"))
        traces, trace_starts = by_bucket(traces, bucket, _BUCKETS + 1)
        metadata, metadata_starts = by_bucket(metadata, bucket, _BUCKETS + 1)
        return Rows(traces, metadata, (trace_starts, metadata_starts))

    def add(self, rows: Rows) -> None:
        traces, metadata = rows.traces, rows.metadata
        if not self.empty:
            self.empty = {"traces": traces.clear(), "metadata": metadata.clear()}
        self.traces.append(traces)
        self.metadata.append(metadata)
        if rows.starts is not None:
            self.trace_starts.append(rows.starts[0])
            self.metadata_starts.append(rows.starts[1])
        self.held += traces.height
        self.held_bytes += int(traces.estimated_size() + metadata.estimated_size())
        if self.directory is None:
            return
        if self.held_bytes > self.memory_bytes or (self.spilled and self.held >= _FLUSH_ROWS):
            self._flush()

    @property
    def spilled(self) -> bool:
        return bool(self.files["traces"])

    def _flush(self) -> None:
        assert self.directory is not None  # made when the store first spills
        for kind, frames in (("traces", self.traces), ("metadata", self.metadata)):
            files = self.files[kind]
            path = self.directory / f"{kind}-{len(files):06d}.arrow"
            files.write(pl.concat(frames), _bucket(pl.col("session_id")), path)
        self.traces, self.metadata, self.held, self.held_bytes = [], [], 0, 0
        self.trace_starts, self.metadata_starts = [], []

    def _read(self, kind: str, bucket: int) -> pl.DataFrame:
        """One bucket's rows: from its files, and from the rows not yet written."""
        held = self.traces if kind == "traces" else self.metadata
        files = self.files[kind]
        parts = [files.read([bucket])] if files else []
        parts += [f.filter(_bucket(pl.col("session_id")) == bucket) for f in held]
        return pl.concat([self.empty[kind], *parts])

    def buckets(self) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        """(traces, spans with metadata) of groups of whole sessions; the traces in no
        particular order (`in_start_order` puts them in order where the work is done)."""
        if self.directory is None:
            yield pl.concat(self.traces), pl.concat(self.metadata)
            return
        if not self.spilled:
            yield from self._held_buckets()
            return
        for bucket in range(_BUCKETS):
            traces = self._read("traces", bucket)
            if not traces.is_empty():
                yield traces, self._read("metadata", bucket)

    def _held_buckets(self) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        """The buckets of the rows held in memory, each frame already in bucket order
        (`prepare`: one sort of them all held a second copy of every row at once): a bucket's
        slices of every frame put together."""
        if not self.traces:
            return
        for number in range(_BUCKETS):  # the orphans bucket has no sessions
            rows = _slices(self.traces, self.trace_starts, number)
            if not rows.is_empty():
                yield rows, _slices(self.metadata, self.metadata_starts, number)

    def of_session(self, session_id: str) -> pl.DataFrame:
        return self._where(pl.col("session_id") == session_id, session_id)

    def orphans(self) -> pl.DataFrame:
        return self._where(pl.col("session_id").is_null(), None)

    def everything(self) -> pl.DataFrame:
        """Every trace, in start order (tests; commands read a bucket at a time)."""
        if not self.spilled:
            return in_start_order(pl.concat(self.traces))
        return in_start_order(pl.concat([self._read("traces", b) for b in range(_BUCKETS + 1)]))

    def _where(self, condition: pl.Expr, session_id: str | None) -> pl.DataFrame:
        if not self.spilled:
            return in_start_order(pl.concat(self.traces).filter(condition))
        bucket = (
            _ORPHANS
            if session_id is None
            else pl.select(_bucket(pl.lit(session_id, pl.String))).item()
        )
        return in_start_order(self._read("traces", bucket).filter(condition))


def _slices(frames: list[pl.DataFrame], starts: list[list[int]], bucket: int) -> pl.DataFrame:
    """One bucket's rows of frames in bucket order (`_in_buckets`), as one frame."""
    return pl.concat(
        frame.slice(where[bucket], where[bucket + 1] - where[bucket])
        for frame, where in zip(frames, starts, strict=True)
    )


def in_start_order(traces: pl.DataFrame) -> pl.DataFrame:
    return traces.sort("start_ns", "trace_id", nulls_last=True)
