"""Binary OTLP protobuf -> normalised spans: the Collector `file` exporter's framing (each
`ExportTraceServiceRequest` after its length as a 4-byte big-endian integer; with
`compression: zstd` each message is itself zstd-compressed), or one bare request body.

Messages are decoded by the official generated classes (opentelemetry-proto, on protobuf's
C upb backend). Walking them is Python, but only as far as the columns need: per span its ids,
name, times and status, and of its attributes only the wanted keys (a prompt is skipped by its
key, never converted). The rows then meet the JSON reader's (`otlp.spans_from_rows`), so every
rule after that is the same code.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, BinaryIO

import polars as pl

from sessions_cli.errors import InputError
from sessions_cli.read import native, otlp
from sessions_cli.read.keys import METADATA_PREFIXES
from sessions_cli.read.schema import empty_spans

_ZSTD = b"\x28\xb5\x2f\xfd"
# Field 1 (resource_spans), length-delimited: the first byte of every non-empty request.
_REQUEST_START = 0x0A
# A framed message longer than this is not a frame (the Collector writes batches of MBs).
_MAX_FRAME = 1 << 30


def looks_framed(head: bytes) -> bool:
    """Whether `head` (16 bytes) starts like the Collector's framing: a length below 64 MiB
    (so a first byte 0-3, which no text starts with), then a request or a zstd frame."""
    if len(head) < 9 or head[0] > 3:
        return False
    length = int.from_bytes(head[:4], "big")
    return length > 0 and (_is_request(head[4:]) or head[4:8] == _ZSTD)


def looks_like_body(head: bytes) -> bool:
    """Whether `head` may be a bare request: resource_spans, whose own first field is its
    resource or its scope_spans (a text file starting with a blank line is neither)."""
    return _is_request(head)


def _is_request(head: bytes) -> bool:
    """Field 1 (length-delimited), a varint length, then field 1 or 2 (length-delimited)."""
    if len(head) < 3 or head[0] != _REQUEST_START:
        return False
    at = 1
    while at < len(head) and head[at] & 0x80:  # the varint's continuation bytes
        at += 1
    return at + 1 < len(head) and head[at + 1] in (0x0A, 0x12)


def frames(stream: BinaryIO) -> Iterator[bytes]:
    """The messages of a framed file, decompressed; an error naming the offset where the
    framing breaks (a truncated file keeps what came before it)."""
    import zstandard

    offset = 0
    while True:
        prefix = stream.read(4)
        if not prefix:
            return
        length = int.from_bytes(prefix, "big")
        body = stream.read(length) if len(prefix) == 4 and length <= _MAX_FRAME else b""
        if len(prefix) < 4 or len(body) < length or length > _MAX_FRAME:
            raise Truncated(
                f"protobuf framing breaks at byte {offset:,} (truncated?); the messages before "
                "it are read, the rest is lost"
            )
        if body.startswith(_ZSTD):
            try:
                body = zstandard.ZstdDecompressor().decompress(body, max_output_size=_MAX_FRAME)
            except zstandard.ZstdError as exc:
                raise Truncated(
                    f"the zstd message at byte {offset:,} is corrupt ({exc}); the messages "
                    "before it are read, the rest is lost"
                ) from None
        offset += 4 + length
        yield body


class Truncated(Exception):
    """The framing broke after some messages were read."""


def request(body: bytes, label: str):
    """One ExportTraceServiceRequest; InputError when the bytes are not one."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise InputError(f"{label}: not an OTLP protobuf traces request ({exc})") from None
    return message


