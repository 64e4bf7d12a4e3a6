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

import json
import math
from typing import Any

import polars as pl

from sessions_cli.attributes import METADATA_PREFIX, METADATA_USED, NO_SESSION_VALUES, TAGS
from sessions_cli.schema import conform, empty_spans

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
_ATTRS = pl.List(pl.Struct({"key": _S, "value": _ANY}))
_SPAN = pl.Struct(
    {
        "traceId": _S,
        "spanId": _S,
        "parentSpanId": _S,
        "name": _S,
        "startTimeUnixNano": _S,
        "endTimeUnixNano": _S,
        "attributes": _ATTRS,
        "status": pl.Struct({"code": _S, "message": _S}),
    }
)
_SCOPE = pl.Struct({"spans": pl.List(_SPAN)})
DOCUMENT = pl.Struct(
    {
        "resourceSpans": pl.List(
            pl.Struct(
                {
                    "resource": pl.Struct({"attributes": _ATTRS}),
                    "scopeSpans": pl.List(_SCOPE),
                    "instrumentationLibrarySpans": pl.List(_SCOPE),  # pre-1.0 name
                }
            )
        )
    }
)

_ERROR_CODES = ("2", "STATUS_CODE_ERROR")
_OK_CODES = ("1", "STATUS_CODE_OK")


class Malformed(ValueError):
    """A JSON value that is not an OTLP traces document."""


# ---------------------------------------------------------------------------------------------
# Fast path


