"""Fuzzing the whole CLI with generated OTLP (issue 6): valid exports, and exports mutated the
ways real files break. Never a traceback, exit codes only 0/1/2, JSON output always parses, and
for valid input the numbers do not depend on line order, duplication or how lines are split
into files.

CI runs a bounded number of examples; a longer run:
    python -m pytest -m fuzz --hypothesis-profile=long
"""

from __future__ import annotations

import base64
import json
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import run

pytestmark = pytest.mark.fuzz

FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

KEYS = ["session.id", "agentmark.session_id", "agentmark.user_id", "agentmark.session_name",
        "gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
        "agentmark.usage.cost_usd", "agentmark.tags", "agentmark.metadata.plan",
        "gen_ai.operation.name", "ai.usage.promptTokens"]  # fmt: skip
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12
)  # any character: controls, RTL marks, emoji, NUL
SCALARS = st.one_of(
    TEXT.map(lambda t: {"stringValue": t}),
    st.integers(-(2**70), 2**70).map(lambda n: {"intValue": str(n)}),
    st.integers(-5, 10_000).map(lambda n: {"intValue": n}),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: {"doubleValue": str(f)}),
    st.booleans().map(lambda b: {"boolValue": b}),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3).map(lambda v: {"arrayValue": {"values": v}}),
    st.lists(st.tuples(TEXT, SCALARS), max_size=2).map(
        lambda kv: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kv]}}
    ),
)


def hex_or_base64(n: int, size: int, encoded: bool) -> str:
    raw = n.to_bytes(size, "big")
    return base64.b64encode(raw).decode() if encoded else raw.hex()


@st.composite
def spans(draw, trace: int, count: int):
    encoded = draw(st.booleans())  # protobuf-JSON ids
    out = []
    for i in range(count):
        start = 1_790_000_000_000_000_000 + draw(st.integers(0, 10**12))
        span = {
            "traceId": hex_or_base64(trace + 1, 16, encoded),
            "spanId": hex_or_base64(i + 1, 8, encoded),
            "name": draw(TEXT),
            "startTimeUnixNano": draw(st.sampled_from([str(start), start])),
            "endTimeUnixNano": str(start + draw(st.integers(0, 10**10))),
            "attributes": [
                {"key": k, "value": draw(VALUES)}
                for k in draw(st.lists(st.sampled_from(KEYS), max_size=5, unique=True))
            ],
            "status": {"code": draw(st.sampled_from([0, 1, 2, "STATUS_CODE_ERROR"]))},
        }
        if i:
            span["parentSpanId"] = hex_or_base64(draw(st.integers(1, count)), 8, encoded)
        out.append(span)
    return out


@st.composite
def export_lines(draw) -> list[str]:
    """OTLP JSON lines: a few traces, their spans spread over batches."""
    all_spans = []
    for t in range(draw(st.integers(1, 4))):
        all_spans += draw(spans(t, draw(st.integers(1, 5))))
    random.Random(draw(st.integers(0, 1000))).shuffle(all_spans)
    lines, at = [], 0
    while at < len(all_spans):
        size = draw(st.integers(1, 4))
        keys = draw(st.lists(st.sampled_from(KEYS), max_size=2))
        resource = {"attributes": [{"key": k, "value": draw(SCALARS)} for k in keys]}
        scope_key = draw(st.sampled_from(["scopeSpans", "instrumentationLibrarySpans"]))
        scope = {"scope": {"name": "f"}, "spans": all_spans[at : at + size]}
        doc = {"resourceSpans": [{"resource": resource, scope_key: [scope]}]}
        lines.append(json.dumps(doc, ensure_ascii=draw(st.booleans())))
        at += size
    return lines


def mutate(lines: list[str], data) -> bytes:
    """Break the export the ways real files break."""
    kind = data.draw(st.sampled_from(
        ["truncate", "garbage", "retype", "drop", "bytes", "bom_crlf", "empty_lines"]
    ))  # fmt: skip
    text = "\n".join(lines)
    if kind == "truncate":
        return text.encode()[: data.draw(st.integers(0, len(text.encode())))]
    if kind == "garbage":
        at = data.draw(st.integers(0, len(lines)))
        junk = data.draw(st.sampled_from(["{", "[1,2]", '"x"', "null", "{}", '{"resourceSpans":7}',
                                          '{"resourceSpans":[{"scopeSpans":"no"}]}']))  # fmt: skip
        return "\n".join([*lines[:at], junk, *lines[at:]]).encode()
    if kind == "retype":
        doc = json.loads(lines[0])
        span = doc["resourceSpans"][0]
        span = next(iter(v for k, v in span.items() if k != "resource"))[0]["spans"][0]
        field = data.draw(st.sampled_from(["traceId", "spanId", "startTimeUnixNano", "attributes",
                                           "status", "name", "endTimeUnixNano"]))  # fmt: skip
        span[field] = data.draw(
            st.one_of(st.none(), st.integers(), TEXT, st.lists(st.integers()),
                      st.dictionaries(TEXT, st.integers(), max_size=2))
        )  # fmt: skip
        return "\n".join([json.dumps(doc), *lines[1:]]).encode()
    if kind == "drop":
        doc = json.loads(lines[0])
        parts = ["resource", "scopeSpans", "instrumentationLibrarySpans"]
        doc["resourceSpans"][0].pop(data.draw(st.sampled_from(parts)), None)
        return "\n".join([json.dumps(doc), *lines[1:]]).encode()
    if kind == "bytes":
        raw = bytearray(text.encode())
        for _ in range(data.draw(st.integers(1, 5))):
            raw.insert(data.draw(st.integers(0, len(raw))), data.draw(st.integers(0, 255)))
        return bytes(raw)
    if kind == "bom_crlf":
        return b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()
    return ("\n\n" + "\n \n".join(lines) + "\n\n").encode()


