"""OTLP JSON (and protobuf-JSON) -> normalised spans, in columnar form.

Fast path: each line is decoded by polars against an explicit, minimal dtype (schema inference
reads only the first rows and would drop value kinds first seen later), then exploded to one row
per span and one row per *wanted* attribute. Every scalar is decoded as a string, so `intValue`
as a number or a string, `doubleValue` as `"NaN"`, and booleans all decode alike.

Slow path: polars rejects a whole batch for one bad line. Only then are that batch's lines parsed
one by one in Python; each valid document is reshaped into the exact form the fast path expects
(`canonical_documents`) and goes through the same columnar code. There is one normalisation.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from typing import Any

import polars as pl

from sessions_cli.read import native
from sessions_cli.read.keys import (
    JSON_OBJECTS,
    METADATA_PREFIXES,
    METADATA_USED,
    NO_SESSION_VALUES,
    TAGS,
)
from sessions_cli.read.schema import TOKEN_PARTS, conform, empty_spans

_S = pl.String()
_SCALARS = ("stringValue", "intValue", "doubleValue", "boolValue", "bytesValue")
_INNER = pl.Struct({k: _S for k in _SCALARS})
_ANY = pl.Struct(
    {
        **{k: _S for k in _SCALARS},
        "arrayValue": pl.Struct({"values": pl.List(_INNER)}),
        "kvlistValue": pl.Struct({"values": pl.List(pl.Struct({"key": _S, "value": _INNER}))}),
    }
)


@functools.cache
def _document(value: pl.Struct, events: bool = False) -> pl.Struct:
    """The dtype lines are decoded against; `events` adds span events (only read when a line
    mentions an exception: they cost decoding time, and only that event is used)."""
    attributes = pl.List(pl.Struct({"key": _S, "value": value}))
    with_events = {"events": pl.List(pl.Struct({"name": _S, "attributes": attributes}))}
    span = pl.Struct(
        {
            "traceId": _S,
            "spanId": _S,
            "parentSpanId": _S,
            "name": _S,
            "startTimeUnixNano": _S,
            "endTimeUnixNano": _S,
            "attributes": attributes,
            "status": pl.Struct({"code": _S, "message": _S}),
            **(with_events if events else {}),
        }
    )
    scope = pl.Struct({"spans": pl.List(span)})
    resource_spans = pl.Struct(
        {
            "resource": pl.Struct({"attributes": attributes}),
            "scopeSpans": pl.List(scope),
            "instrumentationLibrarySpans": pl.List(scope),  # pre-1.0 name
        }
    )
    return pl.Struct({"resourceSpans": pl.List(resource_spans)})


# `_document(_INNER)`, without the array and key-value list values, decodes 20% faster (0.51 ->
# 0.41 s per 150 MB of 16-span lines, one thread), and most exports have no such value.

_ERROR_CODES = ("2", "STATUS_CODE_ERROR", "ERROR")
_OK_CODES = ("1", "STATUS_CODE_OK", "OK")


class Malformed(ValueError):
    """A JSON value that is not an OTLP traces document."""


class SuspectText(ValueError):
    """What the fast path cannot be trusted with, so the caller decodes the chunk again in
    Python, line by line: text holding NUL (polars decodes a lone UTF-16 surrogate escape
    "\\ud800" to NUL, silently), or a line without resourceSpans (polars' decoder would
    give it no spans, silently; the slow path names it)."""


# ---------------------------------------------------------------------------------------------
# Fast path


def spans_from_lines(
    lines: pl.Series,
    chains: dict[str, tuple[str, ...]],
    problems: Counter | None = None,
    *,
    trust_nul: bool = False,
) -> pl.DataFrame:
    """Decode OTLP JSON lines (one document each) into normalised spans.

    Values that cannot be used (a negative token count, a timestamp of 0, an array where text
    was expected, ...) become null, and are counted in `problems` by kind (see PROBLEMS).
    Raises `polars.exceptions.PolarsError` when any line does not fit the OTLP shape.
    """
    problems = Counter() if problems is None else problems
    events = lines.str.contains('"exception"', literal=True).any()
    if not _wanted_nested(lines, chains):
        try:
            return _spans(lines, chains, problems, trust_nul, _document(_INNER, events))
        except _NotScalar:
            pass  # a value of a wanted key is not a scalar after all: decode it whole
    return _spans(lines, chains, problems, trust_nul, _document(_ANY, events))


def spans_from_blocks(
    blocks: list[bytes | memoryview], chains: dict[str, tuple[str, ...]], problems: Counter
) -> pl.DataFrame | None:
    """`spans_from_lines` of the lines in `blocks` (each of whole lines) by the native reader,
    when it is built and sure of them (see read/native.py); None: read them with
    `spans_from_lines`."""
    if not native.active():
        return None
    found = native.rows(blocks, wanted_keys(chains), chains)
    if found is None:
        return None
    if not found.spans.height:
        return empty_spans()
    return spans_from_rows(
        found.spans,
        found.attributes,
        chains,
        problems,
        nested_text=found.nested,
        hex_ids=found.ids_are_hex,
    )


def _wanted_nested(lines: pl.Series, chains: dict[str, tuple[str, ...]]) -> bool:
    """Whether a wanted attribute of these lines seems to hold an array or a key-value list,
    so that decoding scalars only would be wasted. Arrays under keys nobody reads (say
    `gen_ai.response.finish_reasons`) do not count: the scalar dtype skips them. A guess
    only, from the text: a key spelled with escapes, or a value before its key, is not seen
    here, but `_attribute_rows` notices what the scalar decode missed and it is decoded again."""
    if not any(lines.str.contains(k, literal=True).any() for k in ("arrayValue", "kvlistValue")):
        return False  # the common case, and a literal search is the cheapest
    return bool(lines.str.contains(_nested_pattern(tuple(wanted_keys(chains)))).any())


@functools.cache
def _nested_pattern(keys: tuple[str, ...]) -> str:
    names = [re.escape(k) for k in keys] + [re.escape(p) + r'[^"]*' for p in METADATA_PREFIXES]
    key, value = r'"key"\s*:\s*"(?:' + "|".join(names) + ')"', r'"value"\s*:\s*\{\s*"'
    return key + r"\s*,\s*" + value + "(?:arrayValue|kvlistValue)"


class _NotScalar(Exception):
    """Decoded without nested values, a wanted attribute turned out to have no scalar value."""


def _spans(
    lines: pl.Series, chains, problems: Counter, trust_nul: bool, document: pl.Struct
) -> pl.DataFrame:
    docs = _decoded(lines, document)
    if docs.struct.field("resourceSpans").is_null().any():
        raise SuspectText  # a line that is not OTLP traces (logs, {}): named line by line
    resources = (
        pl.DataFrame({"doc": docs})
        .select(pl.col("doc").struct.field("resourceSpans").alias("r"))
        .explode("r")
        .filter(pl.col("r").is_not_null())
        .with_row_index("res")
        .select(
            "res",
            pl.col("r").struct.field("resource").struct.field("attributes").alias("attributes"),
            pl.col("r").struct.field("scopeSpans"),
            pl.col("r").struct.field("instrumentationLibrarySpans"),
        )
    )
    # Each polars call has a fixed cost that matters on every batch: steps that the data does
    # not need (the pre-1.0 field name, resource attributes nobody reads) are skipped.
    legacy = resources.get_column("instrumentationLibrarySpans")
    scopes = pl.concat(
        [
            resources.select("res", pl.col(field).alias("scope")).explode("scope")
            for field in ("scopeSpans", "instrumentationLibrarySpans")
            if field == "scopeSpans" or legacy.null_count() < len(legacy)
        ]
    )
    raw = (
        scopes.select("res", pl.col("scope").struct.field("spans").alias("span"))
        .explode("span")
        .filter(pl.col("span").is_not_null())
        .unnest("span")
        .with_row_index("row")
    )
    if raw.height == 0:
        return empty_spans()

    keys = wanted_keys(chains)
    attrs = _attribute_rows(raw, "row", keys)
    # Span attributes override resource attributes with the same key (contract §2). Resources
    # seldom carry a key we read (service.name is not one): then there is nothing to override.
    resource_keys = resources.get_column("attributes").explode().struct.field("key")
    if (resource_keys.is_in(keys) | is_metadata(resource_keys)).any():
        resource_attrs = (
            _attribute_rows(resources, "res", keys)
            .join(raw.select("row", "res"), on="res")
            .select(attrs.columns)
        )
        attrs = pl.concat([attrs, resource_attrs]).unique(
            ["row", "key"], keep="first", maintain_order=True
        )
    if not trust_nul and (
        attrs.get_column("text").str.contains("\x00", literal=True).any()
        or raw.get_column("name").str.contains("\x00", literal=True).any()
    ):
        raise SuspectText
    return spans_from_rows(raw, attrs, chains, problems)


def _with_exceptions(spans: pl.DataFrame) -> pl.DataFrame:
    """`_exception` (the span has an `exception` event: an error, contract §2) and
    `_exception_message`, from the `events` column when the reader decoded one (the protobuf
    reader fills both itself)."""
    if "_exception" in spans.columns:
        return spans
    none = [pl.lit(False).alias("_exception"), pl.lit(None, pl.String).alias("_exception_message")]
    if "events" not in spans.columns:
        return spans.with_columns(none)
    events = (
        spans.select("row", "events")
        .explode("events")
        .filter(pl.col("events").struct.field("name") == "exception")
        .select("row", pl.col("events").struct.field("attributes"))
    )
    if events.is_empty():
        return spans.with_columns(none)
    messages = (
        events.explode("attributes")
        .filter(pl.col("attributes").struct.field("key") == "exception.message")
        .select("row", _scalar_text(pl.col("attributes").struct.field("value")).alias("text"))
        .unique("row", keep="first", maintain_order=True)
    )
    marked = (
        events.select("row")
        .unique(maintain_order=True)
        .join(messages, on="row", how="left")
        .select("row", pl.lit(True).alias("_exception"), pl.col("text").alias("_exception_message"))
    )
    return spans.join(marked, on="row", how="left", maintain_order="left").with_columns(
        pl.col("_exception").fill_null(False)
    )


def wanted_keys(chains: dict[str, tuple[str, ...]]) -> list[str]:
    """The attribute keys any field reads (and, for metadata, every key under one of the
    METADATA_PREFIXES)."""
    return sorted({k for chain in chains.values() for k in chain} | {*TAGS, *JSON_OBJECTS})


def is_metadata(key):
    """Whether attribute keys (a polars expression or series) are under a metadata prefix."""
    return key.str.contains(_METADATA_KEY)


def spans_from_rows(
    raw: pl.DataFrame,
    attrs: pl.DataFrame,
    chains: dict[str, tuple[str, ...]],
    problems: Counter,
    *,
    nested_text: int | None = None,
    hex_ids: bool | None = None,
) -> pl.DataFrame:
    """Normalised spans from one row per span (`row`, and OTLP's traceId, spanId,
    parentSpanId, name, startTimeUnixNano, endTimeUnixNano as text, status {code, message})
    and one row per wanted attribute (`row, key, text, items, nested`), resource attributes
    already merged in: where the JSON and the protobuf readers meet.

    `nested_text`: the native reader has already chosen each field (`_<field>` columns of
    `raw`, as `_chosen` does), kept only the tag and metadata rows, and counted this many
    nested values under text keys (see native.rows). `hex_ids`: what `ids_are_hex(raw)`
    would say, when the reader knows."""
    if nested_text is None:
        keys = wanted_keys(chains)
        attrs = _with_json_objects(attrs)
        # Text fields take scalars only: an array or a key-value list there is not a session
        # id.
        nested = pl.col("nested") & pl.col("key").is_in(sorted(set(keys) - set(TAGS)))
        nested_text = attrs.select(nested.sum()).item()
        attrs = attrs.with_columns(pl.when(~nested).then("text").alias("text"))
        spans = raw.join(_chosen(attrs, chains), on="row", how="left", maintain_order="left")
    else:
        spans = raw
    problems["nested_text"] += nested_text
    # Tags and metadata are joined on only when some span has them (`conform` adds them empty).
    present = attrs.get_column("key")
    extra = []
    if present.is_in(TAGS).any():
        spans = spans.join(_tags(attrs), on="row", how="left", maintain_order="left")
        extra.append("tags")
    if is_metadata(present).any():
        spans = spans.join(_metadata(attrs), on="row", how="left", maintain_order="left")
        extra.append("metadata")
    spans = _with_exceptions(spans)
    hexed = ids_are_hex(raw) if hex_ids is None else hex_ids
    *stages, last = _fields(chains, hexed, _whole_numbers(spans, _NUMBERS))
    for stage in stages:
        spans = spans.with_columns(stage)
    _count_problems(spans, problems)
    return conform(spans.select(*last, *extra))


def _decoded(lines: pl.Series, document: pl.Struct) -> pl.Series:
    """`json_decode` a megabyte of lines at a time. Measured on 100k spans, one thread: 1.5x
    faster than a 4-32 MB batch at once (why is not measured; the decoder's working buffers
    staying in cache would explain it), while the steps after it gain from the big batch
    (their cost is mostly per call)."""
    runs = (lines.str.len_bytes().cum_sum() // _DECODE_BYTES).rle().struct.field("len")
    if len(runs) <= 1:
        return lines.str.json_decode(document)
    parts, offset = [], 0
    for n in runs:
        parts.append(lines.slice(offset, n).str.json_decode(document))
        offset += n
    # One chunk again: the steps after it then run once over contiguous arrays, not per piece
    # (the workers on 1M spans, two threads: 6.2-6.7 s chunked, 5.5-5.6 s rechunked).
    return pl.concat(parts).rechunk()


_DECODE_BYTES = 1024 * 1024


# What `spans_from_lines` counts (output/messages.py says each in words).
PROBLEMS = (
    "nested_text", "bad_usage", "bad_time", "other_lines", "trailing_garbage", "end_before_start",
)  # fmt: skip


def _count_problems(spans: pl.DataFrame, problems: Counter) -> None:
    def unusable(text: str, value: str) -> pl.Expr:
        return (pl.col(text).is_not_null() & pl.col(value).is_null()).sum()

    bad_usage = (
        unusable("_input_tokens", "_in")
        + unusable("_output_tokens", "_out")
        + unusable("_total_tokens", "_total")
        + sum(unusable(f"_{part}", f"_{part}_count") for part in TOKEN_PARTS)
        + unusable("_cost_usd", "_cost")
    )
    found = spans.select(
        bad_usage.alias("bad_usage"),
        (pl.col("_start").is_null() | pl.col("_end").is_null()).sum().alias("bad_time"),
        pl.col("_end_before_start").sum().alias("end_before_start"),
    ).row(0, named=True)
    problems.update({k: v for k, v in found.items() if v})


_OTLP_IDS = (("traceId", 32), ("spanId", 16), ("parentSpanId", 16))


def ids_are_hex(frame: pl.DataFrame, columns: tuple[tuple[str, int], ...] = _OTLP_IDS) -> bool:
    """Every id in these (column, length) already lowercase hex of that length (or absent),
    so that `normalise_id` can skip its costly base64 branch. The characters are checked in
    one text of the column's ids joined, with no anchors: a regex over a million short texts
    costs twice the one scan."""
    checks = []
    for column, length in columns:
        if column in frame.columns:
            ids = pl.col(column).cast(pl.String)
            sized = ids.str.len_bytes().is_in([0, length]).fill_null(True).all()
            checks.append(sized.alias(f"{column} sized"))
            checks.append(ids.str.join("").str.contains("[^0-9a-f]").not_().alias(column))
    return all(frame.select(checks).row(0)) if checks else True


def _attribute_rows(frame: pl.DataFrame, index: str, keys: list[str]) -> pl.DataFrame:
    """One row per wanted attribute: (index, key, text, items). Text is trimmed; "" is null.

    Unwanted attributes (prompts, completions, ...) are dropped inside the lists, before
    anything is exploded: most attributes of a span are not read.
    """
    key = pl.element().struct.field("key")
    exploded = (
        frame.select(
            index,
            pl.col("attributes").list.filter(key.is_in(keys) | is_metadata(key)),
        )
        .explode("attributes")
        .filter(pl.col("attributes").is_not_null())
        .select(index, pl.col("attributes").struct.unnest())
    )
    value = pl.col("value")
    text = _scalar_text(value)
    items = pl.lit(None, pl.List(pl.String))
    is_nested = pl.lit(False)
    value_type = exploded.schema["value"]
    assert isinstance(value_type, pl.Struct)  # attribute values decode as a struct
    if "arrayValue" not in value_type.to_schema():
        # Decoded as scalars only: a value without one may be an array that was not decoded.
        if exploded.select(text.is_null().any()).item():
            raise _NotScalar
        nested = False
    else:
        array = value.struct.field("arrayValue").struct.field("values")
        kvlist = value.struct.field("kvlistValue").struct.field("values")
        nested = exploded.select(array.is_not_null().any() | kvlist.is_not_null().any()).item()
    if nested:  # rare: skip the list evaluations when no value is an array or a kvlist
        is_nested = text.is_null() & (array.is_not_null() | kvlist.is_not_null())
        pairs = pl.struct(
            key=pl.element().struct.field("key"),
            value=_scalar_text(pl.element().struct.field("value")),
        )
        # An absent array is no text (encoded, it would read "null"; found by the native
        # reader's differential test).
        text = pl.coalesce(
            text,
            pl.when(array.is_not_null()).then(
                _json_text(array.list.eval(_scalar_text(pl.element())))
            ),
            pl.when(kvlist.is_not_null()).then(_json_text(kvlist.list.eval(pairs))),
        )
        items = array.list.eval(_scalar_text(pl.element()))
    text = text.str.strip_chars()
    return exploded.select(
        index,
        "key",
        pl.when(text != "").then(text).alias("text"),
        items.alias("items"),
        is_nested.alias("nested"),
    )


def _scalar_text(value: pl.Expr) -> pl.Expr:
    return pl.coalesce(*(value.struct.field(k) for k in _SCALARS))


def _json_text(expr: pl.Expr) -> pl.Expr:
    """Nested values are kept as JSON text (contract §1)."""
    return pl.struct(v=expr).struct.json_encode().str.slice(5).str.strip_suffix("}")


def _chosen(attrs: pl.DataFrame, chains: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """Per span, each field's value from the first key of its chain that has one: a column
    `_<field>` per field. Ranking the few wanted attributes and keeping the best per field
    costs less than a column per key (45 of them) coalesced afterwards."""
    ranked = _ranked(tuple(chains.items()))
    return (
        attrs.filter(pl.col("text").is_not_null())
        .join(ranked, on="key")
        .sort("rank", maintain_order=True)
        .pivot(
            on="field",
            on_columns=sorted(set(ranked.get_column("field"))),
            index="row",
            values="text",
            aggregate_function="first",
        )
    )


@functools.cache
def _ranked(chains: tuple[tuple[str, tuple[str, ...]], ...]) -> pl.DataFrame:
    """(key, field column, rank in the field's chain): built once, not per batch."""
    return pl.DataFrame(
        [(key, f"_{field}", rank) for field, chain in chains for rank, key in enumerate(chain)],
        schema={"key": pl.String, "field": pl.String, "rank": pl.Int32},
        orient="row",
    )


def _tags(attrs: pl.DataFrame) -> pl.DataFrame:
    """`agentmark.tags`: a native array, a JSON array string, or a comma-separated string.
    A span that repeats the key gets the first (one row per span: the join must not copy it)."""
    rank = pl.col("key").replace_strict(TAGS, range(len(TAGS)), default=None)
    rows = (
        attrs.filter(pl.col("key").is_in(TAGS))
        .sort(rank, maintain_order=True)
        .unique("row", keep="first", maintain_order=True)
    )
    texts = rows.filter(pl.col("items").is_null()).get_column("text").unique().drop_nulls()
    parsed = pl.DataFrame(
        {"text": texts, "parsed": [parse_tags(t) for t in texts]},
        schema={"text": pl.String, "parsed": pl.List(pl.String)},
    )
    return rows.join(parsed, on="text", how="left").select(
        "row", pl.coalesce("items", "parsed").alias("tags")
    )


def loads(text: str | bytes):
    """JSON text as Python values, a key repeated in one object keeping its first value, as
    polars' decoder (the fast path) does; `json.loads` keeps the last. The same bytes then give
    the same spans whichever path reads them (contract §3: deterministic)."""
    try:
        return json.loads(text, object_pairs_hook=first_wins)
    except RecursionError:  # json is recursive: nesting of about 1,000 levels ends it
        raise ValueError("nested deeper than the reader follows (about 1,000 levels)") from None


def first_wins(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def parse_tags(text: str) -> list[str]:
    """Tags from attribute text; runs once per distinct value, not per span."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list):
            return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


def _with_json_objects(attrs: pl.DataFrame) -> pl.DataFrame:
    """The keys of JSON-object attributes (JSON_OBJECTS: `metadata`, Langfuse's usage and cost
    details) as attributes of their own, `<attribute>.<key>`, after the span's real ones (a real
    attribute of that name wins). Parsed once per distinct text."""
    objects = attrs.filter(pl.col("key").is_in(JSON_OBJECTS))
    if objects.is_empty():
        return attrs
    distinct = objects.select("key", "text").drop_nulls().unique()
    pairs = [(key, text, f"{key}.{k}", v) for key, text in distinct.iter_rows()
             for k, v in _object_pairs(text)]  # fmt: skip
    parsed = pl.DataFrame(
        pairs,
        schema={"key": pl.String, "text": pl.String, "spread": pl.String, "value": pl.String},
        orient="row",
    )
    spread = objects.join(parsed, on=["key", "text"]).select(
        "row",
        pl.col("spread").alias("key"),
        pl.col("value").alias("text"),
        pl.lit(None, pl.List(pl.String)).alias("items"),
        pl.lit(False).alias("nested"),
    )
    kept = attrs.filter(~pl.col("key").is_in(JSON_OBJECTS))
    return pl.concat([kept, spread.cast(attrs.schema)])


def _object_pairs(text: str) -> list[tuple[str, str]]:
    """The (key, value as text) pairs of a JSON object; none for anything else."""
    try:
        value = loads(text)
    except ValueError:
        return []
    if not isinstance(value, dict):
        return []
    return [(str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            for k, v in value.items() if v is not None]  # fmt: skip


_METADATA_KEY = "^(?:" + "|".join(p.replace(".", r"\.") for p in METADATA_PREFIXES) + ")"


def _metadata(attrs: pl.DataFrame) -> pl.DataFrame:
    key = pl.col("key").str.replace(_METADATA_KEY, "")
    return (
        attrs.filter(is_metadata(pl.col("key")) & ~pl.col("key").is_in(METADATA_USED))
        .group_by("row", maintain_order=True)
        .agg(pl.struct(key=key, value=pl.col("text")).alias("metadata"))
    )


_TOKEN_TEXTS = ("_input_tokens", "_output_tokens", "_total_tokens", *(f"_{p}" for p in TOKEN_PARTS))
_NUMBERS = (*_TOKEN_TEXTS, "startTimeUnixNano", "endTimeUnixNano")


def _whole_numbers(frame: pl.DataFrame, columns: tuple[str, ...]) -> frozenset[str]:
    """The columns whose every text is a whole number as written (or absent): for those, the
    general readings of `token_count` and `_instant_ns` (floats, spaces) would give the same
    values at several times the cost. A column the frame lacks is absent throughout."""
    present = [c for c in columns if c in frame.columns]
    odd = frame.select(
        (pl.col(c).is_not_null() & pl.col(c).cast(pl.Int64, strict=False).is_null()).any()
        for c in present
    ).row(0) if present else ()  # fmt: skip
    return frozenset(c for c in columns if c not in present or not odd[present.index(c)])


def _fields(
    chains: dict[str, tuple[str, ...]], ids_are_hex: bool, whole: frozenset[str] = frozenset()
) -> list[list[pl.Expr]]:
    """Two stages of expressions: the chains' first values, then the normalised columns.
    `whole`: the text columns known to hold whole numbers only (`_whole_numbers`)."""

    # A field whose chain is empty has no column from `_chosen`.
    missing = [pl.lit(None, pl.String).alias(f"_{f}") for f, chain in chains.items() if not chain]
    status = pl.col("status").struct.field("code").str.strip_chars()
    session, tokens_in, tokens_out = pl.col("_session_id"), pl.col("_in"), pl.col("_out")
    start = _instant_ns("startTimeUnixNano", "startTimeUnixNano" in whole)
    end = _instant_ns("endTimeUnixNano", "endTimeUnixNano" in whole)

    def tokens(column: str) -> pl.Expr:
        return token_count(pl.col(column), whole=column in whole)

    counts = [
        tokens("_input_tokens").alias("_in"),
        tokens("_output_tokens").alias("_out"),
        tokens("_total_tokens").alias("_total"),
        *(tokens(f"_{part}").alias(f"_{part}_count") for part in TOKEN_PARTS),
        money(pl.col("_cost_usd")).alias("_cost"),
        start.alias("_start"),
        end.alias("_end"),
        (end < start).fill_null(False).alias("_end_before_start"),
    ]
    normalised = [
        normalise_id(pl.col("traceId"), 32, ids_are_hex).alias("trace_id"),
        normalise_id(pl.col("spanId"), 16, ids_are_hex).alias("span_id"),
        normalise_id(pl.col("parentSpanId"), 16, ids_are_hex).alias("parent_span_id"),
        pl.col("name"),
        pl.col("_start").alias("start_time_unix_nano"),
        pl.when(pl.col("_end_before_start"))
        .then(pl.col("_start"))
        .otherwise(pl.col("_end"))
        .alias("end_time_unix_nano"),
        pl.when(pl.col("_exception"))
        .then(pl.lit("error"))
        .otherwise(status_of(status))
        .alias("status"),
        pl.coalesce(
            _clean_text(pl.col("status").struct.field("message")),
            _clean_text(pl.col("_exception_message")),
        ).alias("status_message"),
        pl.when(session.str.to_lowercase().is_in(NO_SESSION_VALUES).not_())
        .then(session)
        .alias("session_id"),
        *(
            pl.col(f"_{f}").alias(f)
            for f in ("session_name", "user_id", "trace_name", "model", "provider", "operation")
        ),
        tokens_in.alias("input_tokens"),
        tokens_out.alias("output_tokens"),
        pl.coalesce(
            pl.col("_total"),
            pl.when(tokens_in.is_not_null() | tokens_out.is_not_null()).then(
                tokens_in.fill_null(0) + tokens_out.fill_null(0)
            ),
        ).alias("total_tokens"),
        *(pl.col(f"_{part}_count").alias(part) for part in TOKEN_PARTS),
        pl.col("_cost").alias("cost_usd"),
    ]
    return [missing, counts, normalised]


def status_of(code: pl.Expr) -> pl.Expr:
    """error | ok | unset, from an OTLP status code (2, STATUS_CODE_ERROR, ...) or a flat
    record's status text (any case)."""
    upper = code.str.to_uppercase()
    return (
        pl.when(upper.is_in(_ERROR_CODES))
        .then(pl.lit("error"))
        .when(upper.is_in(_OK_CODES))
        .then(pl.lit("ok"))
        .otherwise(pl.lit("unset"))
    )


def _instant_ns(column: str, whole: bool = False) -> pl.Expr:
    """Nanoseconds since the epoch; 0, negative, or beyond 64 bits (past year 2262, so also
    past 9999) is not a time. `whole`: every text is known to be a whole number as written
    (nothing to strip)."""
    text = pl.col(column) if whole else pl.col(column).str.strip_chars()
    ns = text.cast(pl.Int64, strict=False)
    return pl.when(ns > 0).then(ns)


def _clean_text(expr: pl.Expr) -> pl.Expr:
    """Trimmed text; empty means absent."""
    text = expr.str.strip_chars()
    return pl.when(text != "").then(text)


def token_count(text: pl.Expr, whole: bool = False) -> pl.Expr:
    """A token count from text: a non-negative whole number below 2^62 (`"12.0"` counts as
    12), else null. Whole-number text is read exactly; only other forms go through a float
    (whose 53 bits would round 2^62 - 1 up to 2^62). `whole`: every text is known to be a
    whole number as written, so the float reading is skipped (it costs about ten times the
    rest)."""
    number = text.cast(pl.Int64, strict=False)
    if whole:
        return pl.when((number >= 0) & (number < 2**62)).then(number)
    return _any_count(text)


def _any_count(text: pl.Expr) -> pl.Expr:
    whole = text.cast(pl.Int64, strict=False)
    number = text.cast(pl.Float64, strict=False)
    integral = number.is_finite() & (number.abs() < 2.0**62) & (number.round(0) == number)
    value = pl.coalesce(whole, pl.when(integral).then(number.cast(pl.Int64)))
    return pl.when((value >= 0) & (value < 2**62)).then(value)


def money(text: pl.Expr) -> pl.Expr:
    """A cost: a finite number >= 0 (contract §3), and below a trillion dollars (beyond that it
    is not a cost but a bug, and would overflow the exact sums), else null."""
    number = text.cast(pl.Float64, strict=False)
    return pl.when(number.is_finite() & (number >= 0) & (number < 1e12)).then(number)


def normalise_id(expr: pl.Expr, hex_len: int, all_hex: bool = False) -> pl.Expr:
    """Lowercase hex; base64 ids (protobuf-JSON) decoded; all-zero, empty or invalid -> null.

    `all_hex`: the caller checked that every id is already lowercase hex of the right length
    (the common case), so the base64 branch, costly on every row, is skipped.
    """
    if all_hex:
        return pl.when((expr != "0" * hex_len) & (expr != "")).then(expr)
    raw = expr.str.strip_chars()
    b64_len = {32: 24, 16: 12}[hex_len]
    decoded = raw.str.decode("base64", strict=False).bin.encode("hex")
    hexed = (
        pl.when(raw.str.contains(f"^[0-9a-fA-F]{{{hex_len}}}$"))
        .then(raw.str.to_lowercase())
        .when((raw.str.len_chars() == b64_len) & (decoded.str.len_chars() == hex_len))
        .then(decoded)
    )
    return pl.when(hexed != "0" * hex_len).then(hexed)


# ---------------------------------------------------------------------------------------------
# Slow path: reshape a parsed JSON value so that the fast path accepts it


def canonical_documents(value: Any) -> list[dict[str, Any]]:
    """One parsed JSON value -> OTLP documents in the exact shape of `_document(_ANY, events=True)`.

    Accepts a document or an array of them. Raises `Malformed` with a reason otherwise.
    """
    if isinstance(value, list):
        return [doc for item in value for doc in canonical_documents(item)]
    if not isinstance(value, dict):
        raise Malformed(f"expected an OTLP object, found {_kind(value)}")
    resource_spans = value.get("resourceSpans")
    if not isinstance(resource_spans, list):
        raise Malformed(
            what_else(value) or f"resourceSpans is {_kind(resource_spans)}, not an array"
        )
    return [{"resourceSpans": [_resource(r) for r in resource_spans if isinstance(r, dict)]}]


def what_else(value: dict[str, Any]) -> str | None:
    """What a JSON object without spans is, when it is something users export by mistake."""
    if "resourceLogs" in value:
        return "OTLP logs, not traces"
    if "resourceMetrics" in value:
        return "OTLP metrics, not traces"
    if "observations" in value or {"traceId", "type", "startTime"} <= value.keys():
        return ("a Langfuse UI export (traces or observations), not OpenTelemetry spans: export "
                "OTLP from the app instead")  # fmt: skip
    if {"run_type", "trace_id"} <= value.keys():
        return ("a LangSmith run export, not OpenTelemetry spans: use LangSmith's OTel mode "
                "instead")  # fmt: skip
    return None


def _resource(value: dict[str, Any]) -> dict[str, Any]:
    resource = value.get("resource")
    scopes = [
        {"spans": [_span(s) for s in _list(scope.get("spans")) if isinstance(s, dict)]}
        for field in ("scopeSpans", "instrumentationLibrarySpans")
        for scope in _list(value.get(field))
        if isinstance(scope, dict)
    ]
    return {
        "resource": {"attributes": _attributes(resource.get("attributes"))}
        if isinstance(resource, dict)
        else None,
        "scopeSpans": scopes,
    }


def _span(value: dict[str, Any]) -> dict[str, Any]:
    fields = ("traceId", "spanId", "parentSpanId", "name", "startTimeUnixNano", "endTimeUnixNano")
    span: dict[str, Any] = {f: _scalar(value.get(f)) for f in fields}
    span["attributes"] = _attributes(value.get("attributes"))
    span["events"] = [
        {"name": _scalar(event.get("name")), "attributes": _attributes(event.get("attributes"))}
        for event in _list(value.get("events"))
        if isinstance(event, dict)
    ]
    status = value.get("status")
    if isinstance(status, dict):
        span["status"] = {
            "code": _scalar(status.get("code")),
            "message": _scalar(status.get("message")),
        }
    return span


def _attributes(value: Any) -> list[dict[str, Any]]:
    out = []
    for kv in _list(value):
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out.append({"key": kv["key"], "value": _any_value(kv.get("value"), nested=True)})
    return out


def _any_value(value: Any, *, nested: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {k: _scalar(value[k]) for k in _SCALARS if k in value}
    for kind in ("arrayValue", "kvlistValue"):
        inner = value.get(kind)
        if inner is None:
            continue
        if nested and isinstance(inner, dict) and isinstance(inner.get("values"), list):
            if kind == "arrayValue":
                items = [_any_value(v, nested=False) for v in inner["values"]]
            else:
                items = [
                    {"key": str(kv.get("key")), "value": _any_value(kv.get("value"), nested=False)}
                    for kv in inner["values"]
                    if isinstance(kv, dict)
                ]
            out[kind] = {"values": items}
        else:  # deeper nesting than the fast path's dtype: keep it as JSON text
            out["stringValue"] = json.dumps(inner, ensure_ascii=False)
    return out


def _scalar(value: Any) -> str | None:
    """Any JSON scalar as text (what the fast path's String dtype yields); objects as JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan" / "inf": parsed later as non-finite and rejected
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )
