"""Flat span records (contract §1), read and written: one span per row, SPAN_SCHEMA columns.

JSONL, CSV and Parquet are accepted. In text formats `tags` may be a JSON array or a
comma-separated string and `metadata` a JSON object; times may be given as
`start_time_unix_nano`/`end_time_unix_nano` or as ISO-8601 `start`/`end`. Parquet is the fast
format: it is read column by column with no parsing.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from sessions_cli.errors import InputError
from sessions_cli.output.render import pieces
from sessions_cli.read.otlp import ids_are_hex, normalise_id, parse_tags
from sessions_cli.read.schema import SPAN_SCHEMA, compact, conform, empty_spans, expand
from sessions_cli.store.spans import HAS_IDS, SpanStore, first_readings, write_part

WRITABLE = (".parquet", ".jsonl", ".csv")


def write(groups: Iterable[pl.DataFrame], path: str, scratch: Path | None = None) -> int:
    """Write spans, a group at a time, as flat span records (SPAN_SCHEMA columns), the type
    chosen by the path's suffix (one of WRITABLE); returns how many. Text is written as it
    came: CSV formula defusing is for spreadsheets, and would change the data read back.

    A Parquet file cannot be appended to: with `scratch` (a spilled store's directory) the
    groups wait there as Arrow files and are streamed into one Parquet file, so memory
    follows a group, not the export."""
    suffix = Path(path).suffix.lower()
    count = 0
    if suffix == ".parquet":
        held, parts, sizes = [], [], []
        for number, group in enumerate(groups):
            records = expand(group)
            count += records.height
            sizes.append(records.height)
            if scratch is None:
                held.append(records)
            else:
                parts.append(scratch / f"convert-{number:06d}.arrow")
                write_part(records, parts[-1])
            del records, group
        source = pl.scan_ipc(parts) if parts else pl.concat(held).lazy()
        # Row groups of 25k rows: two cores decode a 100k-span group at once (100k spans:
        # 16 -> 9.5 ms; 1M: 158 -> 127 ms), and the file is the same size.
        source.sink_parquet(
            path,
            compression="zstd",
            statistics=False,
            row_group_size=25_000,
            metadata={GROUPS: json.dumps(sizes)},
        )
        return count
    with open(path, "w", encoding="utf-8") as out:
        for number, group in enumerate(groups):
            records = expand(group)
            count += records.height
            out.writelines(pieces(records, suffix[1:], raw_csv=True, header=number == 0))
    return count


PARQUET_ROWS = 100_000  # spans taken from a Parquet file at a time
# Parquet key-value metadata that `convert` writes: the row counts of its groups, in file
# order. A group holds whole traces, deduplicated; no trace is in two groups.
GROUPS = "sessions.groups"


def read_parquet(data: bytes, label: str) -> Iterator[pl.DataFrame]:
    """Span records from Parquet, a slice of rows at a time: a converted export of millions of
    spans is small on disk but not in memory (1M spans: 38 MB of Parquet, 850 MB peak when it
    was read whole), so it goes to the store as the JSON would."""
    try:
        scan = pl.scan_parquet(io.BytesIO(data))
        columns = scan.collect_schema().names()
        rows = scan.select(pl.len()).collect().item()
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{label}: unreadable Parquet ({exc})") from exc
    if "trace_id" not in columns or "span_id" not in columns:
        raise InputError(f"{label}: Parquet file without trace_id and span_id columns")
    for offset in range(0, max(rows, 1), PARQUET_ROWS):
        try:
            frame = scan.slice(offset, PARQUET_ROWS).collect()
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"{label}: unreadable Parquet ({exc})") from exc
        yield _normalise(frame)


def grouped_parquet(path: Path, label: str, memory_rows: int) -> GroupedParquet | None:
    """A Parquet file that `convert` wrote, as a store whose groups are the file's own: read a
    group at a time, with nothing spilled (1M spans: `list` 3.4 -> 2.7 s). None for any other file,
    or when its groups cannot be trusted: then it is read like any Parquet file."""
    try:
        with path.open("rb") as f:
            if f.read(4) != b"PAR1":
                return None
        sizes = json.loads(pl.read_parquet_metadata(path).get(GROUPS, "null"))
        if not isinstance(sizes, list) or not all(type(n) is int and n >= 0 for n in sizes):
            return None
        scan = pl.scan_parquet(path)
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
    return GroupedParquet(path, label, sizes, memory_rows, ids_checked=ids is not None)


def _split_free(trace_ids: pl.Series, sizes: list[int]) -> bool:
    """Whether no trace is in two groups, as the model will see the ids. Ids of 32 lowercase
    characters with no space around them normalise to themselves or to null (not hex): two
    can never become one (a padded one could be base64). A trace in two groups would be split
    between model builds: checked in 70-150 ms per 1M spans (colliding hashes can only send a
    good file the usual way)."""
    ids = pl.col("id")
    same = (
        ids.str.len_bytes().eq(32) & ids.str.to_lowercase().eq(ids) & ids.str.strip_chars().eq(ids)
    )
    if not trace_ids.to_frame("id").select(same.fill_null(True).all()).item():
        return False
    hashes = trace_ids.to_frame("id").select(pl.when(ids.is_not_null()).then(ids.hash()))
    hashes = hashes.to_series()  # a null id has a hash too: it must not count as a trace
    parts, offset = [], 0
    for size in sizes:
        parts.append(hashes.slice(offset, size).drop_nulls().unique())
        offset += size
    each_once = pl.concat(parts) if parts else pl.Series(dtype=pl.UInt64)
    return each_once.n_unique() == len(each_once)


class GroupedParquet(SpanStore):
    """The spans of a converted Parquet file, a group at a time, as the file holds them."""

    def __init__(self, path, label, sizes, memory_rows, *, ids_checked: bool) -> None:
        super().__init__(memory_rows=memory_rows)
        self.path, self.label, self.sizes = path, label, sizes
        # `_split_free` found every trace id already as the model sees it (or unusable).
        self.ids_checked = ids_checked
        if sum(sizes) > memory_rows:  # trace rows and convert's output wait on disk, as spilled
            self.directory = Path(tempfile.mkdtemp(prefix="sessions-spill-"))

    def add(self, frame: pl.DataFrame) -> None:
        raise TypeError("a converted Parquet file is read as it is")

    def _raw_groups(self) -> Iterator[pl.DataFrame]:
        """Spans without ids are counted here, as the store counts them when they are added."""
        self.rows = self.without_ids = 0
        offset = 0
        for size in self.sizes:
            if size:
                spans = self._read(pl.scan_parquet(self.path).slice(offset, size))
                valid = spans.filter(HAS_IDS)
                self.rows += valid.height
                self.without_ids += spans.height - valid.height
                yield valid
            offset += size
        if not any(self.sizes):
            yield compact(empty_spans())

    def spans_of(self, trace_ids: list[str]) -> pl.DataFrame:
        wanted = pl.col("trace_id").is_in(pl.Series(trace_ids, dtype=pl.String))
        scan = pl.scan_parquet(self.path)
        if self.ids_checked:  # the file's ids are the normalised ones: filter while reading
            scan = scan.filter(wanted)
        return first_readings(self._read(scan).filter(HAS_IDS & wanted))[0]

    def _read(self, scan: pl.LazyFrame) -> pl.DataFrame:
        started = time.perf_counter()
        try:
            frame = scan.collect()
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputError(f"{self.label}: unreadable Parquet ({exc})") from exc
        spans = compact(_normalise(frame))
        self.read_seconds += time.perf_counter() - started
        return spans


def read_csv(data: bytes, label: str) -> pl.DataFrame | None:
    """Span records from CSV (or TSV); None when the bytes are not such a table."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    header = text.split("\n", 1)[0]
    separator = "\t" if header.count("\t") > header.count(",") else ","
    if "trace_id" not in header.split(separator) or "span_id" not in header.split(separator):
        return None
    frame = pl.read_csv(io.StringIO(text), separator=separator, infer_schema=False)
    return _normalise(frame)


def read_jsonl(text: str, label: str, report: Any) -> pl.DataFrame:
    rows = []
    for number, line in enumerate(text.lstrip("\ufeff").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            report.bad_line(label, number, f"invalid JSON ({exc})")
            continue
        if not isinstance(value, dict):
            report.bad_line(label, number, "expected a span record (a JSON object)")
            continue
        rows.append({k: _text(v) for k, v in value.items() if k in _TEXT_COLUMNS})
    if not rows:
        return conform(pl.DataFrame())
    return _normalise(pl.DataFrame(rows, schema=dict.fromkeys(_TEXT_COLUMNS, pl.String)))


_TEXT_COLUMNS = (*SPAN_SCHEMA, "start", "end")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


_IDS = (("trace_id", 32), ("span_id", 16), ("parent_span_id", 16))


def _normalise(frame: pl.DataFrame) -> pl.DataFrame:
    """Text or typed columns -> the span schema."""
    exprs = []
    all_hex = ids_are_hex(frame, _IDS)  # as `convert` writes them: skips the base64 branch
    for column, hex_len in _IDS:
        if column in frame.columns:
            id_text = pl.col(column).cast(pl.String)
            exprs.append(normalise_id(id_text, hex_len, all_hex).alias(column))
    for ns, iso in (("start_time_unix_nano", "start"), ("end_time_unix_nano", "end")):
        if ns not in frame.columns and iso in frame.columns:
            exprs.append(
                pl.col(iso)
                .cast(pl.String)
                .str.to_datetime(time_zone="UTC", strict=False, time_unit="ns")
                .dt.epoch("ns")
                .alias(ns)
            )
    if "tags" in frame.columns and frame.schema["tags"] != pl.List(pl.String):
        exprs.append(_mapped("tags", parse_tags, pl.List(pl.String)))
    if "metadata" in frame.columns and frame.schema["metadata"] != SPAN_SCHEMA["metadata"]:
        exprs.append(_mapped("metadata", _parse_metadata, SPAN_SCHEMA["metadata"]))
    return conform(frame.with_columns(exprs))


def _mapped(column: str, parse, dtype) -> pl.Expr:
    """Parse a text column once per distinct value (they repeat across spans)."""
    return (
        pl.col(column)
        .cast(pl.String)
        .map_batches(
            lambda s: s.replace_strict(
                (u := s.unique().drop_nulls()),
                [parse(v) for v in u],
                default=None,
                return_dtype=dtype,
            ),
            return_dtype=dtype,
        )
    )


def _parse_metadata(text: str) -> list[dict[str, str]]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    if isinstance(value, dict):
        return [
            {"key": str(k), "value": v if isinstance(v, str) else json.dumps(v)}
            for k, v in value.items()
        ]
    return []
