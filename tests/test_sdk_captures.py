"""Real captures of three Python instrumentations of the openai client
(scripts/capture_python_sdks.py), each in every form its real exporters wrote, checked against
figures worked out from the script's mock responses and the providers' list prices
(gpt-4o-mini $0.15/$0.60, gpt-4o $2.50/$10 per million tokens)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import FIXTURES, by_id, run, run_json
from tests.otlp_builder import document, lines, span

M = 1_000_000
LIBRARIES = ("openinference", "openllmetry", "genai")
# Per session: two turns of gpt-4o-mini (1200/150 and 1500/90 tokens); one turn of gpt-4o
# (3000/400) and a call the mock fails with HTTP 500 (an LLM call with an error, no usage),
# each turn its own trace under the app's `chat-turn` span.
EXPECTED = {
    "sess-py-support": dict(user_id="uma", trace_count=2, span_count=4, llm_call_count=2,
                            input_tokens=2700, output_tokens=240, total_tokens=2940,
                            cost_usd=(2700 * 0.15 + 240 * 0.60) / M, error_count=0,
                            failed_trace_count=0),
    "sess-py-research": dict(user_id="viktor", trace_count=2, span_count=4, llm_call_count=2,
                             input_tokens=3000, output_tokens=400, total_tokens=3400,
                             cost_usd=(3000 * 2.50 + 400 * 10) / M, error_count=1,
                             failed_trace_count=0),  # the app caught the error in its turn
}  # fmt: skip


def forms(library: str) -> dict[str, str]:
    base = FIXTURES / f"sdk-{library}"
    return {
        "bodies": f"{base}.bodies",
        "framed": f"{base}.binpb",
        "framed-zstd": f"{base}.zstd.binpb",
        "console": f"{base}.console.txt",
    }


@pytest.mark.parametrize("library", LIBRARIES)
def test_each_capture_matches_the_worked_out_figures(library):
    sessions = by_id(run_json("list", forms(library)["framed"]))
    assert set(sessions) == set(EXPECTED)
    for session_id, expected in EXPECTED.items():
        row = sessions[session_id]
        for field, want in expected.items():
            if field == "cost_usd":
                assert row[field] == pytest.approx(want, rel=1e-12), (session_id, field)
            else:
                assert row[field] == want, (session_id, field)
        assert row["cost_source"] == "price_table"


def test_openllmetry_association_properties_are_user_and_metadata():
    sessions = by_id(run_json("list", forms("openllmetry")["framed"]))
    assert sessions["sess-py-support"]["metadata"] == {"plan": "pro"}
    only = run_json("list", forms("openllmetry")["framed"], "--meta", "plan=pro", "--user", "uma")
    assert [r["session_id"] for r in only] == ["sess-py-support"]


def _nanos(text: str) -> int:
    whole, fraction = text.rstrip("Z").split(".")
    return int(datetime.fromisoformat(whole + "+00:00").timestamp()) * 10**9 + int(fraction)


def _as_printed(rows: list[dict], reference: list[dict]) -> None:
    """The console exporter prints times to the microsecond (through a float): every field
    equal, and start and end within a microsecond."""
    assert len(rows) == len(reference)
    for row, ref in zip(rows, reference, strict=True):
        for field in ("start", "end"):
            assert abs(_nanos(row[field]) - _nanos(ref[field])) <= 1_000, field
        times = ("start", "end", "duration_ms")
        assert {k: v for k, v in row.items() if k not in times} == {
            k: v for k, v in ref.items() if k not in times
        }


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_form_gives_the_same_sessions_field_for_field(library, tmp_path):
    paths = forms(library)
    # The same bodies as protobuf-JSON, as google.protobuf.json_format writes them.
    protojson = tmp_path / "protojson.jsonl"
    with protojson.open("w") as out:
        for body in sorted((FIXTURES / f"sdk-{library}.bodies").glob("*.pb")):
            message = ExportTraceServiceRequest.FromString(body.read_bytes())
            out.write(json.dumps(json_format.MessageToDict(message)) + "\n")
    reference = run_json("list", paths["bodies"])
    for form, path in {**paths, "protobuf-json": str(protojson)}.items():
        result = run("list", path, "--json")
        assert result.exit_code == 0, (form, result.stderr)
        rows = json.loads(result.stdout)
        if form == "console":
            _as_printed(rows, reference)
            assert "3 lines that are not spans (the app's own output" in result.stderr
        else:
            assert rows == reference, form
            assert result.stderr == "", form


def test_a_framed_file_cut_short_keeps_what_came_before(tmp_path):
    framed = (FIXTURES / "sdk-genai.binpb").read_bytes()
    cut = tmp_path / "cut.binpb"
    cut.write_bytes(framed + framed[:50])  # a second copy of the message, cut after 50 bytes
    result = run("list", str(cut), "--json")
    assert result.exit_code == 0
    assert {r["session_id"] for r in json.loads(result.stdout)} == set(EXPECTED)
    assert f"protobuf framing breaks at byte {len(framed):,}" in result.stderr
    assert run("list", str(cut), "--strict").exit_code == 1


def test_otlp_logs_are_named_as_such(tmp_path):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "hello"
    record.time_unix_nano = 1_790_000_000_000_000_000
    path = tmp_path / "logs.pb"
    path.write_bytes(logs.SerializeToString())
    result = run("list", str(path))
    assert result.exit_code == 1
    assert "OTLP logs, not traces" in result.stderr


# ---------------------------------------------------------------------------------------------
# An exception event is an error (contract §2), whichever form carries it


def _failed_run() -> dict:
    """A LangSmith-style failed run: status unset, an `exception` event."""
    failed = span("t", "1", name="run", session__id="s-exc")
    failed["status"] = {"code": 0}
    failed["events"] = [{"timeUnixNano": "1790000000000000005", "name": "exception",
                         "attributes": [{"key": "exception.message",
                                         "value": {"stringValue": "boom"}}]}]  # fmt: skip
    quiet = span("t2", "1", name="run", session__id="s-exc")
    quiet["events"] = [{"name": "log", "attributes": []}]
    return document(failed, quiet)


def _as_protobuf(doc: dict) -> bytes:
    doc = json.loads(json.dumps(doc))
    for resource in doc["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for one in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if one.get(key):
                        one[key] = base64.b64encode(bytes.fromhex(one[key])).decode()
    return json_format.ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()


def test_an_exception_event_makes_a_span_an_error_in_every_form(tmp_path):
    doc = _failed_run()
    plain, noisy, body = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.pb"
    plain.write_text(lines(doc))
    noisy.write_text(lines(doc) + "{not json\n")  # the line-by-line path
    body.write_bytes(_as_protobuf(doc))
    for path in (plain, noisy, body):
        [row] = json.loads(run("list", str(path), "--json").stdout)
        assert (row["error_count"], row["failed_trace_count"]) == (1, 1), path


# ---------------------------------------------------------------------------------------------
# Keys of every convention (contract §2)


@pytest.mark.parametrize(
    ("attributes", "field", "expected"),
    [
        ({"ai.telemetry.metadata.userId": "vera"}, "user_id", "vera"),  # Vercel AI SDK
        ({"traceloop.association.properties.user_id": "olga"}, "user_id", "olga"),
        ({"langsmith.metadata.user_id": "lars"}, "user_id", "lars"),
        ({"metadata": '{"user_id": "pia", "tier": "gold"}'}, "user_id", "pia"),
        ({"metadata": '{"user_id": "pia", "tier": "gold"}'}, "metadata", {"tier": "gold"}),
        ({"ai.telemetry.metadata.sessionName": "Onboarding"}, "session_name", "Onboarding"),
        ({"langfuse.trace.name": "lf-trace"}, "session_name", "lf-trace"),
        ({"langfuse.trace.tags": '["a", "b"]'}, "tags", ["a", "b"]),
        ({"tag.tags": ["x"]}, "tags", ["x"]),
        ({"ai.telemetry.metadata.plan": "pro"}, "metadata", {"plan": "pro"}),
        ({"langfuse.trace.metadata.env": "prod"}, "metadata", {"env": "prod"}),
        ({"operation.cost": 0.25, "gen_ai.usage.input_tokens": 5}, "cost_usd", 0.25),
        ({"llm.usage.total_tokens": 42}, "total_tokens", 42),
    ],
)  # fmt: skip
def test_keys_of_every_convention_are_read(tmp_path, attributes, field, expected):
    path = tmp_path / "t.jsonl"
    attrs = {k.replace(".", "__"): v for k, v in attributes.items()}
    path.write_text(lines(document(span("t", "1", session__id="s", **attrs))))
    [row] = run_json("list", str(path))
    assert row[field] == expected


def test_langfuse_usage_and_cost_details_and_generations(tmp_path):
    """The Langfuse SDK's keys: usage and cost as JSON objects, the generation marker."""
    generation = span(
        "t",
        "2",
        parent="1",
        name="llm",
        langfuse__observation__type="generation",
        langfuse__observation__model__name="gpt-4o",
        langfuse__observation__usage_details='{"input": 100, "output": 20, "total": 120}',
        langfuse__observation__cost_details='{"input": 0.003, "total": 0.0042}',
    )
    failed = span(
        "t", "3", parent="1", name="llm", error=True, langfuse__observation__type="generation"
    )
    root = span("t", "1", name="chat", langfuse__session__id="lf-1", langfuse__user__id="lena",
                langfuse__trace__name="Support chat")  # fmt: skip
    path = tmp_path / "langfuse.jsonl"
    path.write_text(lines(document(root, generation, failed)))
    [row] = run_json("list", str(path))
    assert (row["session_id"], row["user_id"], row["session_name"]) == (
        "lf-1",
        "lena",
        "Support chat",
    )
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (100, 20, 120)
    assert (row["cost_usd"], row["cost_source"]) == (0.0042, "attribute")
    assert (row["llm_call_count"], row["models"]) == (2, ["gpt-4o"])  # the failed one counts


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"resourceLogs": [{"scopeLogs": []}]}\n', "OTLP logs, not traces"),
        ('{\n  "resourceMetrics": []\n}\n', "OTLP metrics, not traces"),
        ('[{"id": "t1", "timestamp": "2026-11-26T08:00:00Z", "observations": []}]',
         "a Langfuse UI export (traces or observations), not OpenTelemetry spans"),
        ('{"id": "o1", "traceId": "t1", "type": "GENERATION", "startTime": "2026"}\n',
         "a Langfuse UI export"),
        ('{"id": "r1", "run_type": "llm", "trace_id": "t1"}\n', "a LangSmith run export"),
        ("{}\n", "resourceSpans is null, not an array"),
    ],
)  # fmt: skip
def test_a_file_of_something_else_says_what_it_is(tmp_path, text, said):
    path = tmp_path / "export.json"
    path.write_text(text)
    result = run("list", str(path))
    assert said in result.stderr
    assert run("stats", str(path), "--max-total-cost", "1").exit_code == 1  # never a pass