def spans_from_lines(lines: pl.Series, chains: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """Decode OTLP JSON lines (one document each) into normalised spans.

    Raises `polars.exceptions.PolarsError` when any line does not fit the OTLP shape.
    """
    docs = lines.str.json_decode(DOCUMENT)
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
    scopes = pl.concat(
        [
            resources.select("res", pl.col(field).alias("scope")).explode("scope")
            for field in ("scopeSpans", "instrumentationLibrarySpans")
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

    keys = sorted({k for chain in chains.values() for k in chain} | {TAGS})
    span_attrs = _attribute_rows(raw, "row", keys).with_columns(prio=pl.lit(0))
    resource_attrs = (
        _attribute_rows(resources, "res", keys)
        .join(raw.select("row", "res"), on="res")
        .drop("res")
        .with_columns(prio=pl.lit(1))
    )
    # Span attributes override resource attributes with the same key (contract §2).
    attrs = (
        pl.concat([span_attrs, resource_attrs.select(span_attrs.columns)])
        .sort("prio", maintain_order=True)
        .unique(["row", "key"], keep="first", maintain_order=True)
    )
    wide = attrs.filter(pl.col("key").is_in(keys)).pivot(
        on="key", on_columns=keys, index="row", values="text"
    )
    spans = raw.join(wide, on="row", how="left", maintain_order="left")
    spans = spans.join(_tags(attrs), on="row", how="left", maintain_order="left")
    spans = spans.join(_metadata(attrs), on="row", how="left", maintain_order="left")
    return conform(spans.select(_fields(chains)))


def _attribute_rows(frame: pl.DataFrame, index: str, keys: list[str]) -> pl.DataFrame:
    """One row per wanted attribute: (index, key, text, items)."""
    exploded = (
        frame.select(index, "attributes")
        .explode("attributes")
        .filter(pl.col("attributes").is_not_null())
        .select(index, pl.col("attributes").struct.unnest())
    )
    value = pl.col("value")
    array = value.struct.field("arrayValue").struct.field("values")
    kvlist = value.struct.field("kvlistValue").struct.field("values")
    return exploded.filter(
        pl.col("key").is_in(keys) | pl.col("key").str.starts_with(METADATA_PREFIX)
    ).select(
        index,
        "key",
        pl.coalesce(
            *(value.struct.field(k) for k in _SCALARS),
            _json_text(array.list.eval(_scalar_text(pl.element()))),
            _json_text(
                kvlist.list.eval(
                    pl.struct(
                        key=pl.element().struct.field("key"),
                        value=_scalar_text(pl.element().struct.field("value")),
                    )
                )
            ),
        ).alias("text"),
        array.list.eval(_scalar_text(pl.element())).alias("items"),
    )


def _scalar_text(value: pl.Expr) -> pl.Expr:
    return pl.coalesce(*(value.struct.field(k) for k in _SCALARS))


def _json_text(expr: pl.Expr) -> pl.Expr:
    """Nested values are kept as JSON text (contract §1)."""
    return pl.struct(v=expr).struct.json_encode().str.slice(5).str.strip_suffix("}")


def _tags(attrs: pl.DataFrame) -> pl.DataFrame:
    """`agentmark.tags`: a native array, a JSON array string, or a comma-separated string."""
    rows = attrs.filter(pl.col("key") == TAGS)
    texts = rows.filter(pl.col("items").is_null()).get_column("text").unique().drop_nulls()
    parsed = pl.DataFrame(
        {"text": texts, "parsed": [parse_tags(t) for t in texts]},
        schema={"text": pl.String, "parsed": pl.List(pl.String)},
    )
    return rows.join(parsed, on="text", how="left").select(
        "row", pl.coalesce("items", "parsed").alias("tags")
    )


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


def _metadata(attrs: pl.DataFrame) -> pl.DataFrame:
    key = pl.col("key").str.strip_prefix(METADATA_PREFIX)
    return (
        attrs.filter(pl.col("key").str.starts_with(METADATA_PREFIX) & ~key.is_in(METADATA_USED))
        .group_by("row", maintain_order=True)
        .agg(pl.struct(key=key, value=pl.col("text")).alias("metadata"))
    )


def _fields(chains: dict[str, tuple[str, ...]]) -> list[pl.Expr]:
    def first(field: str) -> pl.Expr:
        chain = chains[field]
        if not chain:
            return pl.lit(None, pl.String)
        return pl.coalesce(*(_clean_text(pl.col(k)) for k in chain))

    status = pl.col("status").struct.field("code").str.strip_chars()
    session = first("session_id")
    input_tokens, output_tokens = _count(first("input_tokens")), _count(first("output_tokens"))
    return [
        normalise_id(pl.col("traceId"), 32).alias("trace_id"),
        normalise_id(pl.col("spanId"), 16).alias("span_id"),
        normalise_id(pl.col("parentSpanId"), 16).alias("parent_span_id"),
        pl.col("name"),
        pl.col("startTimeUnixNano")
        .str.strip_chars()
        .cast(pl.Int64, strict=False)
        .alias("start_time_unix_nano"),
        pl.col("endTimeUnixNano")
        .str.strip_chars()
        .cast(pl.Int64, strict=False)
        .alias("end_time_unix_nano"),
        pl.when(status.is_in(_ERROR_CODES))
        .then(pl.lit("error"))
        .when(status.is_in(_OK_CODES))
        .then(pl.lit("ok"))
        .otherwise(pl.lit("unset"))
        .alias("status"),
        _clean_text(pl.col("status").struct.field("message")).alias("status_message"),
        pl.when(session.str.to_lowercase().is_in(NO_SESSION_VALUES).not_())
        .then(session)
        .alias("session_id"),
        first("session_name").alias("session_name"),
        first("user_id").alias("user_id"),
        first("trace_name").alias("trace_name"),
        first("model").alias("model"),
        first("provider").alias("provider"),
        first("operation").alias("operation"),
        input_tokens.alias("input_tokens"),
        output_tokens.alias("output_tokens"),
        pl.coalesce(
            _count(first("total_tokens")),
            pl.when(input_tokens.is_not_null() | output_tokens.is_not_null()).then(
                input_tokens.fill_null(0) + output_tokens.fill_null(0)
            ),
        ).alias("total_tokens"),
        _money(first("cost_usd")).alias("cost_usd"),
        pl.col("tags"),
        pl.col("metadata"),
    ]


def _clean_text(expr: pl.Expr) -> pl.Expr:
    """Trimmed text; empty means absent."""
    text = expr.str.strip_chars()
    return pl.when(text != "").then(text)


def _count(text: pl.Expr) -> pl.Expr:
    """A token count: a finite, non-negative whole number (`"12.0"` counts as 12), else null."""
    number = text.cast(pl.Float64, strict=False)
    valid = number.is_finite() & (number >= 0) & (number < 2.0**62) & (number.round(0) == number)
    return pl.when(valid).then(number.cast(pl.Int64))


def _money(text: pl.Expr) -> pl.Expr:
    """A cost: a finite number >= 0 (contract §3), else null."""
    number = text.cast(pl.Float64, strict=False)
    return pl.when(number.is_finite() & (number >= 0)).then(number)


def normalise_id(expr: pl.Expr, hex_len: int) -> pl.Expr:
    """Lowercase hex; base64 ids (protobuf-JSON) decoded; all-zero, empty or invalid -> null."""
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
    """One parsed JSON value -> OTLP documents in the exact shape of `DOCUMENT`.

    Accepts a document or an array of them. Raises `Malformed` with a reason otherwise.
    """
    if isinstance(value, list):
        return [doc for item in value for doc in canonical_documents(item)]
    if not isinstance(value, dict):
        raise Malformed(f"expected an OTLP object, found {_kind(value)}")
    resource_spans = value.get("resourceSpans")
    if not isinstance(resource_spans, list):
        raise Malformed(f"resourceSpans is {_kind(resource_spans)}, not an array")
    return [{"resourceSpans": [_resource(r) for r in resource_spans if isinstance(r, dict)]}]


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
