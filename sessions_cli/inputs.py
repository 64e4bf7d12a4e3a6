"""Paths, directories, globs and stdin -> one frame of normalised spans (contract §1).

Formats are detected from the bytes, never from the file name: gzip and zstd by their magic
numbers (layers are peeled until plain content shows), Parquet by `PAR1`, JSON by its first
character, anything else is tried as CSV. JSON lines are read in chunks of about `chunk_bytes`,
so memory follows the chunk and the normalised spans, not the size of the raw export.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl

from sessions_cli import flat, otlp
from sessions_cli.errors import InputError, UsageError
from sessions_cli.schema import compact, empty_spans

# Measured on 1M spans: 4 MB and 8 MB chunks decode equally fast; 4 MB holds less in flight.
CHUNK_BYTES = 4 * 1024 * 1024
_WORKERS = 2  # chunks decoded at once (this machine and CI have two cores)
_GZIP, _ZSTD, _PARQUET = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"PAR1"
_BOM = "\ufeff"
_SHOWN_LINES = 5  # line numbers named in a warning, per file


@dataclass(frozen=True)
class Source:
    label: str  # as the user will recognise it: the path, or "<stdin>"
    path: Path | None = None  # None: standard input


@dataclass
class Report:
    """What went wrong while reading, kept for one summary per file (never a warning per line)."""

    malformed: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)
    invalid_utf8: list[str] = field(default_factory=list)
    spans_without_ids: int = 0

    def bad_line(self, label: str, line: int, reason: str) -> None:
        self.malformed.setdefault(label, []).append((line, reason))

    @property
    def malformed_count(self) -> int:
        return sum(len(v) for v in self.malformed.values())

    def warnings(self) -> list[str]:
        out = []
        for label, bad in self.malformed.items():
            first = ", ".join(str(line) for line, _ in bad[:_SHOWN_LINES])
            more = ", ..." if len(bad) > _SHOWN_LINES else ""
            noun = "line" if len(bad) == 1 else "lines"
            out.append(
                f"{label}: skipped {len(bad)} malformed {noun} "
                f"(line {first}{more}; first: {bad[0][1]})"
            )
        out += [
            f"{label}: not a trace file (no OTLP JSON, span records or Parquet), skipped"
            for label in self.skipped_files
        ]
        out += [f"{label}: invalid UTF-8 replaced with U+FFFD" for label in self.invalid_utf8]
        if self.spans_without_ids:
            out.append(f"skipped {self.spans_without_ids} spans without a valid traceId/spanId")
        return out


# ---------------------------------------------------------------------------------------------
# Sources


def resolve(paths: tuple[str, ...], *, stdin_is_tty: bool, env: dict[str, str]) -> list[Source]:
    """Expand PATHS (files, directories, globs, "-") into readable sources, in a stable order."""
    if not paths:
        if not stdin_is_tty:
            return [Source("<stdin>")]
        fallback = env.get("SESSIONS_TRACES", "").strip()
        if not fallback:
            raise UsageError(
                "no input: pass trace files, directories or globs (or '-' for stdin), "
                "pipe data in, or set SESSIONS_TRACES"
            )
        paths = (fallback,)
    sources: list[Source] = []
    for raw in paths:
        if raw == "-":
            sources.append(Source("<stdin>"))
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            sources += [Source(str(p), p) for p in _walk(path)]
        elif path.exists():
            sources.append(Source(raw, path))
        elif glob.has_magic(raw):
            matches = sorted(glob.glob(os.path.expanduser(raw), recursive=True))
            if not matches:
                raise InputError(f"{raw}: no file matches this pattern")
            for match in matches:
                p = Path(match)
                sources += (
                    [Source(str(q), q) for q in _walk(p)] if p.is_dir() else [Source(match, p)]
                )
        else:
            raise InputError(f"{raw}: no such file or directory")
    return sources


def _walk(root: Path) -> list[Path]:
    """Every regular file below `root`, hidden ones excluded, in path order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return found


def total_bytes(sources: list[Source]) -> int | None:
    """Bytes the progress indicator counts towards: None when unknown (stdin, compression)."""
    if any(s.path is None for s in sources) or len(sources) > 1000:
        return None
    total = 0
    for source in sources:
        try:
            with source.path.open("rb") as f:
                if f.read(4).startswith((_GZIP, _ZSTD)):
                    return None  # progress counts decompressed bytes
            total += source.path.stat().st_size
        except OSError:
            return None
    return total


def write_spans(spans: pl.DataFrame, path: str, suffix: str) -> int:
    """Write spans as flat span records (contract §4 span columns); returns how many."""
    from sessions_cli.render import render
    from sessions_cli.schema import expand

    records = expand(spans)
    if suffix == ".parquet":
        records.write_parquet(path, compression="zstd", statistics=False)
    elif suffix in (".jsonl", ".csv"):
        text = render(records, suffix[1:])
        Path(path).write_text(text, encoding="utf-8")
    else:
        kind = suffix or "(none)"
        raise ValueError(f"unknown output type {kind!r}: use .parquet, .jsonl or .csv")
    return records.height


