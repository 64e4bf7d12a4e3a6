"""The native OTLP JSON reader against the polars path: the same span frames, always.

`otlp.spans_from_blocks` (native) either gives exactly what `otlp.spans_from_lines` (polars)
gives for the same lines, problems counted alike, or None (then the polars path reads them).
Checked on every fixture, good and bad, and on generated documents that vary what the
extractor must get right: value kinds, big and odd numbers, whitespace, repeated keys,
resource attributes, exception events, escapes, nesting. Without the extension these tests
skip, unless SESSIONS_REQUIRE_NATIVE=1 (set by .ci/run) makes that a failure.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import Counter

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from sessions_cli.read import native, otlp
from sessions_cli.read.keys import CHAINS
from tests.conftest import EDGE, FIXTURES, GENERATED, REAL, REAL_PROTO, run

pytestmark = pytest.mark.skipif(
    native._extension is None and not os.environ.get("SESSIONS_REQUIRE_NATIVE"),
    reason="the native reader is not built (g++ and libsimdjson-dev; .ci/run installs them)",
)


@pytest.fixture(autouse=True)
def _native_on(monkeypatch):
    monkeypatch.delenv("SESSIONS_NATIVE", raising=False)
    assert native.active(), "SESSIONS_REQUIRE_NATIVE is set, but the extension is not built"


def both(data: bytes):
    """(native frame or None, its problems, polars frame, its problems) of these lines."""
    fast_problems: Counter = Counter()
    fast = otlp.spans_from_blocks([data], CHAINS, fast_problems)
    text = data.decode("utf-8", "replace")
    lines = pl.Series("line", [x for x in text.split("\n") if x.strip()], dtype=pl.String)
    slow_problems: Counter = Counter()
    try:
        slow = otlp.spans_from_lines(lines, CHAINS, slow_problems)
    except (pl.exceptions.PolarsError, otlp.SuspectText):
        slow = None  # the reader would report these lines one by one
    return fast, fast_problems, slow, slow_problems


def assert_same(data: bytes) -> bool:
    """True when the native reader answered (and agreed); False when it left the lines."""
    fast, fast_problems, slow, slow_problems = both(data)
    if fast is None:
        return False
    assert slow is not None, "the native reader accepted lines the polars path rejects"
    assert_frame_equal(fast, slow)
    assert fast_problems == slow_problems
    return True


def _bytes(path) -> bytes:
    """The file's bytes, decompressed as far as they go (a cut gzip: what it holds)."""
    data = path.read_bytes()
    if path.suffix != ".gz":
        return data
    return zlib.decompressobj(wbits=31).decompress(data)


EDGES = sorted(EDGE.glob("*.otlp.jsonl"))
GOOD = [REAL, REAL_PROTO, GENERATED, *(p for p in EDGES if "malformed" not in p.name)]
BAD = [*sorted((FIXTURES / "bad").glob("*.jsonl*")), *(p for p in EDGES if p not in GOOD)]


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_fixtures_are_read_natively_and_identically(path):
    assert assert_same(_bytes(path)), "the native reader left a good fixture to polars"


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_fixtures_are_identical_or_left_to_polars(path):
    assert_same(_bytes(path))


