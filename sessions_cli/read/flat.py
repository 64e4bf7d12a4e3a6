"""Flat span records (contract §1), read: one span per row, SPAN_SCHEMA columns.

JSONL, CSV and Parquet are accepted. In text formats `tags` may be a JSON array or a
comma-separated string and `metadata` a JSON object; times may be given as
`start_time_unix_nano`/`end_time_unix_nano` or as ISO-8601 `start`/`end`. Parquet is the fast
format: it is read column by column with no parsing.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import polars as pl

from sessions_cli.errors import InputError
from sessions_cli.read.otlp import (
    ids_are_hex,
    loads,
    money,
    normalise_id,
    parse_tags,
    status_of,
    token_count,
    what_else,
)
from sessions_cli.read.schema import SPAN_SCHEMA, STATUS, TOKEN_PARTS, conform

PARQUET_ROWS = 100_000  # spans taken from a Parquet file at a time
# Parquet key-value metadata that `convert` writes: the row counts of its groups, in file
# order. A group holds whole traces, deduplicated; no trace is in two groups.
GROUPS = "sessions.groups"
# And the sum of `id_hashes` over each group, in the same order: read back the same, a group's
# ids are the ones `convert` wrote (normalised, none missing, none twice, no trace in two
# groups), so nothing about them needs checking again. polars' hash is stable within one
# polars version: after an upgrade the sums differ and the file is checked as any other.
ID_SUMS = "sessions.id_sums"


def id_hashes() -> pl.Expr:
    """A hash of each span's three ids together (UInt64; summed, it wraps)."""
    return pl.col("trace_id").hash(1) ^ pl.col("span_id").hash(2) ^ pl.col("parent_span_id").hash(3)


def read_parquet(data: bytes, label: str, problems: Counter) -> Iterator[pl.DataFrame]:
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
        yield normalise(frame, problems)


