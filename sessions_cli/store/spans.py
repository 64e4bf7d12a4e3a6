"""Where read spans wait for the model: in memory, or, past a size, on disk by trace.

Every number the model computes is per trace first (usage, roots, sessions), so spans can be
processed in groups as long as a trace is never split between groups. Up to `memory_rows` spans
are held as they are read. Beyond that the store spills: each span goes to one of 64 buckets by
a hash of its trace id, buffered and written to temporary Arrow IPC files (uncompressed: as
fast as the disk, and categoricals survive), and the model later reads a few buckets at a
time, so spans do not accumulate in memory. Within a group, spans keep the order they were
read in, so "first read wins" still holds.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from sessions_cli.errors import InputError
from sessions_cli.read.schema import compact, empty_spans

# Measured on 1M spans: 150k/100k peak at 325 MB, 400k/250k at 450 MB, equally fast.
_BUCKETS = 64
_FLUSH_ROWS = 100_000  # buffered spans written out at once, across buckets


# A span the model can place: one without a valid trace or span id is dropped, and counted.
HAS_IDS = pl.col("trace_id").is_not_null() & pl.col("span_id").is_not_null()


class SpanStore:
    def __init__(self, memory_rows: int, group_rows: int = 100_000) -> None:
        self.memory_rows, self.group_rows = memory_rows, group_rows
        self.frames: list[pl.DataFrame] = []
        self.held = 0
        self.directory: Path | None = None  # set once spilled
        self.parts: list[list[tuple[Path, int]]] = [[] for _ in range(_BUCKETS)]
        self.written = 0
        self.spill_seconds = 0.0  # spent writing spill files ($SESSIONS_TIMING)
        self.read_seconds = 0.0  # spent reading the input while groups are taken (Parquet)
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
        name = f"spans-{self.written:06d}"
        assert self.directory is not None  # made when the store first spills
        for number, path, rows in spill_buckets(buffered, bucket, self.directory, name):
            self.parts[number].append((path, rows))
        self.written += 1
        self.spill_seconds += time.perf_counter() - started

    def close(self) -> None:
        self.frames = []  # spans held in memory go too: the store is done with
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
        group: list[Path] = []
        size = 0
        for bucket in self.parts:
            count = sum(n for _, n in bucket)
            if group and size + count > self.group_rows:
                yield self._load(group)
                group, size = [], 0
            group += [path for path, _ in bucket]
            size += count
        if group:
            yield self._load(group)

    def spans_of(self, trace_ids: list[str]) -> pl.DataFrame:
        """The spans of these traces, deduplicated (first read wins)."""
        wanted = pl.Series(trace_ids, dtype=pl.String)
        if not self.spilled:
            spans = pl.concat(self.frames) if self.frames else compact(empty_spans())
        else:
            self.finish()
            buckets = sorted(set((wanted.hash(seed=7) % _BUCKETS).to_list()))
            spans = self._load([path for b in buckets for path, _ in self.parts[b]])
        return first_readings(spans.filter(pl.col("trace_id").is_in(wanted)))[0]

    @staticmethod
    def _load(paths: list[Path]) -> pl.DataFrame:
        if not paths:
            return compact(empty_spans())
        # Part files are named spans-<sequence>-<bucket>: in sequence is in reading order.
        ordered = sorted(paths, key=lambda p: p.stem.split("-")[1])
        return read_parts(ordered)


def spill_buckets(
    frame: pl.DataFrame, bucket: pl.Expr, directory: Path, name: str
) -> Iterator[tuple[int, Path, int]]:
    """Write `frame` to one temporary Arrow file per bucket (`bucket` numbers each row), named
    `<name>-<bucket>.arrow`; yields (bucket, path, rows) for each file."""
    parts = frame.with_columns(bucket.alias("_bucket")).partition_by(
        "_bucket", as_dict=True, include_key=False
    )
    for (number,), part in parts.items():
        path = directory / f"{name}-{number:02d}.arrow"
        write_part(part, path)
        yield number, path, part.height


def read_parts(paths: list[Path]) -> pl.DataFrame:
    """Temporary Arrow files, one after the other, as one chunk. One scan of them all: a read
    per file and a concat took twice as long (64 files of about 1,560 spans: 31 ms against
    14 ms). Rechunked here, while nothing else is held: the model's first expression over
    several chunks would copy the frame anyway, with the chunked one still alive."""
    return pl.scan_ipc(paths).collect().rechunk()


def write_part(frame: pl.DataFrame, path: Path) -> None:
    """A temporary Arrow file (uncompressed: as fast as the disk, and categoricals survive)."""
    try:
        frame.write_ipc(path, compression="uncompressed")
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