@pytest.mark.parametrize("path", [REAL, GENERATED], ids=lambda p: p.name)
def test_a_batch_read_in_blocks_gives_what_one_block_gives(path):
    # A batch reaches the extractor as the blocks it was read in, never joined: each block
    # ends its own last line (padded apart from the rest), a memoryview is read in place, and
    # a block need not end with a newline (a file's unterminated last line).
    data = _bytes(path)
    lines = data.splitlines(keepends=True)
    assert len(lines) >= 4
    cuts = [1, len(lines) // 3, len(lines) // 2, len(lines) - 1]
    blocks: list[bytes | memoryview] = []
    for start, end in zip([0, *cuts], [*cuts, len(lines)], strict=True):
        block = b"".join(lines[start:end])
        blocks.append(memoryview(block) if start % 2 else block.rstrip(b"\n"))
    whole: Counter = Counter()
    expected = otlp.spans_from_blocks([data], CHAINS, whole)
    split: Counter = Counter()
    got = otlp.spans_from_blocks(blocks, CHAINS, split)
    assert expected is not None
    assert got is not None
    assert not expected.is_empty()
    assert_frame_equal(got, expected)
    assert split == whole


def test_the_cli_gives_the_same_output_either_way(monkeypatch):
    for path in (REAL, GENERATED, FIXTURES):
        outputs = []
        for flag in ("1", "0"):
            monkeypatch.setenv("SESSIONS_NATIVE", flag)
            result = run("list", str(path), "--json")
            assert result.exit_code == 0, result.stderr
            outputs.append((result.stdout, result.stderr))
        assert outputs[0] == outputs[1]


def test_version_says_which_reader_runs(monkeypatch):
    assert "JSON reader: native (simdjson " in run("--version").stdout
    monkeypatch.setenv("SESSIONS_NATIVE", "0")
    assert "JSON reader: polars (SESSIONS_NATIVE=0)" in run("--version").stdout


def _line(document: dict, spacing: str) -> str:
    return json.dumps(document, ensure_ascii=spacing == "ascii",
                      separators=(", ", ": ") if spacing == "wide" else (",", ":"))  # fmt: skip


def test_what_it_must_leave_to_polars():
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x"}
    cases = [
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"trace\\u0049d":"a"}]}]}]}',  # escaped key
        '{"resourceSpans":[{"scopeSpans":[{"spans":[' + json.dumps(span) + "]}]}]}{}",  # two
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a\\u0000b"}]}]}]}',  # a NUL
        '{"resourceLogs":[]}',  # not traces
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":{"a":1}}]}]}]}',  # wrong type
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"x","value":'
        + "[" * 1000
        + "]" * 1000
        + "}]}]}]}]}",  # deeper than polars follows
    ]
    for case in cases:
        fast, _, _, _ = both(case.encode() + b"\n")
        assert fast is None, case


def test_fields_are_chosen_natively_unless_a_json_object_takes_part():
    """The extractor picks each field's key itself, and leaves only tag and metadata rows;
    a batch with a JSON-object attribute (whose keys join the chains) gets every row."""

    def document(*attributes: tuple[str, str]) -> bytes:
        span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x", "attributes": [
            {"key": k, "value": {"stringValue": v}} for k, v in attributes]}  # fmt: skip
        return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()

    keys = otlp.wanted_keys(CHAINS)
    plain = document(("gen_ai.request.model", "b"), ("gen_ai.response.model", "a"),
                     ("agentmark.tags", "x,y"), ("agentmark.metadata.plan", "pro"))  # fmt: skip
    raw, attrs, nested, hex_ids = native.rows([plain + b"\n"], keys, CHAINS)
    assert hex_ids
    assert nested == 0
    assert raw.get_column("_model").to_list() == ["a"]  # the response model ranks first
    assert sorted(attrs.get_column("key")) == ["agentmark.metadata.plan", "agentmark.tags"]
    assert_same(plain + b"\n")
    spread = document(("metadata", '{"user_id": "u1"}'), ("gen_ai.response.model", "a"))
    raw, attrs, nested, _ = native.rows([spread + b"\n"], keys, CHAINS)
    assert nested is None
    assert "_model" not in raw.columns
    assert sorted(attrs.get_column("key")) == ["gen_ai.response.model", "metadata"]
    assert_same(spread + b"\n")


def test_whole_numbers_are_handed_over_as_numbers_until_a_text_is_not_one():
    """Times and token counts come as int64 while every text of the batch is a whole number as
    written; any other form (a leading zero or plus, a fraction, past 64 bits) turns
    the column back into text, from that span on as before it, and polars reads it as usual."""
    keys = otlp.wanted_keys(CHAINS)

    def lines(*counts: str) -> bytes:
        spans = [
            {"traceId": "ab" * 16, "spanId": f"{i:016x}", "name": "chat",
             "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
             "endTimeUnixNano": 1_700_000_000_000_000_500 + i,
             "attributes": [{"key": "gen_ai.usage.input_tokens",
                             "value": {"intValue": count}}]}
            for i, count in enumerate(counts)
        ]  # fmt: skip
        document = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
        return json.dumps(document).encode() + b"\n"

    whole = lines("12", "0", "-3", "9223372036854775807")
    raw = native.rows([whole], keys, CHAINS).spans
    assert raw.schema["startTimeUnixNano"] == raw.schema["endTimeUnixNano"] == pl.Int64
    assert raw.get_column("_input_tokens").to_list() == [12, 0, -3, 2**63 - 1]
    assert assert_same(whole)
    for odd in ("007", "+5", "-0", "12.0", "9223372036854775808", "1e3"):
        mixed = lines("12", "40", odd, "7")
        column = native.rows([mixed], keys, CHAINS).spans.get_column("_input_tokens")
        assert column.dtype == pl.String
        assert column.to_list() == ["12", "40", odd, "7"]
        assert assert_same(mixed), odd


