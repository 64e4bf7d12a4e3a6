"""Deterministic, realistic OTLP JSON-line exports of any size, for benchmarks and fixtures.

What the file looks like, and why:
- Lines are export batches (up to 512 spans, as OTel's BatchSpanProcessor sends), written when
  spans *end*, so a trace's spans are spread over several lines and sessions interleave.
- Several concurrent sessions per service; each session is 1-12 traces separated by idle time
  (a user thinking, a job waiting), each trace an agent run: a root span, steps with LLM calls
  (OTel GenAI `chat` spans, or Vercel AI SDK `ai.generateText` wrappers that repeat their
  `doGenerate` child's usage), tool calls with nested LLM calls, about 3% failed calls.
- Session ids and user ids on the root only (children inherit through the trace), some costs as
  attributes and some left to the price table, about 5% of traces without any session,
  resource attributes per service, long prompt text on LLM spans, and about 0.3% of batches
  re-sent (the exporter retried), which a correct reader counts once.

    python benchmarks/generate.py --spans 100000 -o /tmp/100k.jsonl [--seed 7]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from pathlib import Path

BATCH = 512
START_NS = 1_790_000_000_000_000_000  # 2026-09-21
MS = 1_000_000
SERVICES = ("support-bot", "research-agent", "batch-summarizer", "sales-assistant")
MODELS = (
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("google", "gemini-2.0-flash"),
)
TOOLS = ("search_docs", "lookup_order", "fetch_url", "run_sql", "send_email")
NAMES = ("Refund request", "Order status", "Market research", "Nightly digest", "Lead follow-up")
TAGS = ("prod", "beta", "eu", "us", "vip", "internal")
TEXT = (
    "the customer asked about their order and the assistant should check the refund policy "
    "before answering with a summary of options including store credit shipping delays and "
    "escalation paths for premium accounts in every region we operate"
)


def _value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": v}


def _attrs(pairs: dict) -> list[dict]:
    return [{"key": k, "value": _value(v)} for k, v in pairs.items()]


class Generator:
    def __init__(self, seed: int, concurrency: int = 64) -> None:
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        words = TEXT.split()
        self.prompts = [" ".join(self.rng.choices(words, k=n)) for n in (80, 200, 400, 600)]

    def hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(n * 4):0{n}x}"

    def new_session(self, now: int) -> dict:
        rng = self.rng
        return {
            "id": f"sess-{self.hex(12)}",
            "name": rng.choice(NAMES) if rng.random() < 0.7 else None,
            "user": f"user-{rng.randrange(2000):04d}",
            "service": rng.choice(SERVICES),
            "tags": json.dumps(rng.sample(TAGS, rng.randrange(0, 3))),
            "plan": rng.choice(("free", "pro", "team")),
            "traces_left": rng.randint(1, 12),
            "next": now + rng.randrange(0, 5_000) * MS,
        }

    # -- one trace ------------------------------------------------------------------------------

    def trace(self, session: dict | None, start: int) -> list[tuple[str, dict]]:
        """(service, span) pairs of one agent run starting at `start`."""
        rng = self.rng
        trace_id = self.hex(32)
        root_id = self.hex(16)
        spans: list[dict] = []
        clock = start + rng.randrange(1, 20) * MS
        usage_in = usage_out = 0
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.35:
                clock, used = self.tool_step(trace_id, root_id, clock, spans)
            else:
                clock, used = self.llm_step(trace_id, root_id, clock, spans)
            usage_in += used[0]
            usage_out += used[1]
            clock += rng.randrange(1, 50) * MS
        failed = any(s["status"].get("code") == 2 for s in spans) and rng.random() < 0.5
        root_attrs = {"agentmark.trace_name": "agent-turn"}
        if session:
            root_attrs.update(
                {
                    "agentmark.session_id": session["id"],
                    "agentmark.user_id": session["user"],
                    "agentmark.tags": session["tags"],
                    "agentmark.metadata.plan": session["plan"],
                }
            )
            if session["name"]:
                root_attrs["agentmark.session_name"] = session["name"]
        if usage_in and rng.random() < 0.5:  # agent frameworks repeat the total on the root
            root_attrs["gen_ai.usage.input_tokens"] = usage_in
            root_attrs["gen_ai.usage.output_tokens"] = usage_out
        root = self.span(trace_id, root_id, None, "invoke_agent", start, clock, root_attrs)
        if failed:
            root["status"] = {"code": 2, "message": "agent gave up"}
        service = session["service"] if session else "cron-jobs"
        return [(service, s) for s in (root, *spans)]

    def llm_step(self, trace_id, parent, clock, spans):
        rng = self.rng
        provider, model = rng.choice(MODELS)
        tokens_in, tokens_out = rng.randint(200, 6000), rng.randint(20, 900)
        took = rng.randint(300, 8000) * MS
        prompt = rng.choice(self.prompts)
        if rng.random() < 0.4:  # Vercel AI SDK: a wrapper repeating its doGenerate's usage
            wrapper_id, call_id = self.hex(16), self.hex(16)
            usage = {"ai.usage.promptTokens": tokens_in, "ai.usage.completionTokens": tokens_out}
            spans.append(
                self.span(
                    trace_id,
                    wrapper_id,
                    parent,
                    "ai.generateText",
                    clock,
                    clock + took + 2 * MS,
                    {"ai.model.id": model, **usage},
                )
            )
            call = self.span(
                trace_id,
                call_id,
                wrapper_id,
                "ai.generateText.doGenerate",
                clock + MS,
                clock + took + MS,
                {"ai.model.id": model, "ai.prompt.messages": prompt, **usage},
            )
        else:
            attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model,
                "gen_ai.response.model": model,
                "gen_ai.usage.input_tokens": tokens_in,
                "gen_ai.usage.output_tokens": tokens_out,
                "gen_ai.prompt": prompt,
            }
            if rng.random() < 0.3:  # some SDKs report the cost themselves
                attrs["agentmark.usage.cost_usd"] = round(tokens_in * 1.5e-7 + tokens_out * 6e-7, 8)
            call = self.span(
                trace_id, self.hex(16), parent, f"chat {model}", clock, clock + took, attrs
            )
        if rng.random() < 0.03:  # failed before reporting usage
            call["attributes"] = [a for a in call["attributes"] if "usage" not in a["key"]]
            call["status"] = {"code": 2, "message": "429 rate limited"}
            if spans and spans[-1]["name"] == "ai.generateText":
                spans[-1]["attributes"] = [
                    a for a in spans[-1]["attributes"] if "usage" not in a["key"]
                ]
            tokens_in = tokens_out = 0
        spans.append(call)
        return clock + took + 3 * MS, (tokens_in, tokens_out)

    def tool_step(self, trace_id, parent, clock, spans):
        rng = self.rng
        tool_id = self.hex(16)
        index = len(spans)
        end, used = clock + rng.randint(20, 2000) * MS, (0, 0)
        if rng.random() < 0.4:  # the tool asks a model itself
            end, used = self.llm_step(trace_id, tool_id, clock + 5 * MS, spans)
        tool = rng.choice(TOOLS)
        spans.insert(
            index,
            self.span(
                trace_id,
                tool_id,
                parent,
                f"execute_tool {tool}",
                clock,
                end + MS,
                {"gen_ai.tool.name": tool, "gen_ai.operation.name": "execute_tool"},
            ),
        )
        return end + MS, used

    @staticmethod
    def span(trace_id, span_id, parent, name, start, end, attrs) -> dict:
        out = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": name,
            "kind": 3 if "chat" in name or "doGenerate" in name else 1,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(end),
            "attributes": _attrs(attrs),
            "status": {"code": 0},
        }
        if parent:
            out["parentSpanId"] = parent
        return out

    # -- the export -----------------------------------------------------------------------------

    def spans(self, total: int):
        """(service, span) pairs in end-time order, as an exporter would see them finish."""
        now = START_NS
        active = []  # (next trace start, tiebreak, session)
        for i in range(self.concurrency):
            session = self.new_session(now)
            heapq.heappush(active, (session["next"], i, session))
        pending: list[tuple[int, int, str, dict]] = []  # (end, tiebreak, service, span)
        made = seq = 0
        while made < total:
            start, _, session = heapq.heappop(active)
            orphan = self.rng.random() < 0.05
            made_now = self.trace(None if orphan else session, start)
            for service, span in made_now:
                seq += 1
                heapq.heappush(pending, (int(span["endTimeUnixNano"]), seq, service, span))
            made += len(made_now)
            if not orphan:
                session["traces_left"] -= 1
            trace_end = max(int(s["endTimeUnixNano"]) for _, s in made_now)
            if session["traces_left"] > 0:
                idle = int(self.rng.expovariate(1 / 60_000)) + 500  # ms, mean about a minute
                session["next"] = trace_end + idle * MS
            else:
                session = self.new_session(start)
            seq += 1
            heapq.heappush(active, (session["next"], seq, session))
            # Every span ending before the next trace can start has been exported by now.
            horizon = active[0][0]
            while pending and pending[0][0] <= horizon:
                _, _, service, span = heapq.heappop(pending)
                yield service, span
        while pending:
            _, _, service, span = heapq.heappop(pending)
            yield service, span

    def lines(self, total: int, size: int = BATCH):
        batch: list[tuple[str, dict]] = []
        for item in self.spans(total):
            batch.append(item)
            if len(batch) == size:
                yield from self.emit(batch)
                batch = []
        if batch:
            yield from self.emit(batch)

    def emit(self, batch):
        by_service: dict[str, list[dict]] = {}
        for service, span in batch:
            by_service.setdefault(service, []).append(span)
        document = {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": _attrs(
                            {
                                "service.name": service,
                                "deployment.environment": "production",
                                "telemetry.sdk.language": "python",
                                "telemetry.sdk.name": "opentelemetry",
                            }
                        )
                    },
                    "scopeSpans": [{"scope": {"name": "agentmark"}, "spans": spans}],
                }
                for service, spans in by_service.items()
            ]
        }
        line = json.dumps(document, separators=(",", ":")) + "\n"
        yield line
        if self.rng.random() < 0.003:  # the exporter timed out and sent the batch again
            yield line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, required=True, help="how many spans (about)")
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=64, help="sessions at a time")
    parser.add_argument("--batch", type=int, default=BATCH, help="spans per exported line")
    args = parser.parse_args(argv)
    generator = Generator(args.seed, args.concurrency)
    out = args.output.open("w") if args.output else sys.stdout
    try:
        out.writelines(generator.lines(args.spans, args.batch))
    finally:
        if args.output:
            out.close()


if __name__ == "__main__":
    main()
