"""Build small OTLP JSON documents in tests, so every input is visible where it is used."""

from __future__ import annotations

import json
from typing import Any

BASE_NS = 1_790_000_000_000_000_000


def value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    return {"stringValue": v}


def hex_id(label: str, length: int) -> str:
    """A readable label as a valid hex id (labels that are already hex stay as they are)."""
    if all(c in "0123456789abcdef" for c in label) and len(label) == length:
        return label
    return label.encode().hex().ljust(length, "0")[:length]


def span(
    trace: str,
    span_id: str,
    *,
    parent: str | None = None,
    name: str = "span",
    start_ms: int = 0,
    end_ms: int = 10,
    error: bool = False,
    **attrs: Any,
) -> dict:
    """A span; keyword attributes use `__` for dots: gen_ai__usage__input_tokens=5."""
    out = {
        "traceId": hex_id(trace, 32),
        "spanId": hex_id(span_id, 16),
        "name": name,
        "startTimeUnixNano": str(BASE_NS + start_ms * 1_000_000),
        "endTimeUnixNano": str(BASE_NS + end_ms * 1_000_000),
        "attributes": [{"key": k.replace("__", "."), "value": value(v)} for k, v in attrs.items()],
        "status": {"code": 2, "message": "failed"} if error else {"code": 1},
    }
    if parent:
        out["parentSpanId"] = hex_id(parent, 16)
    return out


def document(*spans: dict, resource: dict[str, Any] | None = None) -> dict:
    attrs = [{"key": k, "value": value(v)} for k, v in (resource or {}).items()]
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attrs},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}],
            }
        ]
    }


def lines(*docs: dict) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)