def test_protobuf_batches_walked_in_worker_processes_give_the_same_spans():
    from sessions_cli.read import keys
    from sessions_cli.read import sources as inputs
    from sessions_cli.store import loading
    from sessions_cli.tuning import Tuning

    # Every capture's bodies, framed, in one folder: batches of one message each.
    paths = [FIXTURES / f"sdk-{library}.binpb" for library in LIBRARIES]
    sources = [inputs.Source(str(p), p) for p in paths]

    def spans(**tuning) -> list[tuple]:
        frame, _ = loading.read_spans(sources, keys.CHAINS, tuning=Tuning(**tuning))
        return sorted(frame.drop("metadata", "tags").rows())

    inline = spans(protobuf_processes=1)
    assert len(inline) == 3 * (4 + 4)  # three captures of two sessions, four spans each
    assert spans(chunk_bytes=1, protobuf_processes=2) == inline


def test_cache_and_reasoning_tokens_are_fields_of_their_own_and_priced(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(lines(document(span(
        "t", "1", session__id="s", gen_ai__request__model="claude-3-5-sonnet-20241022",
        gen_ai__system="anthropic", gen_ai__usage__input_tokens=10_000,
        gen_ai__usage__output_tokens=1_000, gen_ai__usage__cache_read__input_tokens=6_000,
        gen_ai__usage__cache_creation__input_tokens=2_000,
        gen_ai__usage__reasoning__output_tokens=400,
    ))))  # fmt: skip
    [row] = run_json("list", str(path))
    assert (row["cache_read_tokens"], row["cache_write_tokens"], row["reasoning_tokens"]) == (
        6_000, 2_000, 400)  # fmt: skip
    assert row["total_tokens"] == 11_000  # parts of input and output, not added again
    # $3 input, $0.30 cache read, $3.75 cache write, $15 output per million
    assert row["cost_usd"] == pytest.approx((2_000 * 3 + 6_000 * 0.3 + 2_000 * 3.75
                                             + 1_000 * 15) / M)  # fmt: skip
