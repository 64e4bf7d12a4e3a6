"""Where the per-trace table waits for the sessions to be built: in memory, or, when the spans
were spilled (a big export), on disk by session.

A session's figures need all of its traces, and its traces may come from any group of spans.
On disk, each trace row goes to one of 16 buckets by a hash of its session id (traces without
a session to a bucket of their own), buffered and written to Arrow IPC files (as the spans are:
`spans.Spilled`). Sessions are
then built a bucket at a time, and one session's traces are read back from its bucket alone,
so memory follows a sixteenth of the traces, not all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from sessions_cli.store.spans import Spilled

_BUCKETS = 16
_ORPHANS = _BUCKETS  # the bucket of traces without a session
_FLUSH_ROWS = 100_000  # buffered trace rows written out at once, across buckets


def _bucket(session_id: pl.Expr) -> pl.Expr:
    return (
        pl.when(session_id.is_null())
        .then(pl.lit(_ORPHANS, pl.UInt64))
        .otherwise(session_id.hash(seed=11) % _BUCKETS)
    )


class TraceStore:
    """Trace rows, and the spans with metadata (with their trace's session id) beside them."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory  # None: everything stays in memory
        self.traces: list[pl.DataFrame] = []
        self.metadata: list[pl.DataFrame] = []
        self.held = 0
        self.files = {kind: Spilled(_BUCKETS + 1) for kind in ("traces", "metadata")}
        self.empty: dict[str, pl.DataFrame] = {}  # each kind's columns, for empty answers

    def add(self, traces: pl.DataFrame, metadata: pl.DataFrame) -> None:
        """`metadata`: spans with metadata of these traces (trace_id, span_id, start, metadata)."""
        metadata = metadata.join(traces.select("trace_id", "session_id"), on="trace_id").filter(
            pl.col("session_id").is_not_null()
        )
        if not self.empty:
            self.empty = {"traces": traces.clear(), "metadata": metadata.clear()}
        self.traces.append(traces)
        self.metadata.append(metadata)
        self.held += traces.height
        if self.directory is not None and self.held >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        assert self.directory is not None  # made when the store first spills
        for kind, frames in (("traces", self.traces), ("metadata", self.metadata)):
            files = self.files[kind]
            path = self.directory / f"{kind}-{len(files):06d}.arrow"
            files.write(pl.concat(frames), _bucket(pl.col("session_id")), path)
        self.traces, self.metadata, self.held = [], [], 0

    def _read(self, kind: str, bucket: int) -> pl.DataFrame:
        """One bucket's rows: from its files, and from the rows not yet written."""
        held = self.traces if kind == "traces" else self.metadata
        files = self.files[kind]
        parts = [files.read([bucket])] if files else []
        parts += [f.filter(_bucket(pl.col("session_id")) == bucket) for f in held]
        return pl.concat([self.empty[kind], *parts])

    def buckets(self) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        """(traces in start order, spans with metadata) of groups of whole sessions."""
        if self.directory is None:
            yield _in_order(pl.concat(self.traces)), pl.concat(self.metadata)
            return
        for bucket in range(_BUCKETS):
            traces = self._read("traces", bucket)
            if not traces.is_empty():
                yield _in_order(traces), self._read("metadata", bucket)

    def of_session(self, session_id: str) -> pl.DataFrame:
        return self._where(pl.col("session_id") == session_id, session_id)

    def orphans(self) -> pl.DataFrame:
        return self._where(pl.col("session_id").is_null(), None)

    def everything(self) -> pl.DataFrame:
        """Every trace, in start order (tests; commands read a bucket at a time)."""
        if self.directory is None:
            return _in_order(pl.concat(self.traces))
        return _in_order(pl.concat([self._read("traces", b) for b in range(_BUCKETS + 1)]))

    def _where(self, condition: pl.Expr, session_id: str | None) -> pl.DataFrame:
        if self.directory is None:
            return _in_order(pl.concat(self.traces).filter(condition))
        bucket = (
            _ORPHANS
            if session_id is None
            else pl.select(_bucket(pl.lit(session_id, pl.String))).item()
        )
        return _in_order(self._read("traces", bucket).filter(condition))


def _in_order(traces: pl.DataFrame) -> pl.DataFrame:
    return traces.sort("start_ns", "trace_id", nulls_last=True)
