"""Write fixtures/bad/: one small file per kind of broken or hostile input (issue 6).

Each file holds a few good spans around its flaw, so a test can pin both what is reported and
what is still counted. Re-run after changing a case: python scripts/make_bad_fixtures.py
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.otlp_builder import BASE_NS, document, span  # noqa: E402

OUT = ROOT / "fixtures" / "bad"


def good(n: int, session: str = "sess-ok", tokens: int = 100) -> dict:
    """A one-span trace of a session, with usage: the part that must still be counted."""
    return document(
        span(f"good{n}", f"{n:016x}", start_ms=n * 1000, end_ms=n * 1000 + 500,
             session__id=session, gen_ai__request__model="gpt-4o-mini",
             gen_ai__usage__input_tokens=tokens, gen_ai__usage__output_tokens=10,
             agentmark__usage__cost_usd=0.001)
    )  # fmt: skip


def line(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode() + b"\n"


def raw_span(**fields) -> dict:
    base = span("raw", "0000000000000001", start_ms=0, end_ms=10, session__id="sess-raw",
                gen_ai__usage__input_tokens=7)  # fmt: skip
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def attrs_span(trace: str, span_id: str, attributes: list, **kw) -> dict:
    out = span(trace, span_id, **kw)
    out["attributes"] = attributes
    return out


def cases() -> dict[str, bytes]:
    ok = line(good(1)) + line(good(2))
    cut = line(good(3))
    name_doc = good(4)
    name_doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(
        {"key": "agentmark.session_name", "value": {"stringValue": "café ☕"}}
    )
    name_line = line(name_doc)
    cut_at = name_line.index("☕".encode()) + 1  # inside the 3-byte character
    invalid = good(5)
    invalid_line = line(invalid).replace(b'"sess-ok"', b'"sess-\xff\xfeok"')
    out: dict[str, bytes] = {
        "truncated_last_line.otlp.jsonl": ok + cut[: len(cut) // 2],
        "cut_multibyte_character.otlp.jsonl": ok + name_line[:cut_at],
        "invalid_utf8.otlp.jsonl": ok + invalid_line,
        "utf8_bom.otlp.jsonl": b"\xef\xbb\xbf" + ok,
        "crlf_line_endings.otlp.jsonl": ok.replace(b"\n", b"\r\n"),
        "binary_garbage.bin": bytes(range(256)) * 4,
        "truncated_gzip.otlp.jsonl.gz": gzip.compress(ok * 50, mtime=0)[:-200],
        "empty_gzip.otlp.jsonl.gz": gzip.compress(b"", mtime=0),
        "not_an_object.otlp.jsonl": ok + b'[1, 2]\n"a string"\n42\nnull\n',
        "resource_spans_wrong_type.otlp.jsonl": ok
        + b'{"resourceSpans": {"not": "an array"}}\n{"resourceSpans": "text"}\n',
    }
    missing = [
        raw_span(traceId=None, spanId="00000000000000a1"),
        raw_span(spanId=None),
        raw_span(spanId="00000000000000a3", startTimeUnixNano=None, endTimeUnixNano=None),
    ]
    out["span_missing_ids_or_times.otlp.jsonl"] = ok + line(document(*missing))
    bad_ids = [
        raw_span(traceId="abc", spanId="00000000000000b1"),  # too short
        raw_span(traceId="zz" * 16, spanId="00000000000000b2"),  # not hex
        raw_span(spanId="!!notbase64!"),  # 12 chars, not base64
        raw_span(spanId="00000000000000b4", traceId="0" * 32),  # all zero: invalid
    ]
    out["invalid_ids.otlp.jsonl"] = ok + line(document(*bad_ids))
    out["end_before_start.otlp.jsonl"] = ok + line(document(
        raw_span(spanId="00000000000000c1", startTimeUnixNano=str(BASE_NS + 5_000_000_000),
                 endTimeUnixNano=str(BASE_NS + 1_000_000_000))
    ))  # fmt: skip
    out["bad_timestamps.otlp.jsonl"] = ok + line(document(
        raw_span(spanId="00000000000000d1", startTimeUnixNano="0", endTimeUnixNano="0"),
        raw_span(spanId="00000000000000d2", startTimeUnixNano="-5", endTimeUnixNano="10"),
        raw_span(spanId="00000000000000d3", startTimeUnixNano="253402300800000000000",
                 endTimeUnixNano="253402300800000000001"),  # past year 9999
    ))  # fmt: skip
    numbers = [
        ("00000000000000e1", {"intValue": "12"}),  # a string: fine
        ("00000000000000e2", {"stringValue": "12.0"}),  # a whole float as text: 12
        ("00000000000000e3", {"doubleValue": "NaN"}),
        ("00000000000000e4", {"doubleValue": "Infinity"}),
        ("00000000000000e5", {"intValue": "99999999999999999999999"}),  # beyond 64 bits
        ("00000000000000e6", {"doubleValue": 12.5}),  # not whole
    ]
    out["odd_numbers.otlp.jsonl"] = ok + line(document(*(
        attrs_span("numbers", sid, [
            {"key": "session.id", "value": {"stringValue": "sess-numbers"}},
            {"key": "gen_ai.usage.input_tokens", "value": value},
        ], start_ms=i, end_ms=i + 1)
        for i, (sid, value) in enumerate(numbers)
    )))  # fmt: skip
    out["negative_usage.otlp.jsonl"] = ok + line(document(
        attrs_span("negative", "00000000000000f1", [
            {"key": "session.id", "value": {"stringValue": "sess-negative"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "-50"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "5"}},
            {"key": "agentmark.usage.cost_usd", "value": {"doubleValue": -0.5}},
        ])
    ))  # fmt: skip
    nested = {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}
    kvlist = {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}
    out["nested_values_for_text.otlp.jsonl"] = ok + line(document(
        attrs_span("nested1", "0000000000000101", [
            {"key": "session.id", "value": nested},
            {"key": "agentmark.user_id", "value": kvlist},
            {"key": "gen_ai.request.model", "value": nested},
        ]),
        attrs_span("nested1", "0000000000000102", [
            {"key": "session.id", "value": {"stringValue": "sess-nested"}},
        ], parent="0000000000000101"),
    ))  # fmt: skip
    out["session_id_is_an_int.otlp.jsonl"] = ok + line(document(
        attrs_span("intsession", "0000000000000201", [
            {"key": "session.id", "value": {"intValue": 42}},
        ])
    ))  # fmt: skip
    out["two_session_ids_in_one_trace.otlp.jsonl"] = ok + line(document(
        span("conflict", "0000000000000301", name="root", session__id="sess-root"),
        span("conflict", "0000000000000302", parent="0000000000000301", session__id="sess-child"),
        span("conflict2", "0000000000000303", name="root2", session__id="sess-root"),
        span("conflict2", "0000000000000304", parent="0000000000000303", session__id="sess-other"),
    ))  # fmt: skip
    out["parent_cycle.otlp.jsonl"] = ok + line(document(
        span("cycle", "0000000000000401", parent="0000000000000402", start_ms=0, end_ms=100,
             session__id="sess-cycle", gen_ai__usage__input_tokens=30),
        span("cycle", "0000000000000402", parent="0000000000000401", start_ms=10, end_ms=90,
             gen_ai__usage__input_tokens=20),
        span("selfparent", "0000000000000403", parent="0000000000000403", start_ms=0, end_ms=5,
             session__id="sess-cycle", gen_ai__usage__input_tokens=5),
    ))  # fmt: skip
    # The same span, sent with different content in two files: the first file read wins.
    first = span("dup", "0000000000000501", session__id="sess-dup", gen_ai__usage__input_tokens=1)
    second = span("dup", "0000000000000501", session__id="sess-dup", gen_ai__usage__input_tokens=9)
    out["conflicting_duplicate/a.otlp.jsonl"] = line(document(first))
    out["conflicting_duplicate/b.otlp.jsonl"] = line(document(second))
    big = "x" * 10_000_000
    out["ten_mb_attribute.otlp.jsonl"] = ok + line(document(
        span("big", "0000000000000601", session__id="sess-big", gen_ai__prompt=big,
             gen_ai__usage__input_tokens=3)
    ))  # fmt: skip
    hostile = good(7, session="sess-\x1b]8;;https://evil.example\x07click\x1b]8;;\x07")
    attrs = hostile["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    attrs += [
        {"key": "agentmark.session_name", "value": {"stringValue": '=HYPERLINK("http://x")'}},
        {"key": "agentmark.user_id", "value": {"stringValue": "\x1b[2J\rbob\x08"}},
    ]
    out["terminal_and_formula_injection.otlp.jsonl"] = line(hostile)
    return out


def main() -> None:
    for name, data in cases().items():
        path = OUT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "ten_mb_attribute.otlp.jsonl":
            path = path.with_suffix(".jsonl.gz")  # 10 MB of one letter gzips to 10 KB
            data = gzip.compress(data, mtime=0)
        path.write_bytes(data)
        print(f"{path.relative_to(ROOT)}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