COMMANDS = [
    ["list", "--json"],
    ["list", "--orphans", "--csv"],
    ["list"],
    ["stats", "--json", "--by", "model"],
    ["stats", "--format", "markdown", "--by", "tag"],
]


@FUZZ
@given(lines=export_lines(), data=st.data(), command=st.sampled_from(COMMANDS))
def test_mutated_exports_never_crash(tmp_path, lines, data, command):
    path = tmp_path / "export.jsonl"
    path.write_bytes(mutate(lines, data))
    for strict in ([], ["--strict"]):
        result = run(*command, str(path), *strict)  # an exception would fail the test here
        assert result.exit_code in (0, 1, 2), result.stderr
        if result.exit_code == 0 and "--json" in command:
            json.loads(result.stdout)
        if result.exit_code:
            assert result.stdout == ""
            assert result.stderr.startswith("sessions: error: ")


@FUZZ
@given(lines=export_lines(), data=st.data())
def test_valid_exports_give_the_same_numbers_however_they_are_cut(tmp_path, lines, data):
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # one directory per example
    whole = tmp_path / "whole.jsonl"
    whole.write_text("\n".join(lines) + "\n")
    expected = run("list", str(whole), "--json")
    assert expected.exit_code == 0
    # Shuffle the lines, re-send some of them, and split them over several files.
    copy = list(lines) + data.draw(st.lists(st.sampled_from(lines), max_size=3))
    random.Random(data.draw(st.integers(0, 1000))).shuffle(copy)
    cut = sorted(data.draw(st.lists(st.integers(0, len(copy)), max_size=3)))
    parts = tmp_path / "parts"
    parts.mkdir()
    for n, (a, b) in enumerate(zip([0, *cut], [*cut, len(copy)], strict=True)):
        (parts / f"{n:02d}.jsonl").write_text("".join(line + "\n" for line in copy[a:b]))
    again = run("list", str(parts), "--json")
    assert again.exit_code == 0
    assert _numbers(json.loads(again.stdout)) == _numbers(json.loads(expected.stdout))


def _numbers(rows: list[dict]) -> dict:
    """What must not change; with random text in the data, names may tie in the first-read order,
    so only ids and numbers are compared."""
    fields = ("trace_count", "span_count", "llm_call_count", "input_tokens", "output_tokens",
              "total_tokens", "error_count", "failed_trace_count", "start", "end")  # fmt: skip
    return {r["session_id"]: ({f: r[f] for f in fields}, _rounded(r["cost_usd"])) for r in rows}


def _rounded(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 9)


# ---------------------------------------------------------------------------------------------
# The flat-record and protobuf readers


def _never_crashes(path: Path, command: list[str]) -> None:
    for strict in ([], ["--strict"]):
        result = run(*command, str(path), *strict)
        assert result.exit_code in (0, 1, 2), result.stderr
        assert "internal error" not in result.stderr
        if result.exit_code:
            assert result.stdout == ""
            assert result.stderr.startswith("sessions: error: ")
        elif "--json" in command:
            json.loads(result.stdout)


def _break_bytes(raw: bytes, data) -> bytes:
    """Cut, overwrite, insert or duplicate bytes: what disks, pipes and editors do to files."""
    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["cut", "flip", "insert", "repeat"]))
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "cut":
            del raw[at:]
        elif kind == "flip" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            raw[at:at] = bytes(data.draw(st.lists(st.integers(0, 255), max_size=8)))
        else:
            raw[at:at] = raw[at : at + data.draw(st.integers(1, 64))]
    return bytes(raw)


@FUZZ
@given(lines=export_lines(), data=st.data(), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_flat_records_read_back_the_same_and_broken_ones_never_crash(tmp_path, lines, data,
                                                                      suffix):  # fmt: skip
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))
    source = tmp_path / "export.jsonl"
    source.write_text("\n".join(lines) + "\n")
    flat = tmp_path / f"spans{suffix}"
    assert run("convert", str(source), "-o", str(flat)).exit_code == 0
    expected, again = run("list", str(source), "--json"), run("list", str(flat), "--json")
    assert again.exit_code == 0, again.stderr
    assert _numbers(json.loads(again.stdout)) == _numbers(json.loads(expected.stdout))
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(_break_bytes(flat.read_bytes(), data))
    _never_crashes(broken, data.draw(st.sampled_from(COMMANDS)))


PROTOBUF = sorted(Path(__file__).resolve().parent.parent.joinpath("fixtures").glob("*.binpb"))


@FUZZ
@given(seed=st.sampled_from(PROTOBUF), data=st.data(), command=st.sampled_from(COMMANDS))
def test_broken_protobuf_never_crashes(tmp_path, seed, data, command):
    """The real captures, framed (plain and zstd) or as one body, broken byte by byte."""
    raw = seed.read_bytes()
    if data.draw(st.booleans()):  # the first framed message alone: a bare request body
        length = int.from_bytes(raw[:4], "big")
        raw = raw[4 : 4 + length]
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "broken.binpb"
    path.write_bytes(_break_bytes(raw, data))
    _never_crashes(path, command)
