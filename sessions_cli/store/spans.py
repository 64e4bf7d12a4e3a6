"""Where read spans wait for the model: in memory, or, past a size, on disk by trace.

Every number the model computes is per trace first (usage, roots, sessions), so spans can be
processed in groups as long as a trace is never split between groups. Up to `memory_rows` spans
are held as they are read. Beyond that the store spills: each span goes to one of 64 buckets by
a hash of its trace id, buffered and written to temporary Arrow IPC files (uncompressed: as
fast as the disk, and categoricals survive), and the model later reads a few buckets at a
time, so spans do not accumulate in memory. Within a group, spans keep the order they were
read in, so "first read wins" still holds. When the command reads the spans only once, the
first buckets stay in memory up to a bound instead, and each is let go as it is read.

Each flush of the buffer is one file, its rows in bucket order, so that a run of buckets is one
slice of every file: a file per bucket cost polars' fixed price per file written, and was most
of the time spent spilling.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import polars as pl

from sessions_cli.errors import InputError
from sessions_cli.read.schema import compact, empty_spans

# Measured on 1M spans: 150k/100k peak at 325 MB, 400k/250k at 450 MB, equally fast.
_BUCKETS = 64
_FLUSH_ROWS = 100_000  # buffered spans written out at once, across buckets
_RUN = 8  # buckets per part of a flush held in memory


# A span the model can place: one without a valid trace or span id is dropped, and counted.
HAS_IDS = pl.col("trace_id").is_not_null() & pl.col("span_id").is_not_null()


class SpanStore:
    def __init__(self, memory_rows: int, group_rows: int = 100_000, *, once_bytes: int = 0) -> None:
        self.memory_rows, self.group_rows = memory_rows, group_rows
        self.frames: list[pl.DataFrame] = []
        self.held = 0
        self.directory: Path | None = None  # set once spilled
        self.parts = Spilled(_BUCKETS)
        # Spans read only once (through `groups`, never `spans_of`) may stay in memory past
        # `memory_rows`, up to this many bytes by polars' estimate: put in buckets as a spill
        # would be, and let go as their group is handed over, so that they are not written out
        # and read back.
        self.once_bytes = once_bytes
        self.in_memory: list[dict[int, pl.DataFrame]] = []  # per flush: `_partitioned`
        self.held_rows = [0] * _BUCKETS  # of each bucket, in memory
        self.handed_over: set[int] = set()  # buckets of `in_memory` already let go
        self.spill_seconds = 0.0  # spent spilling, in memory or to disk ($SESSIONS_TIMING)
        self.read_seconds = 0.0  # waited for the input while groups are taken (Parquet)
        self.rows = 0
        self.without_ids = 0  # spans dropped for want of a valid trace or span id
        self.conflicting_duplicates = 0  # known once groups() has been read through

    # -- writing ------------------------------------------------------------------------------

    def add(self, frame: pl.DataFrame) -> None:
        valid = frame.filter(HAS_IDS)
        self.without_ids += frame.height - valid.height
        frame = valid
        if frame.is_empty():
            return
        self.rows += frame.height
        self.frames.append(frame)
        self.held += frame.height
        if self.directory is None and self.held > self.memory_rows:
            self.directory = Path(tempfile.mkdtemp(prefix="sessions-spill-"))
        if self.directory is not None and self.held >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        started = time.perf_counter()
        buffered = pl.concat(self.frames)
        self.frames, self.held = [], 0
        bucket = pl.col("trace_id").hash(seed=7) % _BUCKETS
        size = int(buffered.estimated_size())
        if size <= self.once_bytes:
            self.once_bytes -= size
            parts, counts = _partitioned(buffered, bucket)
            self.in_memory.append(parts)
            for number, rows in counts:
                self.held_rows[number] += rows
        else:
            # This flush and every later one go to disk: a bucket's rows in memory are then
            # all read before any of its rows on disk, as they were read.
            self.once_bytes = 0
            assert self.directory is not None  # made when the store first spills
            path = self.directory / f"spans-{len(self.parts):06d}.arrow"
            self.parts.write(buffered, bucket, path)
        self.spill_seconds += time.perf_counter() - started

    def close(self) -> None:
        self.frames, self.in_memory = [], []  # spans held in memory go too
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SpanStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------

    @property
    def spilled(self) -> bool:
        return self.directory is not None

    def finish(self) -> None:
        if self.spilled and self.frames:
            self._flush()

    def groups(self) -> Iterator[pl.DataFrame]:
        """The spans, deduplicated (first read wins), a trace never split between groups."""
        self.conflicting_duplicates = 0
        for group in self._raw_groups():
            yield self._dedupe(group)

    def _dedupe(self, spans: pl.DataFrame) -> pl.DataFrame:
        deduped, conflicts = first_readings(spans)
        self.conflicting_duplicates += conflicts
        return deduped

    def _raw_groups(self) -> Iterator[pl.DataFrame]:
        if not self.spilled:
            yield pl.concat(self.frames) if self.frames else compact(empty_spans())
            return
        self.finish()
        first, size = 0, 0
        for bucket in range(_BUCKETS):
            count = self.parts.rows(bucket) + self.held_rows[bucket]
            if size and size + count > self.group_rows:
                yield self._buckets(range(first, bucket), hand_over=True)
                first, size = bucket, 0
            size += count
        if size:
            yield self._buckets(range(first, _BUCKETS), hand_over=True)

    def _buckets(self, buckets: Sequence[int], *, hand_over: bool = False) -> pl.DataFrame:
        """The spilled rows of these buckets (ascending) as one chunk: those in memory, flush
        after flush, then those on disk. `hand_over`: the ones in memory are let go."""
        assert not self.handed_over.intersection(buckets), "spans read once were read again"
        runs = sorted({b // _RUN for b in buckets})
        wanted = pl.col("_bucket").is_in(list(buckets))
        held = [
            flush[run].filter(wanted).drop("_bucket")
            for flush in self.in_memory
            for run in runs
            if run in flush
        ]
        if hand_over and self.in_memory:
            self.handed_over.update(buckets)
            for run in runs:  # a run's part goes once every bucket of it has been handed over
                if self.handed_over.issuperset(range(run * _RUN, (run + 1) * _RUN)):
                    for flush in self.in_memory:
                        flush.pop(run, None)
        if not self.parts:
            return pl.concat(held).rechunk() if held else compact(empty_spans())
        return pl.concat([*held, self.parts.read(buckets)]).rechunk()

    def spans_of(self, trace_ids: list[str]) -> pl.DataFrame:
        """The spans of these traces, deduplicated (first read wins)."""
        wanted = pl.Series(trace_ids, dtype=pl.String)
        if not self.spilled:
            spans = pl.concat(self.frames) if self.frames else compact(empty_spans())
        else:
            self.finish()
            spans = self._buckets(sorted(set((wanted.hash(seed=7) % _BUCKETS).to_list())))
        return first_readings(spans.filter(pl.col("trace_id").is_in(wanted)))[0]


class Spilled:
    """Rows on disk by bucket: one temporary Arrow file per write, its rows in bucket order
    (each bucket's in the order written), and where each bucket starts in each file."""

    # Rows per Arrow record batch. A slice is read whole batches at a time: smaller batches
    # waste less at a slice's ends, but each one costs a little to write and read.
    BATCH_ROWS = 4096

    def __init__(self, buckets: int) -> None:
        self.buckets = buckets
        self.files: list[tuple[Path, list[int]]] = []  # (path, start of each bucket, and end)

    def __len__(self) -> int:
        return len(self.files)

    def write(self, frame: pl.DataFrame, bucket: pl.Expr, path: Path) -> None:
        """`frame` as the file `path`; `bucket` numbers each row from 0 to buckets - 1."""
        in_order, starts = by_bucket(frame, bucket, self.buckets)
        write_part(in_order, path, batch_rows=self.BATCH_ROWS)
        self.files.append((path, starts))

    def rows(self, bucket: int) -> int:
        return sum(starts[bucket + 1] - starts[bucket] for _, starts in self.files)

    def read(self, buckets: Iterable[int]) -> pl.DataFrame:
        """The rows of these buckets (ascending), file after file, as one chunk. Rechunked here,
        while nothing else is held: the model's first expression over several chunks would
        copy the frame anyway, with the chunked one still alive."""
        runs = _runs(sorted(buckets))
        scans = [
            pl.scan_ipc(path).slice(starts[first], starts[end] - starts[first])
            for path, starts in self.files
            for first, end in runs
            if starts[end] > starts[first]
        ]
        if not scans:  # no rows: the first file's columns, none of its rows
            return pl.scan_ipc(self.files[0][0]).head(0).collect()
        return pl.concat(scans).collect().rechunk()


def by_bucket(frame: pl.DataFrame, bucket: pl.Expr, buckets: int) -> tuple[pl.DataFrame, list[int]]:
    """`frame`'s rows in bucket order (each bucket's in their order), and where each bucket
    starts, and the last one ends; `bucket` numbers each row from 0 to buckets - 1."""
    # A stable sort, not a gather by arg_sort: gathering nested columns (a trace's
    # calls_by_model) by index was many times slower.
    numbers = frame.select(bucket.cast(pl.UInt32)).to_series()
    sizes = [0] * buckets
    for number, rows in numbers.value_counts().iter_rows():
        sizes[number] = rows
    in_order = frame.with_columns(numbers.alias("_bucket")).sort("_bucket", maintain_order=True)
    return in_order.drop("_bucket"), [0, *itertools.accumulate(sizes)]


def _partitioned(
    frame: pl.DataFrame, bucket: pl.Expr
) -> tuple[dict[int, pl.DataFrame], list[tuple[int, int]]]:
    """`frame`'s rows by run of `_RUN` buckets, in their order, numbered by bucket (`_bucket`),
    as frames of their own that can be let go one at a time; and (bucket, rows) counts. Runs,
    not buckets: each part costs a few calls, and a group takes several buckets anyway.
    `partition_by` copies only the views of a text column: every part would keep the whole
    frame's text alive until the last part went, and the peak grew by all of it. Joining each
    text to "" writes it out anew for the part alone."""
    numbered = frame.with_columns(bucket.cast(pl.UInt32).alias("_bucket"))
    counts = list(numbered.get_column("_bucket").value_counts().iter_rows())
    parts = numbered.with_columns((pl.col("_bucket") // _RUN).alias("_run")).partition_by(
        "_run", maintain_order=True, include_key=False, as_dict=True
    )
    texts = [pl.concat_str(pl.col(c), pl.lit("")).alias(c) for c, t in frame.schema.items()
             if t == pl.String]  # fmt: skip
    return {int(key[0]): part.with_columns(texts) for key, part in parts.items()}, counts


def _runs(buckets: list[int]) -> list[tuple[int, int]]:
    """Ascending bucket numbers as (first, end) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for number in buckets:
        if runs and runs[-1][1] == number:
            runs[-1] = (runs[-1][0], number + 1)
        else:
            runs.append((number, number + 1))
    return runs


def write_part(frame: pl.DataFrame, path: Path, *, batch_rows: int | None = None) -> None:
    """A temporary Arrow file (uncompressed: as fast as the disk, and categoricals survive)."""
    try:
        frame.write_ipc(path, compression="uncompressed", record_batch_size=batch_rows)
    except OSError as exc:
        raise InputError(
            f"cannot write temporary files in {path.parent} ({exc.strerror or exc}); "
            "set TMPDIR to a disk with room (about 350 MB per million spans)"
        ) from exc


def first_readings(spans: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The spans without re-sent copies (the first reading of each (trace, span) id is kept,
    in order), and how many ids were read with different content.

    Copies are rare, so a hash of the ids picks the few candidates and only those are compared
    exactly: 6.4 ms per 100k spans with 500 copies, against 14 ms for `unique` on the two id
    columns."""
    ids = pl.struct("trace_id", "span_id")
    candidates = spans.select(ids.hash().is_duplicated()).to_series()
    if not candidates.any():
        return spans, 0
    rows = candidates.arg_true()
    suspects = spans[rows]
    copies = suspects.select(~ids.is_first_distinct()).to_series()
    if not copies.any():  # only hashes that collide
        return spans, 0
    keep = pl.repeat(True, spans.height, eager=True).scatter(rows.filter(copies), False)
    return spans.filter(keep), _conflicts(suspects.filter(ids.is_duplicated()))


def _conflicts(duplicated: pl.DataFrame) -> int:
    """How many spans were read more than once with different content."""
    content = [c for c in duplicated.columns if c not in ("trace_id", "span_id")]
    return (
        duplicated.with_columns(pl.struct(content).hash().alias("_content"))
        .group_by("trace_id", "span_id")
        .agg(pl.col("_content").n_unique())
        .filter(pl.col("_content") > 1)
        .height
    )
