"""Input shapes that once broke the time or memory bound (issue 19), generated, for run.py's
`--hostile` rows: one OTLP line of about 200 MB, one trace of 1M spans, a parent chain
100,000 spans deep, 1M sessions of one span each. Each is written once into the data folder.

    python benchmarks/hostile.py DATA_DIR   # write the files only
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
_T0 = 1_790_000_000_000_000_000
_LINE = 512  # spans per line where the shape does not set it


def long_line(data: Path) -> Path:
    """135,000 spans on one line (about 195 MB): a batch no exporter should send."""
    path = data / "hostile-long-line.jsonl"
    if not path.exists():
        subprocess.run(
            [sys.executable, str(HERE / "generate.py"), "--spans", "135000", "--batch",
             "1000000", "-o", str(path)],
            check=True,
        )  # fmt: skip
    return path


def one_trace(data: Path, spans: int = 1_000_000) -> Path:
    """A root and `spans - 1` LLM calls under it, all in one trace and one session."""

    def span(i: int) -> dict:
        if i == 0:
            return _span(0, None, "agent", 0, spans * 1000, {"session.id": "one-big"})
        usage = {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 10,
                 "gen_ai.usage.output_tokens": 5}  # fmt: skip
        return _span(i, 0, "chat gpt-4o-mini", i * 1000, i * 1000 + 500, usage)

    return _written(data / f"hostile-one-trace-{spans}.jsonl", (span(i) for i in range(spans)))


def chain(data: Path, depth: int = 100_000) -> Path:
    """Each span the parent of the next, `depth` deep; usage on the leaf only."""

    def span(i: int) -> dict:
        attrs: dict = {"session.id": "deep"} if i == 0 else {}
        if i == depth - 1:
            attrs["gen_ai.usage.input_tokens"] = 3
        return _span(i, i - 1 if i else None, "step", i * 1000, (2 * depth - i) * 1000, attrs)

    return _written(data / f"hostile-chain-{depth}.jsonl", (span(i) for i in range(depth)))


def many_sessions(data: Path, sessions: int = 1_000_000) -> Path:
    """`sessions` sessions of one LLM call each: a session table of 1M rows."""

    def span(i: int) -> dict:
        attrs = {"session.id": f"s{i}", "gen_ai.request.model": "gpt-4o-mini",
                 "gen_ai.usage.input_tokens": 10}  # fmt: skip
        own_trace = {"traceId": f"{i + 1:032x}"}
        return {**_span(i, None, "chat", i * 1000, i * 1000 + 500, attrs), **own_trace}

    path = data / f"hostile-many-sessions-{sessions}.jsonl"
    return _written(path, (span(i) for i in range(sessions)))


def _span(i: int, parent: int | None, name: str, start_us: int, end_us: int, attrs) -> dict:
    out = {
        "traceId": "ab" * 16,
        "spanId": f"{i + 1:016x}",
        "name": name,
        "startTimeUnixNano": str(_T0 + start_us),
        "endTimeUnixNano": str(_T0 + end_us),
        "attributes": [
            {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
            for k, v in attrs.items()
        ],
        "status": {"code": 1},
    }
    if parent is not None:
        out["parentSpanId"] = f"{parent + 1:016x}"
    return out


def _written(path: Path, spans: Iterator[dict]) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as out:
        batch: list[dict] = []
        for span in spans:
            batch.append(span)
            if len(batch) == _LINE:
                out.write(_line(batch))
                batch = []
        if batch:
            out.write(_line(batch))
    temporary.replace(path)
    return path


def _line(spans: list[dict]) -> str:
    scope = {"scope": {"name": "hostile"}, "spans": spans}
    document = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [scope]}]}
    return json.dumps(document) + "\n"


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    for made in (long_line(folder), one_trace(folder), chain(folder), many_sessions(folder)):
        print(made)
