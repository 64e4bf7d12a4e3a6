"""The native protobuf reader against the Python walk over the same requests: the same span
frames, always.

`protobuf.spans_from_bodies` (libprotobuf, generated classes) either gives exactly what
`protobuf.spans_of` (upb messages walked in Python) gives for the same bodies, problems counted
alike, or None (then the Python walk reads them). Checked on every protobuf fixture, the
generated export, and on generated requests that vary what the reader must render as Python
does: value kinds, doubles (Python's repr), whitespace Python strips and polars does not,
arrays, ids of odd lengths, repeated keys, resource attributes, exception events, unknown
status codes. Without the extension these tests skip, unless SESSIONS_REQUIRE_NATIVE=1 (set by
.ci/run) makes that a failure.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span
from polars.testing import assert_frame_equal

from sessions_cli.read import native, otlp, protobuf
from sessions_cli.read.keys import CHAINS
from tests.conftest import FIXTURES, GENERATED, run

pytestmark = pytest.mark.skipif(
    native._protobuf is None and not os.environ.get("SESSIONS_REQUIRE_NATIVE"),
    reason="the native protobuf reader is not built (g++, protobuf-compiler, libprotobuf-dev)",
)


@pytest.fixture(autouse=True)
def _native_on(monkeypatch):
    monkeypatch.delenv("SESSIONS_NATIVE", raising=False)
    assert native.protobuf_active(), "SESSIONS_REQUIRE_NATIVE is set, but it is not built"


def assert_same(bodies: list[bytes]) -> bool:
    """True when the native reader answered (and agreed); False when it left the bodies."""
    fast_problems: Counter = Counter()
    fast = protobuf.spans_from_bodies(bodies, CHAINS, fast_problems)
    slow_problems: Counter = Counter()
    messages = [protobuf.request(body, "test") for body in bodies]
    slow = protobuf.spans_of(messages, CHAINS, slow_problems)
    if fast is None:
        return False
    assert_frame_equal(fast, slow)
    assert fast_problems == slow_problems
    return True


def _framed_bodies(path) -> list[bytes]:
    with path.open("rb") as stream:
        return list(protobuf.frames(stream))


PROTOBUF = sorted(FIXTURES.glob("sdk-*.binpb")) + sorted(FIXTURES.glob("sdk-*.bodies/*.pb"))


@pytest.mark.parametrize("path", PROTOBUF, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_protobuf_fixtures_are_read_natively_and_identically(path):
    bodies = _framed_bodies(path) if path.suffix == ".binpb" else [path.read_bytes()]
    assert assert_same(bodies), "the native reader left a captured fixture to Python"


def _request(document: dict) -> bytes:
    """An OTLP JSON document as protobuf (hex ids turned to the base64 protobuf-JSON wants)."""
    import base64

    for resource in document["resourceSpans"]:
        for scope in resource.get("scopeSpans", []):
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    message = json_format.ParseDict(document, ExportTraceServiceRequest(),
                                    ignore_unknown_fields=True)  # fmt: skip
    return message.SerializeToString()


def test_the_generated_export_is_read_natively_and_identically():
    lines = gzip.decompress(GENERATED.read_bytes()).decode().splitlines()
    bodies = [_request(json.loads(line)) for line in lines if line.strip()]
    assert assert_same(bodies)


def test_the_cli_gives_the_same_output_either_way(monkeypatch, tmp_path):
    path = FIXTURES / "sdk-openllmetry.binpb"
    native_out = run("list", str(path), "--json").stdout
    assert "protobuf reader: native (libprotobuf " in run("--version").stdout
    monkeypatch.setenv("SESSIONS_NATIVE", "0")
    assert "protobuf reader: Python (SESSIONS_NATIVE=0)" in run("--version").stdout
    assert run("list", str(path), "--json").stdout == native_out


def test_what_it_must_leave_to_python():
    def one(value: AnyValue) -> bytes:
        span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="x",
                    attributes=[KeyValue(key="gen_ai.request.model", value=value)])  # fmt: skip
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans()])
        request.resource_spans[0].scope_spans.add().spans.append(span)
        return request.SerializeToString()

    for value in (AnyValue(bytes_value=b"\x00"), AnyValue(kvlist_value={})):
        assert protobuf.spans_from_bodies([one(value)], CHAINS, Counter()) is None
    quoted = AnyValue(array_value={"values": [AnyValue(string_value='a"b')]})
    assert protobuf.spans_from_bodies([one(quoted)], CHAINS, Counter()) is None


# Generated requests ---------------------------------------------------------------------------

_KEYS = [*sorted(otlp.wanted_keys(CHAINS)), "agentmark.metadata.plan", "other.key"]
_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10
) | st.sampled_from(["  padded  ", "", " ", "\x1cx\x1f", "\u00a0x\u3000", "sess-1", "null",
                     "gpt-4o", '{"user_id": "u9", "input": 5}', "a,b"])  # fmt: skip
_DOUBLE = st.floats() | st.sampled_from(
    [0.0, -0.0, 1e16, 1e15, 123456789012345678.0, 1e-4, 1e-5, 0.1, 5.0, 2.5e-300, 1.5e300]
)
_SCALAR = st.one_of(
    st.builds(lambda v: AnyValue(string_value=v), _TEXT),
    st.builds(lambda v: AnyValue(int_value=v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: AnyValue(double_value=v), _DOUBLE),
    st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
    st.just(AnyValue()),
)
_VALUE = _SCALAR | st.builds(
    lambda items: AnyValue(array_value={"values": items}), st.lists(_SCALAR, max_size=3)
)
_ATTRIBUTES = st.lists(
    st.builds(lambda k, v: KeyValue(key=k, value=v), st.sampled_from(_KEYS), _VALUE), max_size=6
)
# Ids of every shape: empty, a trace's and a span's length, too short, and long past any id
# (the native reader writes those out of its fixed buffer).
_ID = st.sampled_from(
    [b"", b"\xab" * 16, b"\xcd" * 8, b"\x01\x02\x03", b"\x00" * 16, bytes(range(100))]
)
_EVENT = st.builds(
    lambda name, attrs: Span.Event(name=name, attributes=attrs),
    st.sampled_from(["exception", "log", "Exception"]),
    st.lists(st.builds(lambda v: KeyValue(key="exception.message", value=v), _SCALAR),
             max_size=2),
)  # fmt: skip
_SPAN = st.builds(
    lambda trace, span, parent, name, start, end, attrs, code, message, events: Span(
        trace_id=trace, span_id=span, parent_span_id=parent, name=name,
        start_time_unix_nano=start, end_time_unix_nano=end, attributes=attrs,
        status={"code": code, "message": message}, events=events,
    ),
    _ID, _ID, _ID, _TEXT, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), _ATTRIBUTES,
    st.sampled_from([0, 1, 2, 7]), _TEXT, st.lists(_EVENT, max_size=2),
)  # fmt: skip


def _resource(resource_attrs, scopes) -> ResourceSpans:
    resource = ResourceSpans()
    resource.resource.attributes.extend(resource_attrs)
    for spans in scopes:
        resource.scope_spans.add().spans.extend(spans)
    return resource


_REQUEST = st.builds(
    lambda resources: ExportTraceServiceRequest(resource_spans=resources).SerializeToString(),
    st.lists(
        st.builds(_resource, _ATTRIBUTES, st.lists(st.lists(_SPAN, max_size=3), max_size=2)),
        min_size=1,
        max_size=2,
    ),
)


@given(st.lists(_REQUEST, min_size=1, max_size=3))
def test_generated_requests_are_identical_or_left_to_python(bodies):
    assert_same(bodies)


@given(_DOUBLE)
def test_doubles_are_written_as_python_writes_them(number):
    """A double's text is Python's repr (NaN as protobuf._scalar spells it), digit for digit."""
    value = AnyValue(double_value=number)
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="x",
                attributes=[KeyValue(key="gen_ai.request.model", value=value)])  # fmt: skip
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans()])
    request.resource_spans[0].scope_spans.add().spans.append(span)
    spans = protobuf.spans_from_bodies([request.SerializeToString()], CHAINS, Counter())
    assert spans is not None
    expected = repr(number) if number == number else "NaN"
    assert spans.get_column("model").cast(str).to_list() == [expected]