# ---------------------------------------------------------------------------------------------
# Reading


def read_spans(
    sources: list[Source],
    chains: dict[str, tuple[str, ...]],
    *,
    stdin: BinaryIO | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[pl.DataFrame, Report]:
    """All spans of all sources, de-duplicated by (trace_id, span_id): first seen wins.

    `progress` is called with the number of input bytes read so far, after each chunk.
    """
    report = Report()
    frames = []
    reader = _Reader(chains, report, chunk_bytes, progress)
    with reader:
        for source in sources:
            explicit = len(sources) == 1 or source.path is None
            frames += [compact(f) for f in _read_source(source, reader, stdin, explicit=explicit)]
    if strict and report.malformed:
        raise InputError("malformed input (--strict): " + "; ".join(report.warnings()))
    spans = pl.concat(frames) if frames else compact(empty_spans())
    valid = spans.filter(pl.col("trace_id").is_not_null() & pl.col("span_id").is_not_null())
    report.spans_without_ids = spans.height - valid.height
    return valid.unique(["trace_id", "span_id"], keep="first", maintain_order=True), report


class _Reader:
    """Decodes JSON-line chunks on a small thread pool, in order, one per worker in flight.

    Polars releases the GIL while it decodes, so two chunks decode on two cores at once; only a
    few chunks are ever held in memory, whatever the size of the input.
    """

    def __init__(self, chains, report: Report, chunk_bytes: int, progress) -> None:
        self.chains, self.report, self.chunk_bytes = chains, report, chunk_bytes
        self.progress = progress
        self.bytes_read = 0
        self.workers = max(1, min(_WORKERS, os.cpu_count() or 1))
        self.pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> _Reader:
        if self.workers > 1:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sessions-read")
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def lines(self, stream: BinaryIO, label: str) -> Iterator[pl.DataFrame]:
        in_flight: deque[Future] = deque()
        for first_line_no, chunk in _chunks(stream, self.chunk_bytes):
            args = (chunk, first_line_no, label, self.chains)
            if self.pool is None:
                yield self._merge(_parse_chunk(*args), len(chunk))
                continue
            in_flight.append((self.pool.submit(_parse_chunk, *args), len(chunk)))
            if len(in_flight) >= self.workers:
                future, size = in_flight.popleft()
                yield self._merge(future.result(), size)
        while in_flight:
            future, size = in_flight.popleft()
            yield self._merge(future.result(), size)

    def _merge(self, parsed: _Parsed, size: int) -> pl.DataFrame:
        for line_no, reason in parsed.bad_lines:
            self.report.bad_line(parsed.label, line_no, reason)
        if parsed.invalid_utf8 and parsed.label not in self.report.invalid_utf8:
            self.report.invalid_utf8.append(parsed.label)
        self.bytes_read += size
        if self.progress is not None:
            self.progress(self.bytes_read)
        return parsed.spans


def _read_source(source, reader: _Reader, stdin, *, explicit) -> Iterator[pl.DataFrame]:
    try:
        raw = (stdin or _stdin()) if source.path is None else source.path.open("rb")
    except OSError as exc:
        raise InputError(f"{source.label}: cannot read ({exc.strerror or exc})") from exc
    try:
        stream = _decompressed(raw, source.label)
        head = stream.peek(4)[:4]
        if not head.strip():
            head = stream.peek(4096).lstrip()[:4]
        if not head:
            return
        if head.startswith(_PARQUET):
            yield flat.read_parquet(stream.read(), source.label)
            return
        first = head.decode("utf-8", "replace").lstrip(_BOM)[:1]
        if first in "{[":
            yield from _read_json(stream, source.label, reader)
            return
        frame = flat.read_csv(stream.read(), source.label)
        if frame is None:
            if explicit:
                raise InputError(
                    f"{source.label}: not a trace file: expected OTLP JSON, span records "
                    "(JSONL, CSV, Parquet), optionally gzip or zstd compressed"
                )
            reader.report.skipped_files.append(source.label)
            return
        yield frame
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{source.label}: cannot read ({_describe(exc)})") from exc
    finally:
        if source.path is not None:
            raw.close()


def _stdin() -> BinaryIO:
    import sys

    return sys.stdin.buffer


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        return "compressed stream ends early: the file is truncated"
    return text


def _decompressed(raw: BinaryIO, label: str) -> io.BufferedReader:
    """Peel gzip/zstd layers, found by their magic numbers."""
    stream = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    for _ in range(4):  # a few nested layers at most
        head = stream.peek(4)[:4]
        if head.startswith(_GZIP):
            stream = io.BufferedReader(gzip.GzipFile(fileobj=stream))  # type: ignore[arg-type]
        elif head.startswith(_ZSTD):
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
            stream = io.BufferedReader(reader)  # type: ignore[arg-type]
        else:
            return stream
    raise InputError(f"{label}: too many layers of compression")


def _read_json(stream, label, reader: _Reader) -> Iterator[pl.DataFrame]:
    chains, report = reader.chains, reader.report
    # peek() returns only what the buffer holds (often 8 KB, less than one batch line), so
    # read a first block and put it back in front of the stream.
    block = stream.read(reader.chunk_bytes)
    mode = _json_mode(block)
    if mode == "document":
        data = block + stream.read()
        text = _decode(data, label, report)
        try:
            value = json.loads(text.lstrip(_BOM))
        except ValueError:
            mode = "lines"  # not one document: report it line by line
            stream = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
        else:
            yield _documents_frame(value, label, chains, report)
            return
    else:
        stream = _Prefixed(block, stream)
    if mode == "flat":
        yield flat.read_jsonl(_decode(stream.read(), label, report), label, report)
        return
    yield from reader.lines(stream, label)


class _Prefixed(io.RawIOBase):
    """A block already read, then the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size is None or size < 0:
                out, self.head = self.head + self.rest.read(), b""
                return out
            out, self.head = self.head[:size], self.head[size:]
            return out
        return self.rest.read(size)


def _json_mode(block: bytes) -> str:
    """ "lines" of OTLP, "flat" span records, or one pretty-printed "document".

    JSON lines: one of the first lines is a JSON value on its own (the first may be the
    malformed one). A block without a line break is one long line.
    """
    lines = block.split(b"\n", 4)
    if len(lines) == 1:
        return "lines"
    for line in lines[:-1]:  # the last piece may be cut by the block's end
        try:
            value = json.loads(line.decode("utf-8", "replace").lstrip(_BOM))
        except ValueError:
            continue
        if not isinstance(value, (dict, list)):
            continue  # a bare number or string: a line inside a pretty-printed document
        if (
            isinstance(value, dict)
            and "resourceSpans" not in value
            and ("trace_id" in value or "span_id" in value)
        ):
            return "flat"
        return "lines"
    return "document"


def _chunks(stream: BinaryIO, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    """Blocks of whole lines, with the number of each block's first line."""
    line_no, rest = 1, b""
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            break
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:  # a line longer than one chunk: keep reading
            rest = block
            continue
        yield line_no, block[:cut]
        line_no += block.count(b"\n", 0, cut)
        rest = block[cut:]
    if rest:
        yield line_no, rest  # an unterminated last line (a file still being written)


def _decode(data: bytes, label: str, report: Report) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        if label not in report.invalid_utf8:
            report.invalid_utf8.append(label)
        return data.decode("utf-8", "replace")


@dataclass
class _Parsed:
    """What a worker made of one chunk; the report is merged on the main thread."""

    label: str
    spans: pl.DataFrame
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    invalid_utf8: bool = False


def _parse_chunk(chunk: bytes, first_line_no: int, label: str, chains) -> _Parsed:
    """One block of whole lines -> normalised spans, and the lines that were malformed."""
    try:
        text, invalid = chunk.decode("utf-8"), False
    except UnicodeDecodeError:
        text, invalid = chunk.decode("utf-8", "replace"), True
    if first_line_no == 1:
        text = text.lstrip(_BOM)
    parsed = _Parsed(label, empty_spans(), invalid_utf8=invalid)
    # Split in polars: no Python string per line.
    lines = pl.Series("line", [text], dtype=pl.String).str.split("\n").explode()
    lines = lines.filter(lines.str.strip_chars() != "")
    if lines.is_empty():
        return parsed
    try:
        parsed.spans = compact(otlp.spans_from_lines(lines, chains))
        return parsed
    except pl.exceptions.PolarsError:
        pass
    # Slow path: find the bad lines, reshape the good ones (see otlp.py).
    good: list[str] = []
    for offset, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        try:
            docs = otlp.canonical_documents(json.loads(line))
        except ValueError as exc:
            parsed.bad_lines.append((first_line_no + offset, _reason(exc, line)))
            continue
        good += [json.dumps(doc, ensure_ascii=False) for doc in docs]
    if good:
        lines = pl.Series("line", good, dtype=pl.String)
        parsed.spans = compact(otlp.spans_from_lines(lines, chains))
    return parsed


def _documents_frame(value, label, chains, report) -> pl.DataFrame:
    try:
        docs = otlp.canonical_documents(value)
    except otlp.Malformed as exc:
        report.bad_line(label, 1, str(exc))
        return empty_spans()
    lines = pl.Series("line", [json.dumps(d, ensure_ascii=False) for d in docs], dtype=pl.String)
    return otlp.spans_from_lines(lines, chains) if len(lines) else empty_spans()


def _reason(exc: ValueError, line: str) -> str:
    if isinstance(exc, otlp.Malformed):
        return str(exc)
    if isinstance(exc, json.JSONDecodeError):
        if exc.pos >= len(line.rstrip()) or exc.msg.startswith("Unterminated"):
            return "invalid JSON: the line ends early (truncated?)"
        return f"invalid JSON ({exc.msg} at column {exc.colno})"
    return f"invalid JSON ({exc})"