def what_else(body: bytes) -> str | None:
    """What a request without spans is instead, when it is OTLP logs or metrics."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    kinds = (
        ("logs", ExportLogsServiceRequest, "resource_logs"),
        ("metrics", ExportMetricsServiceRequest, "resource_metrics"),
    )
    for kind, cls, field in kinds:
        message = cls()
        try:
            message.ParseFromString(body)
        except DecodeError:
            continue
        inner = "scope_logs" if kind == "logs" else "scope_metrics"
        records = "log_records" if kind == "logs" else "metrics"
        if any(getattr(scope, records) for r in getattr(message, field)
               for scope in getattr(r, inner)):  # fmt: skip
            return f"OTLP {kind}, not traces"
    return None


def spans_from_bodies(
    bodies: list[bytes], chains: dict[str, tuple[str, ...]], problems: Counter
) -> pl.DataFrame | None:
    """`spans_of` the requests in `bodies` by the native reader, when it is built and sure of
    them (see read/native.py); None: parse and walk them here."""
    if not native.protobuf_active():
        return None
    found = native.protobuf_rows(bodies, otlp.wanted_keys(chains), chains)
    if found is None:
        return None
    if not found.spans.height:
        return empty_spans()
    return otlp.spans_from_rows(
        found.spans,
        found.attributes,
        chains,
        problems,
        nested_text=found.nested,
        hex_ids=found.ids_are_hex,
    )


def spans_of(messages: list, chains: dict[str, tuple[str, ...]], problems: Counter):
    """Normalised spans of decoded requests. One tuple per span and per wanted attribute is
    all the Python there is; ids, times and codes become text in polars."""
    wanted = set(otlp.wanted_keys(chains))
    spans: list[tuple] = []
    attrs: list[tuple] = []
    for message in messages:
        for resource_spans in message.resource_spans:
            shared = _wanted(resource_spans.resource.attributes, wanted)
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    row = len(spans)
                    status = span.status
                    events = span.events
                    spans.append((span.trace_id, span.span_id, span.parent_span_id, span.name,
                                  span.start_time_unix_nano, span.end_time_unix_nano,
                                  status.code, status.message,
                                  *(_exception(events) if events else _NO_EXCEPTION)))  # fmt: skip
                    own = _wanted(span.attributes, wanted)
                    attrs += [(row, key, *value) for key, value in own.items()]
                    attrs += [(row, key, *value) for key, value in shared.items() if key not in own]
    if not spans:
        return empty_spans()
    raw = _columns(spans, _RAW).with_row_index("row")
    hexed = [pl.col(c).bin.encode("hex").replace("", None).alias(c) for c in _IDS]
    status = pl.struct(
        code=pl.col("code").cast(pl.String), message=pl.col("message").replace("", None)
    )
    raw = raw.with_columns(
        *hexed,
        pl.col("startTimeUnixNano", "endTimeUnixNano").cast(pl.String),
        status.alias("status"),
    ).drop("code", "message")
    # (From rows: a frame of the columns would be slower here, for the list column.)
    rows = pl.DataFrame(attrs, schema=_ATTRS, orient="row")
    return otlp.spans_from_rows(raw, rows, chains, problems)


def _columns(rows: list[tuple], schema: _Types) -> pl.DataFrame:
    """Tuples of scalars -> a frame, transposed in C first (a little faster than from rows)."""
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(
        [pl.Series(name, values, dtype=dtype)
         for (name, dtype), values in zip(schema.items(), zip(*rows, strict=True), strict=True)]
    )  # fmt: skip


_NO_EXCEPTION = (False, None)


_IDS = ("traceId", "spanId", "parentSpanId")
_Types = dict[str, pl.DataType | type[pl.DataType]]
_RAW: _Types = {
    "traceId": pl.Binary, "spanId": pl.Binary, "parentSpanId": pl.Binary, "name": pl.String,
    "startTimeUnixNano": pl.UInt64, "endTimeUnixNano": pl.UInt64, "code": pl.Int32,
    "message": pl.String, "_exception": pl.Boolean, "_exception_message": pl.String,
}  # fmt: skip
_ATTRS: _Types = {
    "row": pl.UInt32, "key": pl.String, "text": pl.String, "items": pl.List(pl.String),
    "nested": pl.Boolean,
}  # fmt: skip


def _exception(events) -> tuple[bool, str | None]:
    """Whether a span has an `exception` event (an error, contract §2), and its message."""
    for event in events:
        if event.name == "exception":
            for attribute in event.attributes:
                if attribute.key == "exception.message":
                    return True, _scalar(attribute.value)
            return True, None
    return False, None


def _wanted(attributes, wanted: set[str]) -> dict[str, tuple[str | None, list | None, bool]]:
    """The wanted attributes as (text, items, nested), the first of a repeated key winning."""
    out: dict[str, tuple[str | None, list | None, bool]] = {}
    for attribute in attributes:
        key = attribute.key
        if key in out or not (key in wanted or key.startswith(METADATA_PREFIXES)):
            continue
        out[key] = _value(attribute.value)
    return out


def _value(value: Any) -> tuple[str | None, list | None, bool]:
    """As the JSON reader has it: scalars as text (trimmed, "" is absent), arrays and key-value
    lists as JSON text, arrays' items too."""
    kind = value.WhichOneof("value")
    if kind == "string_value":  # most of them: no second dispatch
        return value.string_value.strip() or None, None, False
    if kind == "array_value":
        items = [_scalar(v) for v in value.array_value.values]
        return _compact(items), items, True
    if kind == "kvlist_value":
        pairs = [{"key": kv.key, "value": _scalar(kv.value)} for kv in value.kvlist_value.values]
        return _compact(pairs), None, True
    text = _scalar(value)
    return text, None, False


def _scalar(value: Any) -> str | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        text = value.string_value.strip()
        return text or None
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value) if value.double_value == value.double_value else "NaN"
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
