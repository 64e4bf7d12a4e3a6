"""Flat span records (contract §1), read: one span per row, SPAN_SCHEMA columns.

JSONL, CSV and Parquet are accepted. In text formats `tags` may be a JSON array or a
comma-separated string and `metadata` a JSON object; times may be given as
`start_time_unix_nano`/`end_time_unix_nano` or as ISO-8601 `start`/`end`. Parquet is the fast
format: it is read column by column with no parsing.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import polars as pl

from sessions_cli.errors import InputError
from sessions_cli.read.otlp import ids_are_hex, normalise_id, parse_tags
from sessions_cli.read.schema import SPAN_SCHEMA, conform

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
        yield normalise(frame)


def read_csv(data: bytes, label: str) -> pl.DataFrame | None:
    """Span records from CSV (or TSV); None when the bytes are not such a table."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    header = text.split("\n", 1)[0]
    separator = "\t" if header.count("\t") > header.count(",") else ","
    if "trace_id" not in header.split(separator) or "span_id" not in header.split(separator):
        return None
    frame = pl.read_csv(io.StringIO(text), separator=separator, infer_schema=False)
    return normalise(frame)


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
    return normalise(pl.DataFrame(rows, schema=dict.fromkeys(_TEXT_COLUMNS, pl.String)))


_TEXT_COLUMNS = (*SPAN_SCHEMA, "start", "end")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


_IDS = (("trace_id", 32), ("span_id", 16), ("parent_span_id", 16))


def normalise(frame: pl.DataFrame) -> pl.DataFrame:
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
