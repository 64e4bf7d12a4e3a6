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
import re
from collections import Counter, deque
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
MAX_LINE_BYTES = 256 * 1024 * 1024  # a longer line is skipped, not held in memory
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
    """What went wrong while reading, kept for one summary per file (never a warning per line).

    `failures()` is what --strict turns into an error: input skipped, cut short or ignored.
    `notices()` are conflicts the contract resolves; they stay warnings even with --strict.
    """

    malformed: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)
    invalid_utf8: list[str] = field(default_factory=list)
    surrogates: list[str] = field(default_factory=list)
    truncated: dict[str, str] = field(default_factory=dict)  # label -> what happened
    problems: dict[str, Counter] = field(default_factory=dict)  # label -> otlp.PROBLEMS kinds
    spans_without_ids: int = 0
    conflicting_duplicates: int = 0

    def bad_line(self, label: str, line: int, reason: str) -> None:
        self.malformed.setdefault(label, []).append((line, reason))

    def add_problems(self, label: str, found: Counter) -> None:
        if any(found.values()):
            self.problems.setdefault(label, Counter()).update(found)

    @property
    def malformed_count(self) -> int:
        return sum(len(v) for v in self.malformed.values())

    def failures(self) -> list[str]:
        out = []
        for label, bad in self.malformed.items():
            bad = sorted(bad)
            first = ", ".join(str(line) for line, _ in bad[:_SHOWN_LINES])
            more = ", ..." if len(bad) > _SHOWN_LINES else ""
            noun = "line" if len(bad) == 1 else "lines"
            out.append(
                f"{label}: skipped {len(bad)} malformed {noun} "
                f"(line {first}{more}; first: {bad[0][1]})"
            )
        out += [f"{label}: {what}" for label, what in self.truncated.items()]
        out += [
            f"{label}: not a trace file (no OTLP JSON, span records or Parquet), skipped"
            for label in self.skipped_files
        ]
        out += [f"{label}: invalid UTF-8 replaced with U+FFFD" for label in self.invalid_utf8]
        out += [
            f"{label}: lone UTF-16 surrogate escapes replaced with U+FFFD"
            for label in self.surrogates
        ]
        for label, found in self.problems.items():
            out += [
                f"{label}: {otlp.describe(kind, n)}"
                for kind, n in found.items()
                if n and kind in _FAILURES
            ]
        if self.spans_without_ids:
            n = self.spans_without_ids
            noun = "span" if n == 1 else "spans"
            out.append(f"skipped {n:,} {noun} without a valid traceId/spanId")
        return out

    def notices(self) -> list[str]:
        out = []
        for label, found in self.problems.items():
            out += [
                f"{label}: {otlp.describe(kind, n)}"
                for kind, n in found.items()
                if n and kind not in _FAILURES
            ]
        if self.conflicting_duplicates:
            n = self.conflicting_duplicates
            what = "span was" if n == 1 else "spans were"
            out.append(
                f"{n:,} {what} read more than once with different content; the first read was "
                "kept (files are read in path order)"
            )
        return out

    def warnings(self) -> list[str]:
        return self.failures() + self.notices()


_FAILURES = ("nested_text", "bad_usage", "bad_time")  # the rest of otlp.PROBLEMS are notices


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
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[pl.DataFrame, Report]:
    """All spans of all sources, de-duplicated by (trace_id, span_id): first seen wins.

    `progress` is called with the number of input bytes read so far, after each chunk.
    """
    report = Report()
    frames = []
    reader = _Reader(chains, report, chunk_bytes, progress, max_line_bytes)
    with reader:
        for source in sources:
            explicit = len(sources) == 1 or source.path is None
            frames += [compact(f) for f in _read_source(source, reader, stdin, explicit=explicit)]
    spans = pl.concat(frames) if frames else compact(empty_spans())
    valid = spans.filter(pl.col("trace_id").is_not_null() & pl.col("span_id").is_not_null())
    report.spans_without_ids = spans.height - valid.height
    if strict and report.failures():
        raise InputError("input not read in full (--strict): " + "; ".join(report.failures()))
    deduped = valid.unique(["trace_id", "span_id"], keep="first", maintain_order=True)
    if deduped.height < valid.height:  # re-sent spans: were any of them different?
        key = pl.struct("trace_id", "span_id")
        report.conflicting_duplicates = _conflicts(valid.filter(key.is_duplicated()))
    return deduped, report


def _conflicts(duplicated: pl.DataFrame) -> int:
    """How many spans were read more than once with different content."""
    content = [c for c in duplicated.columns if c not in ("trace_id", "span_id")]
    return (
        duplicated.with_columns(pl.struct(content).hash().alias("_content"))
        .group_by("trace_id", "span_id")
        .agg(pl.col("_content").n_unique())
        .filter(pl.col("_content") > 1)
        .height
    )


