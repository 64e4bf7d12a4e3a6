"""Benchmark `sessions` against DuckDB on generated OTLP exports; a Markdown report, printed
and recorded (stamped with date, commit, cores and versions) in benchmarks/RESULTS.md.

    python benchmarks/run.py                      # 100k and 1M spans, 3 alternating runs
    python benchmarks/run.py --sizes 100000 --repeat 1

Every command runs as its own process; wall time and peak memory (the child's max RSS, from
wait4) are measured per run, and the median is reported. `sessions list` and the DuckDB query
run alternately, so that both see the same machine. Files are generated once into
benchmarks/data/ (about 1.5 KB a span). Needs the `bench` extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
SESSIONS = str(Path(sys.executable).with_name("sessions"))
RESULTS = HERE / "RESULTS.md"
# Runs are recorded under this heading of RESULTS.md, newest first.
RUNS = "# Runs recorded by benchmarks/run.py"


class Run(NamedTuple):
    wall: float  # seconds
    peak_mb: float  # the child's own peak RSS, from wait4
    out: bytes  # its stdout, when kept
    cpu: float  # user + system seconds


def measure(
    args: list[str],
    stdout=subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Run:
    """One run of `args` as a child process."""
    with tempfile.TemporaryFile() as err_file, tempfile.TemporaryFile() as out_file:
        started = time.perf_counter()
        process = subprocess.Popen(
            args,
            stdout=out_file if stdout is None else stdout,
            stderr=err_file,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        out_file.seek(0)
        err, out = err_file.read(), out_file.read()
    if process.returncode not in (0, 3):
        raise SystemExit(f"failed ({process.returncode}): {' '.join(args)}\n{err.decode()}")
    return Run(wall, usage.ru_maxrss / 1024, out, usage.ru_utime + usage.ru_stime)


FULL_BATCH = 512  # spans per line of a busy exporter (OTel's BatchSpanProcessor maximum)


def generated(spans: int, data: Path, batch: int = FULL_BATCH) -> Path:
    path = data / (f"otlp-{spans}.jsonl" if batch == FULL_BATCH else f"otlp-{spans}-b{batch}.jsonl")
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, str(HERE / "generate.py"), "--spans", str(spans), "-o", str(path),
             "--batch", str(batch)],
            check=True,
        )  # fmt: skip
    return path


def median_of(runs: list[Run]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def bench_size(spans: int, data: Path, repeat: int, duckdb: bool) -> list[tuple]:
    path = generated(spans, data)
    rows, listed = list_vs_duckdb(path, spans, repeat, duckdb)
    size_mb = path.stat().st_size / 1e6
    wall = statistics.median(r[0] for r in listed)
    busiest = max(json.loads(listed[0][2]), key=lambda s: s["span_count"])["session_id"]
    for name, args in [
        ("sessions show", ["show", busiest, str(path), "--json"]),
        ("sessions timeline --spans", ["timeline", busiest, str(path), "--spans", "--json"]),
        ("sessions stats --by model", ["stats", str(path), "--by", "model", "--json"]),
    ]:
        rows.append((spans, size_mb, name, *runs([SESSIONS, *args], repeat)))
    parquet = data / f"spans-{spans}.parquet"
    convert = [SESSIONS, "convert", str(path), "-o", str(parquet)]
    rows.append((spans, size_mb, "sessions convert -o .parquet", *runs(convert, 1)))
    p_wall, p_peak = runs([SESSIONS, "list", str(parquet), "--json"], repeat)
    rows.append((spans, parquet.stat().st_size / 1e6, "sessions list (converted .parquet)",
                 p_wall, p_peak))  # fmt: skip
    rows.append((spans, size_mb, f"parquet vs json: whole command {wall / p_wall:.1f}x faster",
                 None, None))  # fmt: skip
    rows.append(reading_alone(path, parquet, spans, size_mb, repeat))
    rows += protobuf_rows(path, data, spans, repeat)
    return rows


def protobuf_rows(path: Path, data: Path, spans: int, repeat: int) -> list:
    """The same spans as the Collector's framed protobuf: `sessions list` on it, run
    alternately with `list` on the JSON lines (so both see the same machine), its time per
    span against theirs, and whether the two outputs agree."""
    framed = data / f"otlp-{spans}.binpb"
    if not framed.exists():
        print(f"writing {framed} ...", file=sys.stderr)
        write_framed_protobuf(path, framed)
    protobuf, lines = [], []
    for _ in range(repeat):
        protobuf.append(measure([SESSIONS, "list", str(framed), "--json"], stdout=None))
        lines.append(measure([SESSIONS, "list", str(path), "--json"], stdout=None))
    (wall, peak), (json_wall, _) = median_of(protobuf), median_of(lines)
    same = all(run[2] == lines[0][2] for run in protobuf + lines)
    ratio = (f"{wall / json_wall:.2f}x the time per span" if wall >= json_wall
             else f"{json_wall / wall:.2f}x faster per span")  # fmt: skip
    return [(spans, framed.stat().st_size / 1e6, "sessions list (framed protobuf)", wall, peak),
            (spans, None, f"protobuf vs json, alternating (json {json_wall:.2f} s): {ratio}, "
             f"output {'identical' if same else 'DIFFERS'}", None, None)]  # fmt: skip


def write_framed_protobuf(path: Path, out: Path) -> None:
    """Each JSON line as an ExportTraceServiceRequest, length-framed as the Collector's `file`
    exporter writes it (OTLP JSON ids are hex; protobuf's JSON mapping wants base64)."""
    import base64

    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    with path.open() as lines, out.open("wb") as framed:
        for line in lines:
            doc = json.loads(line)
            for resource in doc["resourceSpans"]:
                for scope in resource.get("scopeSpans", []):
                    for span in scope["spans"]:
                        for key in ("traceId", "spanId", "parentSpanId"):
                            if span.get(key):
                                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
            message = json_format.ParseDict(doc, ExportTraceServiceRequest(),
                                            ignore_unknown_fields=True)  # fmt: skip
            body = message.SerializeToString()
            framed.write(len(body).to_bytes(4, "big") + body)


def reading_alone(path: Path, parquet: Path, spans: int, size_mb: float, repeat: int) -> tuple:
    """The JSON and its converted Parquet read to deduplicated groups, without the model
    (read_only.py), alternately: the row of their medians and ratio."""
    seconds: dict[Path, list[float]] = {path: [], parquet: []}
    for _ in range(repeat):
        for source in (path, parquet):
            out = measure([sys.executable, str(HERE / "read_only.py"), str(source)], stdout=None)
            seconds[source].append(float(out[2].split()[0]))
    json_read, parquet_read = (statistics.median(seconds[p]) for p in (path, parquet))
    text = (f"reading alone (to deduplicated spans, no model): json {json_read:.3f} s, "
            f"parquet {parquet_read:.3f} s = {json_read / parquet_read:.1f}x")  # fmt: skip
    return (spans, size_mb, text, None, None)


def list_vs_duckdb(
    path: Path, spans: int, repeat: int, duckdb: bool, shape: str = ""
) -> tuple[list, list]:
    """`sessions list` and the DuckDB queries (the full contract, and the plain one), run
    alternately: rows of their medians and ratios, and the `list` runs themselves."""
    rows = []
    size_mb = path.stat().st_size / 1e6
    listed, duck, plain, fallback = [], [], [], []
    for _ in range(repeat):  # alternate, so all see the same machine state
        listed.append(measure([SESSIONS, "list", str(path), "--json"], stdout=None))
        if native_built():
            fallback.append(measure([SESSIONS, "list", str(path), "--json"], stdout=None,
                                    env={"SESSIONS_NATIVE": "0"}))  # fmt: skip
        if duckdb:
            query = [sys.executable, str(HERE / "duckdb_sessions.py"), str(path)]
            duck.append(measure(query, stdout=None))
            plain.append(measure([*query, "--plain"], stdout=None))
    sessions_json = json.loads(listed[0][2])
    wall, peak = median_of(listed)
    rows.append((spans, size_mb, f"sessions list{shape}", wall, peak))
    if fallback:
        f_wall, f_peak = median_of(fallback)
        same = all(run[2] == listed[0][2] for run in fallback)
        rows.append((spans, size_mb, f"sessions list, SESSIONS_NATIVE=0{shape} (output "
                     f"{'identical' if same else 'DIFFERS'})", f_wall, f_peak))  # fmt: skip
    if duckdb:
        d_wall, d_peak = median_of(duck)
        rows.append((spans, size_mb, f"duckdb (same aggregate){shape}", d_wall, d_peak))
        found = duck[0][2].decode().split()
        agree = int(found[0]) == len(sessions_json) and int(found[2]) == sum(
            s["span_count"] for s in sessions_json
        )
        faster = (f"sessions {d_wall / wall:.2f}x faster" if d_wall >= wall
                  else f"DUCKDB {wall / d_wall:.2f}x FASTER")  # fmt: skip
        rows.append((spans, size_mb, f"list vs duckdb{shape}: {faster}, "
                     f"results {'agree' if agree else 'DIFFER'}", None, None))  # fmt: skip
        p_wall, p_peak = median_of(plain)
        rows.append((spans, size_mb, f"duckdb plain query (no dedupe, no usage walk){shape}",
                     p_wall, p_peak))  # fmt: skip
        rows.append((spans, size_mb, f"list / plain duckdb{shape}: {wall / p_wall:.2f} "
                     f"(target: at most 0.5)", None, None))  # fmt: skip
        rows.append(decoding_floor(path, spans, repeat, p_wall, shape))
    return rows, listed


def decoding_floor(path: Path, spans: int, repeat: int, plain_wall: float, shape: str) -> tuple:
    """What no command can beat on this file on the active path: a whole process that reads it
    and only decodes its JSON (read_only.py --decode-only: the native extractor, or polars'
    decoder with SESSIONS_NATIVE=0), against the budget of half the plain DuckDB query."""
    floor, _ = runs([sys.executable, str(HERE / "read_only.py"), str(path), "--decode-only"],
                    repeat)  # fmt: skip
    text = (
        f"floor{shape}: a process that only reads and decodes the JSON takes {floor:.2f} s; "
        f"half the plain DuckDB query is {plain_wall / 2:.2f} s for everything"
    )
    return (spans, path.stat().st_size / 1e6, text, None, None)


def hostile_rows(data: Path, repeat: int) -> list[tuple]:
    """Time and peak memory on the shapes of issue 19 (benchmarks/hostile.py): each must stay
    within seconds and under 1 GiB, with the native reader and without it."""
    import hostile

    rows = []
    shapes = [
        ("one 195 MB line", hostile.long_line(data), 135_000, ["list"]),
        ("1M spans in one trace", hostile.one_trace(data), 1_000_000, ["list"]),
        ("1M spans in one trace", hostile.one_trace(data), 1_000_000,
         ["timeline", "one-big", "--spans", "--json"]),
        ("1M spans in one trace", hostile.one_trace(data), 1_000_000,
         ["timeline", "one-big", "--spans"]),
        ("a 100,000-deep parent chain", hostile.chain(data), 100_000, ["list"]),
        ("a 100,000-deep parent chain", hostile.chain(data), 100_000,
         ["timeline", "deep", "--spans"]),
        ("1M sessions of one span", hostile.many_sessions(data), 1_000_000, ["list"]),
        ("1M sessions of one span", hostile.many_sessions(data), 1_000_000, ["list", "--jsonl"]),
    ]  # fmt: skip
    readers = [("", {})] + ([(", SESSIONS_NATIVE=0", {"SESSIONS_NATIVE": "0"})]
                            if native_built() else [])  # fmt: skip
    for what, path, spans, args in shapes:
        size_mb = path.stat().st_size / 1e6
        for label, env in readers:
            measured = [measure([SESSIONS, args[0], *args[1:], str(path)], env=env)
                        for _ in range(repeat)]  # fmt: skip
            wall, peak = median_of(measured)
            rows.append((spans, size_mb, f"{what}: sessions {' '.join(args)}{label}", wall, peak))
    return rows


def native_built() -> bool:
    """Whether `sessions` reads JSON natively here (its --version says)."""
    done = subprocess.run([SESSIONS, "--version"], capture_output=True, text=True, check=True)
    return "JSON reader: native" in done.stdout


def runs(args: list[str], times: int) -> tuple[float, float]:
    return median_of([measure(args) for _ in range(times)])


def startup(data: Path, repeat: int) -> list[tuple]:
    small = generated(50, data)
    return [
        (0, 0, "sessions --help", *runs([SESSIONS, "--help"], repeat * 3)),
        (50, small.stat().st_size / 1e6, "sessions list (50 spans)",
         *runs([SESSIONS, "list", str(small)], repeat * 3)),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="span counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB comparison")
    parser.add_argument(
        "--small-batches", type=int, default=16, metavar="N",
        help="also race list against DuckDB on files of N-span lines, as a quieter app's "
        "exporter sends them (0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--no-write", dest="write", action="store_false",
        help="print the report only; by default it is also recorded in benchmarks/RESULTS.md",
    )  # fmt: skip
    parser.add_argument(
        "--hostile", action="store_true",
        help="also the shapes that once broke the time or memory bound (benchmarks/hostile.py)",
    )  # fmt: skip
    args = parser.parse_args()
    rows = startup(args.data, args.repeat)
    for spans in (int(s) for s in args.sizes.split(",") if s):
        rows += bench_size(spans, args.data, args.repeat, duckdb=not args.no_duckdb)
        if args.small_batches:
            path = generated(spans, args.data, args.small_batches)
            shape = f" ({args.small_batches}-span lines)"
            rows += list_vs_duckdb(path, spans, args.repeat, not args.no_duckdb, shape)[0]
    if args.hostile:
        rows += hostile_rows(args.data, args.repeat)
    report = "\n".join([stamp(args), "", *table(rows)]) + "\n"
    print(report, end="")
    if args.write:
        record(report, RESULTS)
        print(f"recorded in {RESULTS.relative_to(HERE.parent)}", file=sys.stderr)


def table(rows: list[tuple]) -> list[str]:
    lines = [
        "| spans | input MB | command | wall s (median) | peak MB |",
        "|---:|---:|---|---:|---:|",
    ]
    for spans, size, name, wall, peak in rows:
        if wall is None:
            lines.append(f"| {spans:,} | | **{name}** | | |")
        else:
            lines.append(f"| {spans:,} | {size:,.1f} | {name} | {wall:.2f} | {peak:,.0f} |")
    return lines


def stamp(args: argparse.Namespace) -> str:
    """The heading of one run: when, on which commit, machine and versions, and how."""
    from importlib.metadata import PackageNotFoundError, version

    def package(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"{name} (not installed)"

    def git(*words: str) -> str:
        done = subprocess.run(["git", *words], cwd=HERE, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    versions = ", ".join(package(n) for n in ("sessions-cli", "polars", "duckdb", "genai-prices"))
    reader = subprocess.run([SESSIONS, "--version"], capture_output=True, text=True).stdout
    # The readers: what follows the price table, without the outer parenthesis.
    versions += "; " + "; ".join(reader.strip().removesuffix(")").split("; ")[1:])
    sizes = args.sizes or "''"
    return (
        f"## {when}, commit {commit}\n\n"
        f"{os.cpu_count()} cores ({cpu_model()}), Python {sys.version.split()[0]}, {versions}; "
        f"`benchmarks/run.py --sizes {sizes} --repeat {args.repeat}"
        f"{' --no-duckdb' if args.no_duckdb else ''} --small-batches {args.small_batches}"
        f"{' --hostile' if args.hostile else ''}`"
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU model unknown"


def record(report: str, results: Path) -> None:
    """Put `report` first under the runs heading of `results` (newest first), atomically."""
    text = results.read_text(encoding="utf-8") if results.exists() else ""
    if RUNS not in text:
        text = text.rstrip("\n") + ("\n\n" if text else "") + RUNS + "\n"
    head, _, older = text.partition(RUNS + "\n")
    updated = head + RUNS + "\n\n" + report.rstrip("\n") + "\n" + (older if older.strip() else "")
    temporary = results.with_name(f".{results.name}.tmp")
    temporary.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")
    os.replace(temporary, results)


if __name__ == "__main__":
    main()
