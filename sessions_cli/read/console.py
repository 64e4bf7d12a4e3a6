"""OpenTelemetry Python's `ConsoleSpanExporter` output -> OTLP JSON documents.

The exporter prints each span as an indented JSON object (`"context": {"trace_id": "0x..."}`,
ISO times with microseconds, `status.status_code`, attributes as an object), one after another,
often with the application's own printed lines in between. Each span object is reshaped into the
OTLP JSON document the JSON reader takes, so every rule after that is the same code; anything
between the objects is the app's output, skipped and counted.

It is a development format (a terminal's worth of spans), so reshaping is per span, in Python.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from sessions_cli.read import otlp

# What no other format has: a span's context with a 0x-prefixed trace id.
_SIGNATURE = re.compile(rb'"context":\s*\{\s*"trace_id":\s*"0x[0-9a-fA-F]{32}"')
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_STATUS = {"ERROR": "2", "OK": "1", "UNSET": "0"}


def looks_like(head: bytes) -> bool:
    """Whether the first bytes of a file hold a console-exporter span."""
    return _SIGNATURE.search(head) is not None


def documents(text: str) -> tuple[list[str], int]:
    """(one OTLP JSON document per span, as text; how many other lines were skipped)."""
    decoder = json.JSONDecoder(object_pairs_hook=otlp.first_wins)
    out: list[str] = []
    skipped, at, end = 0, 0, len(text)
    while at < end:
        while at < end and text[at].isspace():
            at += 1
        if at >= end:
            break
        if text[at] == "{":
            try:
                value, after = decoder.raw_decode(text, at)
            except ValueError:
                value, after = None, at
            if isinstance(value, dict) and isinstance(value.get("context"), dict):
                out.append(json.dumps(_document(value), ensure_ascii=False))
                at = after
                continue
        line_end = text.find("\n", at)  # the app's own output: one line of it
        skipped += 1
        at = end if line_end < 0 else line_end + 1
    return out, skipped


def _document(span: dict[str, Any]) -> dict[str, Any]:
    context = span["context"]
    status = _object(span.get("status"))
    resource = _object(span.get("resource"))
    otlp_span = {
        "traceId": _id(context.get("trace_id")),
        "spanId": _id(context.get("span_id")),
        "parentSpanId": _id(span.get("parent_id")),
        "name": span.get("name"),
        "startTimeUnixNano": _nanos(span.get("start_time")),
        "endTimeUnixNano": _nanos(span.get("end_time")),
        "attributes": _attributes(span.get("attributes")),
        "events": [
            {"name": event.get("name"), "attributes": _attributes(event.get("attributes"))}
            for event in span.get("events") or []
            if isinstance(event, dict)
        ],
        "status": {
            "code": _STATUS.get(str(status.get("status_code", "")).upper(), "0"),
            "message": status.get("description"),
        },
    }
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.get("attributes"))},
                "scopeSpans": [{"spans": [otlp_span]}],
            }
        ]
    }


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _id(value: Any) -> str | None:
    return value[2:] if isinstance(value, str) and value.startswith("0x") else None


def _nanos(value: Any) -> str | None:
    """ISO text (the exporter prints microseconds) -> nanoseconds since the epoch, exactly."""
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=timezone.utc)
    delta = instant - _EPOCH
    return str((delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000)


def _attributes(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, dict):
        return []
    return [{"key": str(k), "value": _any(v)} for k, v in value.items()]


def _any(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_any(v) for v in value]}}
    return {"stringValue": value if isinstance(value, str) else json.dumps(value)}
