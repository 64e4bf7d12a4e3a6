"""Capture real trace exports from three Python instrumentations of the OpenAI client.

Each library runs in its own process (two instrumentations of one client would wrap each other):

- `openinference`: OpenInference's `OpenAIInstrumentor` (Arize Phoenix), sessions and users from
  its `using_session` / `using_user` context (`session.id`, `user.id`);
- `openllmetry`: OpenLLMetry's `opentelemetry-instrumentation-openai` (traceloop), the app
  setting `traceloop.association.properties.*` on its own turn spans;
- `genai`: the OpenTelemetry project's `opentelemetry-instrumentation-openai-v2` (GenAI semantic
  conventions), with `gen_ai.conversation.id` and `enduser.id` on the app's turn spans.

The real `openai` client calls a mock OpenAI-compatible server on 127.0.0.1 whose responses fix
every token count (see RESPONSES), so every figure in the capture is known in advance. The real
exporters write each form: `OTLPSpanExporter` (OTLP/HTTP protobuf) posts to a receiver on
127.0.0.1 that keeps each body as it came (`<lib>.bodies/NNN.pb`) and also writes them framed
the way the Collector's `file` exporter does (`<lib>.binpb`, and `<lib>.zstd.binpb` with each
message zstd-compressed); `ConsoleSpanExporter` writes `<lib>.console.txt`, with the app's own
print() lines in between, as a terminal would show them.

Run outside the project's environment:

    python3 -m venv /tmp/cap && /tmp/cap/bin/pip install openai opentelemetry-sdk \\
        opentelemetry-exporter-otlp-proto-http openinference-instrumentation-openai \\
        opentelemetry-instrumentation-openai opentelemetry-instrumentation-openai-v2 zstandard
    /tmp/cap/bin/python scripts/capture_python_sdks.py fixtures/sdk
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LIBRARIES = ("openinference", "openllmetry", "genai")
# (session id, user id, [(model, prompt tokens, completion tokens) per turn])
SESSIONS = [
    ("sess-py-support", "uma", [("gpt-4o-mini", 1200, 150), ("gpt-4o-mini", 1500, 90)]),
    ("sess-py-research", "viktor", [("gpt-4o", 3000, 400)]),
]
FAILING_MODEL = "gpt-4o-broken"  # the mock answers 500: a failed call without usage


def start_mock_openai() -> ThreadingHTTPServer:
    class MockOpenAI(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            model = request["model"]
            if model == FAILING_MODEL:
                self._reply(500, {"error": {"message": "mock failure", "type": "server_error"}})
                return
            prompt, completion = (int(n) for n in request["messages"][-1]["content"].split("/"))
            self._reply(200, {
                "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion},
            })  # fmt: skip

        def _reply(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), MockOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_receiver(bodies: list[bytes]) -> ThreadingHTTPServer:
    """An OTLP/HTTP endpoint: keeps each protobuf body exactly as it was posted."""

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_app(library: str, prefix: str) -> None:
    """One library's app, in this process: instrument, call the mock, export every form."""
    import openai
    import zstandard
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    mock, bodies = start_mock_openai(), []
    receiver = start_receiver(bodies)
    base = Path(f"{prefix}-{library}")
    console = base.with_name(base.name + ".console.txt").open("w")
    provider = TracerProvider(resource=Resource.create({"service.name": f"capture-{library}"}))
    endpoint = f"http://127.0.0.1:{receiver.server_port}/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=console)))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("capture")
    session_context = _instrument(library)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{mock.server_port}/v1", api_key="mock",
                           max_retries=0)  # fmt: skip
    for session_id, user_id, turns in SESSIONS:
        for number, (model, prompt, completion) in enumerate(turns, start=1):
            with (
                session_context(session_id, user_id),
                tracer.start_as_current_span(
                    "chat-turn", attributes=_turn_attributes(library, session_id, user_id)
                ),
            ):
                print(f"turn {number} of {session_id}", file=console, flush=True)  # app output
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"{prompt}/{completion}"}]
                )
    session_id, user_id, _ = SESSIONS[1]
    with session_context(session_id, user_id), tracer.start_as_current_span(
        "chat-turn", attributes=_turn_attributes(library, session_id, user_id)
    ), contextlib.suppress(openai.APIError):  # fmt: skip
        client.chat.completions.create(
            model=FAILING_MODEL, messages=[{"role": "user", "content": "1/1"}]
        )
    provider.shutdown()
    console.close()
    _write_bodies(base, bodies, zstandard.ZstdCompressor())


def _instrument(library: str):
    """Instrument the client; the context that puts a session and user on its spans."""
    if library == "openinference":
        from openinference.instrumentation import using_session, using_user
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()

        @contextlib.contextmanager
        def both(session_id: str, user_id: str):
            with using_session(session_id), using_user(user_id):
                yield

        return both
    if library == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()
    else:
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()
    return lambda session_id, user_id: contextlib.nullcontext()


def _turn_attributes(library: str, session_id: str, user_id: str) -> dict[str, str]:
    """What the app itself puts on its turn span (OpenInference propagates its own)."""
    if library == "openllmetry":
        return {"traceloop.association.properties.session_id": session_id,
                "traceloop.association.properties.user_id": user_id,
                "traceloop.association.properties.plan": "pro"}  # fmt: skip
    if library == "genai":
        return {"gen_ai.conversation.id": session_id, "enduser.id": user_id}
    return {}


def _write_bodies(base: Path, bodies: list[bytes], zstd) -> None:
    folder = base.with_name(base.name + ".bodies")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.pb"):
        old.unlink()
    with open(f"{base}.binpb", "wb") as framed, open(f"{base}.zstd.binpb", "wb") as compressed:
        for number, body in enumerate(bodies):
            (folder / f"{number:03d}.pb").write_bytes(body)
            framed.write(len(body).to_bytes(4, "big") + body)
            packed = zstd.compress(body)
            compressed.write(len(packed).to_bytes(4, "big") + packed)


def main() -> None:
    prefix = sys.argv[1] if len(sys.argv) > 1 else "fixtures/sdk"
    if len(sys.argv) > 2:  # a child: one library
        run_app(sys.argv[2], prefix)
        return
    for library in LIBRARIES:
        subprocess.run([sys.executable, __file__, prefix, library], check=True)
        print(f"captured {library}", file=sys.stderr)


if __name__ == "__main__":
    main()
