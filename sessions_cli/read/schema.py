"""The normalised span: one row per span, what every reader produces and the model consumes.

It is also the flat span-record format (contract §1): JSONL, CSV or Parquet files with these
columns are read as they are. Times are nanoseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import polars as pl

KV = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))

SPAN_SCHEMA: dict[str, pl.DataType] = {
    "trace_id": pl.String(),  # lowercase hex
    "span_id": pl.String(),
    "parent_span_id": pl.String(),  # null for a root
    "name": pl.String(),
    "start_time_unix_nano": pl.Int64(),
    "end_time_unix_nano": pl.Int64(),
    "status": pl.String(),  # "error" | "ok" | "unset"
    "status_message": pl.String(),
    "session_id": pl.String(),
    "session_name": pl.String(),
    "user_id": pl.String(),
    "trace_name": pl.String(),
    "model": pl.String(),
    "provider": pl.String(),
    "operation": pl.String(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "total_tokens": pl.Int64(),
    # Parts of input (cache reads and writes) and of output (reasoning), priced at their rates.
    "cache_read_tokens": pl.Int64(),
    "cache_write_tokens": pl.Int64(),
    "reasoning_tokens": pl.Int64(),
    "cost_usd": pl.Float64(),  # the span's own cost attribute, when valid
    "tags": pl.List(pl.String()),
    "metadata": KV,  # agentmark.metadata.<key> pairs, in attribute order
}


# Token counts that are parts of input_tokens (cache reads, cache writes) or of output_tokens
# (reasoning), read and summed like them.
TOKEN_PARTS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def empty_spans() -> pl.DataFrame:
    return pl.DataFrame(schema=SPAN_SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing columns as nulls and put every column in schema order and type. A column
    already as `compact` makes it (a converted Parquet file's) stays so: the same values."""
    return frame.select(
        pl.col(c) if frame.schema.get(c) in (dtype, COMPACT_SCHEMA[c])
        else pl.col(c).cast(dtype, strict=False) if c in frame.schema
        else pl.lit(None, dtype).alias(c)
        for c, dtype in SPAN_SCHEMA.items()
    )  # fmt: skip


# How spans are held in memory while a command runs: repeated text as categoricals (4 bytes a
# row instead of a 16-byte view, and no copy of each repeated value), status as an enum. About
# a third of the memory of SPAN_SCHEMA; `model` casts back to text where it aggregates.
# Not trace and session ids: polars keeps every category for the life of the process, and new
# ids keep coming (one per trace), so they made the read phase grow with the export (3M spans:
# 230 -> 310 MB while reading; as text it stays flat).
STATUS = pl.Enum(["error", "ok", "unset"])
_CATEGORICAL = ("name", "status_message", "session_name", "user_id",
                "trace_name", "model", "provider", "operation")  # fmt: skip


COMPACT_SCHEMA: dict[str, pl.DataType] = {
    **SPAN_SCHEMA, **dict.fromkeys(_CATEGORICAL, pl.Categorical()), "status": STATUS
}  # fmt: skip


def compact(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        *(pl.col(c).cast(pl.Categorical) for c in _CATEGORICAL),
        pl.col("status").cast(STATUS),
    )


def stored(frame: pl.DataFrame) -> pl.DataFrame:
    """As `convert` writes Parquet: the schema's columns in order, repeated text dictionary
    encoded as it is held. Read back, the columns come as categoricals: nothing to cast, and
    less text to decode than when they were written as plain strings."""
    return frame.select(pl.col(c).cast(dtype) for c, dtype in COMPACT_SCHEMA.items())


def expand(frame: pl.DataFrame) -> pl.DataFrame:
    """Back to SPAN_SCHEMA types (for writing span records)."""
    return frame.select(pl.col(c).cast(dtype) for c, dtype in SPAN_SCHEMA.items())