def read_csv(data: bytes, label: str, problems: Counter) -> pl.DataFrame | None:
    """Span records from CSV (or TSV); None when the bytes are not such a table."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    header = text.split("\n", 1)[0]
    separator = "\t" if header.count("\t") > header.count(",") else ","
    if "trace_id" not in header.split(separator) or "span_id" not in header.split(separator):
        return None
    try:
        frame = pl.read_csv(io.StringIO(text), separator=separator, infer_schema=False)
    except pl.exceptions.PolarsError as exc:  # a ragged row, an unbalanced quote
        reason = str(exc).strip().split("\n", 1)[0]
        raise InputError(f"{label}: unreadable CSV ({reason})") from None
    return normalise(frame, problems)


def why_not_records(data: bytes) -> str | None:
    """For a CSV/TSV table that is not of span records: which columns it lacks, and which it
    has. None when the bytes do not look like a delimited table at all."""
    text = data[:65536].decode("utf-8", "replace").lstrip("\ufeff")
    header = text.split("\n", 1)[0].rstrip("\r")
    separator = "\t" if header.count("\t") > header.count(",") else ","
    names = [name.strip().strip('"') for name in header.split(separator)]
    looks_like_text = header.replace("\t", " ").isprintable() and all(names)
    if len(names) < 2 or not looks_like_text or header.lstrip().startswith(("{", "[")):
        return None
    missing = [c for c in ("trace_id", "span_id") if c not in names]
    found = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    kind = "TSV" if separator == "\t" else "CSV"
    return (f"a {kind} table without the span record column{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(missing)} (found: {found}; the columns are listed in "
            "docs/usage.md#input)")  # fmt: skip


def read_jsonl(text: str, label: str, report: Any, problems: Counter) -> pl.DataFrame:
    rows = []
    for number, line in enumerate(text.lstrip("\ufeff").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = loads(line)
        except ValueError as exc:
            report.bad_line(label, number, f"invalid JSON ({exc})")
            continue
        if not isinstance(value, dict):
            report.bad_line(label, number, "expected a span record (a JSON object)")
            continue
        if "span_id" not in value and (other := what_else(value)):
            report.bad_line(label, number, other)
            continue
        rows.append({k: _text(v) for k, v in value.items() if k in _TEXT_COLUMNS})
    if not rows:
        return conform(pl.DataFrame())
    frame = pl.DataFrame(rows, schema=dict.fromkeys(_TEXT_COLUMNS, pl.String))
    return normalise(frame, problems)


_TEXT_COLUMNS = (*SPAN_SCHEMA, "start", "end")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


_IDS = (("trace_id", 32), ("span_id", 16), ("parent_span_id", 16))


def normalise(
    frame: pl.DataFrame, problems: Counter | None = None, *, hex_ids: bool | None = None
) -> pl.DataFrame:
    """Text or typed columns -> the span schema, with the checks OTLP values get (contract §3):
    token counts and costs that are negative, NaN, not whole or too big are dropped and
    counted in `problems` (otlp.PROBLEMS kinds), as are spans without valid times; a missing
    total is input + output; times may be nanoseconds or ISO-8601 text. `hex_ids`: known
    already whether every id is lowercase hex (`ids_are_hex`)."""
    frame = _ids_as_text(frame)
    present = frame.schema

    def column(name: str) -> pl.Expr:
        return pl.col(name) if name in present else pl.lit(None, pl.String)

    exprs = []
    # As `convert` writes them: skips the base64 branch.
    all_hex = ids_are_hex(frame, _IDS) if hex_ids is None else hex_ids
    for name, hex_len in _IDS:
        if name in present:
            id_text = pl.col(name).cast(pl.String)
            exprs.append(normalise_id(id_text, hex_len, all_hex).alias(name))
    if "tags" in present and present["tags"] != pl.List(pl.String):
        exprs.append(_mapped("tags", parse_tags, pl.List(pl.String)))
    if "metadata" in present and present["metadata"] != SPAN_SCHEMA["metadata"]:
        exprs.append(_mapped("metadata", _parse_metadata, SPAN_SCHEMA["metadata"]))
    if "status" in present and not _statuses_as_written(frame):
        status = pl.col("status").cast(pl.String).str.strip_chars()
        exprs.append(pl.when(status.is_not_null()).then(status_of(status)).alias("status"))
    start = _instant(present, "start_time_unix_nano", "start")
    end = _instant(present, "end_time_unix_nano", "end")

    def count(name: str) -> pl.Expr:
        # An integer column is whole already: only its range is checked (reading text costs
        # ten times that: a converted file's counts are all typed). Anything else as text: a
        # typed 12.5 must fail as "12.5" does, not be cut to 12.
        if name in present and present[name].is_integer():
            value = pl.col(name)
            return pl.when((value >= 0) & (value < 2**62)).then(value.cast(pl.Int64, strict=False))
        return token_count(column(name).cast(pl.String))

    usage = {name: count(name) for name in ("input_tokens", "output_tokens", *TOKEN_PARTS)}
    total = count("total_tokens")
    cost = money(column("cost_usd"))
    tokens_in, tokens_out = usage["input_tokens"], usage["output_tokens"]
    checked = frame.with_columns(exprs).with_columns(
        start.alias("start_time_unix_nano"),
        pl.when(end < start).then(start).otherwise(end).alias("end_time_unix_nano"),
        *(value.alias(name) for name, value in usage.items()),
        pl.coalesce(
            total,
            pl.when(tokens_in.is_not_null() | tokens_out.is_not_null()).then(
                tokens_in.fill_null(0) + tokens_out.fill_null(0)
            ),
        ).alias("total_tokens"),
        cost.alias("cost_usd"),
    )
    if problems is not None:
        ignored = [
            (column(name).is_not_null() & value.is_null()).sum()
            for name, value in (*usage.items(), ("total_tokens", total), ("cost_usd", cost))
        ]
        found = frame.select(
            pl.sum_horizontal(ignored).alias("bad_usage"),
            (start.is_null() | end.is_null()).sum().alias("bad_time"),
            (end < start).fill_null(False).sum().alias("end_before_start"),
        ).row(0, named=True)
        problems.update({kind: n for kind, n in found.items() if n})
    return conform(checked)


def _statuses_as_written(frame: pl.DataFrame) -> bool:
    """Every status already one that `status_of` gives (as `convert` writes them), or null:
    kept as it is, which is much cheaper than reading each again."""
    if frame.schema["status"] == STATUS:  # only those values can be in it
        return True
    if frame.schema["status"] != pl.String:
        return False
    status = pl.col("status")
    return frame.select(status.drop_nulls().is_in(STATUS.categories.to_list()).all()).item()


def _ids_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Ids given as bytes (a foreign Parquet file) as the hex text they stand for."""
    binary = [name for name, _ in _IDS if frame.schema.get(name) == pl.Binary]
    return frame.with_columns(pl.col(name).bin.encode("hex") for name in binary)


def _instant(present: pl.Schema, nanos_column: str, iso_column: str) -> pl.Expr:
    """Nanoseconds since the epoch (> 0) from the nanosecond column, else from ISO-8601 text
    (`2026-11-26T08:48:07.123456789Z`, an offset, or none: UTC; a space for the T). Only what
    the file has is parsed (an integer column as it is: a converted file's times are)."""
    nanos = pl.lit(None, pl.Int64)
    if nanos_column in present:
        nanos = pl.col(nanos_column)
        if not present[nanos_column].is_integer():
            nanos = nanos.cast(pl.String).str.strip_chars()
        nanos = nanos.cast(pl.Int64, strict=False)
    if iso_column not in present:
        return pl.when(nanos > 0).then(nanos)
    text = (
        pl.col(iso_column)
        .cast(pl.String)
        .str.strip_chars()
        .str.replace(r"^(\d{4}-\d\d-\d\d)[ T]", "${1}T")
        .str.replace(r"(?i)z$", "+00:00")
    )
    zoned = text.str.to_datetime(_ISO + "%z", time_zone="UTC", strict=False, time_unit="ns")
    plain = text.str.to_datetime(_ISO, strict=False, time_unit="ns").dt.replace_time_zone("UTC")
    parsed = pl.coalesce(zoned, plain).dt.epoch("ns")
    return pl.coalesce(pl.when(nanos > 0).then(nanos), pl.when(parsed > 0).then(parsed))


_ISO = "%Y-%m-%dT%H:%M:%S%.f"


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
