"""A Parquet file that `convert` wrote, read as a store: its groups are the file's own."""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from sessions_cli.errors import InputError
from sessions_cli.read.flat import GROUPS, ID_SUMS, id_hashes, normalise
from sessions_cli.read.schema import compact, empty_spans
from sessions_cli.store.spans import HAS_IDS, SpanStore, first_readings


def grouped_parquet(
    path: Path, label: str, memory_rows: int, workers: int = 1
) -> GroupedParquet | None:
    """A Parquet file that `convert` wrote, as a store whose groups are the file's own: read a
    group at a time, with nothing spilled. None for any other file, or when its groups cannot be
    trusted: then it is read like any Parquet file."""
    if not path.is_file():  # a pipe (<(cat ...), a FIFO): looking would eat its first bytes
        return None
    try:
        with path.open("rb") as f:
            if f.read(4) != b"PAR1":
                return None
        metadata = pl.read_parquet_metadata(path)
        sizes = json.loads(metadata.get(GROUPS, "null"))
        if not isinstance(sizes, list) or not all(type(n) is int and n >= 0 for n in sizes):
            return None
        scan = pl.scan_parquet(path)
        if _as_written(scan, sizes, metadata.get(ID_SUMS)):
            return GroupedParquet(
                path, label, sizes, memory_rows, ids_checked=True, as_written=True, workers=workers
            )
        if sum(1 for n in sizes if n) <= 1:  # one group: no trace can be split
            ids = None
            fits = scan.select(pl.len()).collect().item() == sum(sizes)
        else:
            ids = scan.select("trace_id").collect().get_column("trace_id")
            fits = len(ids) == sum(sizes) and ids.dtype == pl.String
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    if not fits or (ids is not None and not _split_free(ids, sizes)):
        return None
    return GroupedParquet(
        path, label, sizes, memory_rows, ids_checked=ids is not None, as_written=False,
        workers=workers,
    )  # fmt: skip


def _as_written(scan: pl.LazyFrame, sizes: list[int], id_sums_text: str | None) -> bool:
    """Whether every group's ids read back as `convert` wrote them: their hashes add up to the
    sums it recorded (ID_SUMS). Hashing the three id columns costs a fraction of checking their
    text in every group."""
    try:
        id_sums = json.loads(id_sums_text or "null")
        if not isinstance(id_sums, list) or not all(type(n) is int for n in id_sums):
            return False
        if not sizes or len(id_sums) != len(sizes):
            return False
        schema = scan.collect_schema()
        if any(schema.get(name) != pl.String for name in ("trace_id", "span_id", "parent_span_id")):
            return False
        # Streamed: only the hashes are held, never the ids' text.
        found = scan.select(id_hashes().alias("hash")).collect(engine="streaming")
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return False
    if found.height != sum(sizes):
        return False
    hashes, sums, offset = pl.col("hash"), [], 0
    for number, size in enumerate(sizes):
        sums.append(hashes.slice(offset, size).sum().alias(f"group {number}"))
        offset += size
    return list(found.select(sums).row(0)) == id_sums


def _split_free(trace_ids: pl.Series, sizes: list[int]) -> bool:
    """Whether no trace is in two groups, as the model will see the ids. Ids of 32 lowercase
    characters with no space around them normalise to themselves or to null (not hex): two
    can never become one (a padded one could be base64). A trace in two groups would be split
    between model builds. Checked group by group, as separate expressions that polars runs in
    parallel: a trace is in one group when the groups' counts of distinct ids add up to the
    file's (colliding hashes can only send a good file the usual way)."""

    def distinct(ids: pl.Expr) -> pl.Expr:  # a null id has a hash too: it is not a trace
        return ids.drop_nulls().hash().n_unique()

    ids = pl.col("id")
    checks, offset = [distinct(ids).alias("in file")], 0
    for number, size in enumerate(sizes):
        part = ids.slice(offset, size)
        same = part.str.len_bytes().eq(32) & part.str.to_lowercase().eq(part)
        same &= part.str.strip_chars().eq(part)
        checks.append(same.fill_null(True).all().alias(f"as normalised {number}"))
        checks.append(distinct(part).alias(f"in {number}"))
        offset += size
    in_file, *found = trace_ids.to_frame("id").select(checks).row(0)
    return all(found[0::2]) and sum(found[1::2]) == in_file


class GroupedParquet(SpanStore):
    """The spans of a converted Parquet file, a group at a time, as the file holds them."""

    def __init__(
        self, path, label, sizes, memory_rows, *, ids_checked: bool, as_written: bool, workers: int
    ) -> None:
        super().__init__(memory_rows=memory_rows)
        self.path, self.label, self.sizes, self.workers = path, label, sizes, workers
        # Every trace id already as the model sees it (or unusable): found by `_split_free`,
        # or the file's ids are as convert wrote them.
        self.ids_checked = ids_checked
        # `_as_written`: the ids are hex and no span is in the file twice.
        self.as_written = as_written
        if sum(sizes) > memory_rows:  # trace rows and convert's output wait on disk, as spilled
            self.directory = Path(tempfile.mkdtemp(prefix="sessions-spill-"))

    def add(self, frame: pl.DataFrame) -> None:
        raise TypeError("a converted Parquet file is read as it is")

    def groups(self) -> Iterator[pl.DataFrame]:
        """The file's groups in order, each read, stripped of spans without ids (counted here,
        as the store counts them when they are added) and deduplicated on one of `workers`
        threads while the ones before are used: one group's polars calls do not keep every
        core busy, and the model waits for none of them."""
        self.rows = self.without_ids = self.conflicting_duplicates = 0
        slices, offset = [], 0
        for size in self.sizes:
            if size:
                slices.append((offset, size))
            offset += size
        if not slices:
            yield compact(empty_spans())
            return
        following = iter(slices)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="sessions-parquet") as pool:
            pending = deque(
                pool.submit(self._group, *s) for s in itertools.islice(following, self.workers)
            )
            while pending:
                waited = time.perf_counter()  # the model's wait is the read's share of its time
                spans, rows, without_ids, conflicts = pending.popleft().result()
                self.read_seconds += time.perf_counter() - waited
                if (next_slice := next(following, None)) is not None:
                    pending.append(pool.submit(self._group, *next_slice))
                self.rows += rows
                self.without_ids += without_ids
                self.conflicting_duplicates += conflicts
                yield spans

    def _group(self, offset: int, size: int) -> tuple[pl.DataFrame, int, int, int]:
        """(spans, their count with ids, without ids, ids read with different content)."""
        spans = self._read(pl.scan_parquet(self.path).slice(offset, size))
        valid = spans.filter(HAS_IDS)
        if self.as_written:
            return valid, valid.height, spans.height - valid.height, 0
        deduped, conflicts = first_readings(valid)
        return deduped, valid.height, spans.height - valid.height, conflicts

    def spans_of(self, trace_ids: list[str]) -> pl.DataFrame:
        wanted = pl.col("trace_id").is_in(pl.Series(trace_ids, dtype=pl.String))
        scan = pl.scan_parquet(self.path)
        if self.ids_checked:  # the file's ids are the normalised ones: filter while reading
            scan = scan.filter(wanted)
        return first_readings(self._read(scan).filter(HAS_IDS & wanted))[0]

    def _read(self, scan: pl.LazyFrame) -> pl.DataFrame:
        try:
            frame = scan.collect()
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputError(f"{self.label}: unreadable Parquet ({exc})") from exc
        return compact(normalise(frame, hex_ids=True if self.as_written else None))