class _Reader:
    """Decodes JSON-line chunks on a small thread pool, in order, one per worker in flight.

    Polars releases the GIL while it decodes, so two chunks decode on two cores at once; only a
    few chunks are ever held in memory, whatever the size of the input.
    """

    def __init__(self, chains, report: Report, chunk_bytes: int, progress, max_line_bytes) -> None:
        self.chains, self.report, self.chunk_bytes = chains, report, chunk_bytes
        self.max_line_bytes = max_line_bytes
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
        report, limit = self.report, self.max_line_bytes

        def long_line(number: int) -> None:
            report.bad_line(label, number, f"longer than {limit / 2**20:g} MB: skipped")

        def cut_short(reason: str, lines: int) -> None:
            report.truncated[label] = f"{reason}; read up to line {lines:,}, the rest is lost"

        in_flight: deque[Future] = deque()
        chunks = _chunks(
            stream,
            self.chunk_bytes,
            max_line_bytes=limit,
            on_long_line=long_line,
            on_cut_short=cut_short,
        )
        for first_line_no, chunk in chunks:
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
        if parsed.surrogates and parsed.label not in self.report.surrogates:
            self.report.surrogates.append(parsed.label)
        self.report.add_problems(parsed.label, parsed.problems)
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
    block, error = read_block(stream, reader.chunk_bytes)
    if error is not None:  # the stream ends within the first block: _chunks reports it
        stream = _Failing(error)
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


class _Failing(io.RawIOBase):
    """The rest of a stream that already failed: raises its error again when read."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise self.error


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


def _chunks(
    stream: BinaryIO,
    chunk_bytes: int,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    on_long_line=None,
    on_cut_short=None,
) -> Iterator[tuple[int, bytes]]:
    """Blocks of whole lines, with the number of each block's first line.

    A line longer than `max_line_bytes` is skipped without being held (`on_long_line(number)`),
    so memory stays bounded whatever the input. A compressed stream that ends early or turns
    corrupt ends the file there (`on_cut_short(reason, lines_read)`): what came before counts.
    """
    line_no, rest, skipping = 1, b"", False
    while True:
        block, error = read_block(stream, chunk_bytes)
        if error is not None and on_cut_short is not None:
            on_cut_short(_describe(error), line_no + (rest + block).count(b"\n"))
        if not block:
            break
        if skipping:  # inside an over-long line: drop bytes up to its end
            end = block.find(b"\n")
            if end < 0:
                continue
            block, skipping, line_no = block[end + 1 :], False, line_no + 1
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:  # no line ends in this block: keep reading, up to the limit
            if len(block) > max_line_bytes:
                if on_long_line is not None:
                    on_long_line(line_no)
                rest, skipping = b"", True
            else:
                rest = block
            continue
        yield line_no, block[:cut]
        line_no += block.count(b"\n", 0, cut)
        rest = block[cut:]
        if error is not None:
            break
    if rest and not skipping:
        yield line_no, rest  # an unterminated last line (a file still being written)


def read_block(stream: BinaryIO, size: int) -> tuple[bytes, BaseException | None]:
    """Up to `size` bytes, and the error that ended the stream early, if one did. Read in
    steps, so that a compressed stream cut short still gives all it decompressed."""
    parts, total = [], 0
    read = getattr(stream, "read1", stream.read)  # one underlying read at a time
    while total < size:
        try:
            part = read(min(_STEP, size - total))
        except _STREAM_ERRORS as exc:
            return b"".join(parts), exc
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts), None


_STEP = 1024 * 1024


def _stream_errors() -> tuple[type[BaseException], ...]:
    import zlib

    errors: list[type[BaseException]] = [EOFError, OSError, zlib.error]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    return tuple(errors)


_STREAM_ERRORS = _stream_errors()


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
    surrogates: bool = False
    problems: Counter = field(default_factory=Counter)


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
        parsed.spans = compact(otlp.spans_from_lines(lines, chains, parsed.problems))
        return parsed
    except (pl.exceptions.PolarsError, otlp.SuspectText):
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
        good += [_dumps(doc, parsed) for doc in docs]
    if good:
        lines = pl.Series("line", good, dtype=pl.String)
        parsed.problems.clear()  # the fast path may have counted before it failed
        spans = otlp.spans_from_lines(lines, chains, parsed.problems, trust_nul=True)
        parsed.spans = compact(spans)
    return parsed


_SURROGATE = re.compile("[\ud800-\udfff]")


def _dumps(doc, parsed: _Parsed) -> str:
    """A document as JSON text for the fast path. JSON may escape lone UTF-16 surrogates
    (`"\\ud800"`), which no UTF-8 output can carry: they become U+FFFD, and are reported."""
    text = json.dumps(doc, ensure_ascii=False)
    if _SURROGATE.search(text):
        parsed.surrogates = True
        text = _SURROGATE.sub("\ufffd", text)
    return text


def _documents_frame(value, label, chains, report) -> pl.DataFrame:
    try:
        docs = otlp.canonical_documents(value)
    except otlp.Malformed as exc:
        report.bad_line(label, 1, str(exc))
        return empty_spans()
    parsed = _Parsed(label, empty_spans())
    lines = pl.Series("line", [_dumps(d, parsed) for d in docs], dtype=pl.String)
    if parsed.surrogates and label not in report.surrogates:
        report.surrogates.append(label)
    if not len(lines):
        return empty_spans()
    problems: Counter = Counter()
    spans = otlp.spans_from_lines(lines, chains, problems, trust_nul=True)
    report.add_problems(label, problems)
    return spans


def _reason(exc: ValueError, line: str) -> str:
    if isinstance(exc, otlp.Malformed):
        return str(exc)
    if isinstance(exc, json.JSONDecodeError):
        if exc.pos >= len(line.rstrip()) or exc.msg.startswith("Unterminated"):
            return "invalid JSON: the line ends early (truncated?)"
        return f"invalid JSON ({exc.msg} at column {exc.colno})"
    return f"invalid JSON ({exc})"