# Generated documents --------------------------------------------------------------------------

_WANTED = [*sorted(otlp.wanted_keys(CHAINS)), "agentmark.metadata.plan", "other.key"]
_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
) | st.sampled_from(
    ["  padded  ", "", " ", "\u00a0x\u3000", "sess-1", "null", "NONE", "gpt-4o", '["a","b"]',
     '{"user_id": "u9", "input": 5, "total": "7"}']
)  # fmt: skip
_NUMBER = st.integers(-(10**25), 10**25) | st.floats(allow_nan=False, allow_infinity=False)
_SCALAR = st.one_of(
    st.builds(lambda v: {"stringValue": v}, _TEXT),
    st.builds(
        lambda v: {"intValue": v},
        st.integers(-(10**20), 10**20) | st.text("0123456789", min_size=1, max_size=20),
    ),
    st.builds(lambda v: {"doubleValue": v}, _NUMBER),
    st.builds(lambda v: {"boolValue": v}, st.booleans()),
    st.just({}),
    st.builds(lambda a, b: {"stringValue": a, "intValue": b}, _TEXT, st.integers(0, 99)),
)
_VALUE = (
    _SCALAR
    | st.builds(lambda items: {"arrayValue": {"values": items}}, st.lists(_SCALAR, max_size=3))
    | st.builds(lambda k, v: {"kvlistValue": {"values": [{"key": k, "value": v}]}}, _TEXT, _SCALAR)
)
_ATTRIBUTES = st.lists(
    st.builds(lambda k, v: {"key": k, "value": v}, st.sampled_from(_WANTED), _VALUE), max_size=6
)
_TIME = st.one_of(st.integers(0, 2**63), st.text("0123456789", min_size=1, max_size=19),
                  st.none(), st.floats(0, 1e19, allow_nan=False))  # fmt: skip
_EVENT = st.builds(
    lambda name, attrs: {"name": name, "attributes": attrs},
    st.sampled_from(["exception", "log", "Exception"]),
    st.lists(st.builds(lambda v: {"key": "exception.message", "value": v}, _SCALAR), max_size=2),
)
_SPAN = st.fixed_dictionaries(
    {
        "traceId": st.sampled_from(["ab" * 16, "AB" * 16, "q83vEjRWeJA=", ""]),
        "spanId": st.sampled_from(["cd" * 8, "cd" * 7, None]),
    },
    optional={
        "parentSpanId": st.sampled_from(["ef" * 8, ""]),
        "name": _TEXT | st.integers(0, 9),
        "startTimeUnixNano": _TIME,
        "endTimeUnixNano": _TIME,
        "attributes": _ATTRIBUTES,
        "status": st.fixed_dictionaries(
            {},
            optional={
                "code": st.sampled_from([0, 1, 2, "2", "STATUS_CODE_ERROR", None]),
                "message": _TEXT,
            },
        ),
        "events": st.lists(_EVENT, max_size=2),
        "kind": st.integers(0, 5),
    },
)
_DOCUMENT = st.builds(
    lambda resources: {"resourceSpans": resources},
    st.lists(
        st.fixed_dictionaries(
            {
                "scopeSpans": st.lists(
                    st.builds(lambda spans: {"spans": spans}, st.lists(_SPAN, max_size=3)),
                    max_size=2,
                )
            },
            optional={"resource": st.builds(lambda a: {"attributes": a}, _ATTRIBUTES)},
        ),
        min_size=1,
        max_size=2,
    ),
)


@given(st.lists(_DOCUMENT, min_size=1, max_size=4), st.sampled_from(["compact", "wide", "ascii"]))
def test_generated_documents_are_identical_or_left_to_polars(documents, spacing):
    data = "\n".join(_line(d, spacing) for d in documents).encode() + b"\n"
    assert_same(data)
