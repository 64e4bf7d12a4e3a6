"""Paths, directories, globs and stdin -> one frame of normalised spans (contract §1).

Formats are detected from the bytes, never from the file name: gzip and zstd by their magic
numbers (layers are peeled until plain content shows), Parquet by `PAR1`, JSON by its first
character, anything else is tried as CSV. JSON lines are read 4 MB at a time and decoded in
batches of about `chunk_bytes`, so memory follows the batches in flight and the normalised
spans, not the size of the raw export.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

import polars as pl

from sessions_cli.errors import InputError, UsageError
from sessions_cli.notices import Notice
from sessions_cli.read import console, flat, native, otlp, protobuf
from sessions_cli.read.schema import compact, empty_spans
from sessions_cli.tuning import Tuning

_READ_BYTES = 4 * 1024 * 1024  # one read: bigger fresh buffers cost page faults
_GZIP, _ZSTD, _PARQUET = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"PAR1"
_BOM = "\ufeff"


@dataclass(frozen=True)
class Source:
    label: str  # as the user will recognise it: the path, or "<stdin>"
    path: Path | None = None  # None: standard input
    # Named on the command line (or stdin): if it cannot be read as traces, that is an error.
    # Found in a directory or by a glob: such a file is skipped with a warning.
    named: bool = True


@dataclass
class Report:
    """What went wrong while reading, kept for one summary per file (never a warning per line).

    `failures()` is what --strict turns into an error: input skipped, cut short or ignored.
    `notices()` are conflicts the contract resolves; they stay warnings even with --strict.
    """

    malformed: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # (label, why)
    invalid_utf8: list[str] = field(default_factory=list)
    surrogates: list[str] = field(default_factory=list)
    truncated: dict[str, str] = field(default_factory=dict)  # label -> what happened
    unreadable: list[str] = field(default_factory=list)  # files of a directory, skipped
    problems: dict[str, Counter] = field(default_factory=dict)  # label -> otlp.PROBLEMS kinds
    spans_without_ids: int = 0
    conflicting_duplicates: int = 0

    def bad_line(self, label: str, line: int, reason: str) -> None:
        self.malformed.setdefault(label, []).append((line, reason))

    def add_problems(self, label: str, found: Counter) -> None:
        if any(found.values()):
            self.problems.setdefault(label, Counter()).update(found)

    def failures(self) -> list[Notice]:
        out = [
            Notice("malformed_lines", len(bad), label, min(bad)[1], _first_lines(bad))
            for label, bad in self.malformed.items()
        ]
        out += [
            Notice("cut_short", label=label, detail=what) for label, what in self.truncated.items()
        ]
        out += [Notice("unreadable", detail=what) for what in self.unreadable]
        out += [Notice("not_traces", label=label, detail=why) for label, why in self.skipped_files]
        out += [Notice("invalid_utf8", label=label) for label in self.invalid_utf8]
        out += [Notice("surrogates", label=label) for label in self.surrogates]
        out += self._problems(failures=True)
        if self.spans_without_ids:
            out.append(Notice("spans_without_ids", self.spans_without_ids))
        return out

    def notices(self) -> list[Notice]:
        out = self._problems(failures=False)
        if self.conflicting_duplicates:
            out.append(Notice("conflicting_duplicates", self.conflicting_duplicates))
        return out

    def warnings(self) -> list[Notice]:
        return self.failures() + self.notices()

    def _problems(self, *, failures: bool) -> list[Notice]:
        found = (
            Notice(kind, n, label)
            for label, counted in self.problems.items()
            for kind, n in counted.items()
            if n
        )
        return [notice for notice in found if notice.failure == failures]


def _first_lines(bad: list[tuple[int, str]]) -> tuple[int, ...]:
    return tuple(line for line, _ in sorted(bad)[:10])


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
        if not raw.strip():
            # A shell variable that is unset or empty ("$TRACES") must not read the current
            # directory and pass a CI check on whatever is there.
            raise UsageError("an empty PATH was given (is a shell variable unset?)")
        if raw == "-":
            sources.append(Source("<stdin>"))
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            sources += [Source(str(p), p, named=False) for p in _walk(path)]
        elif path.exists():
            sources.append(Source(raw, path))
        elif glob.has_magic(raw):
            matches = sorted(glob.glob(os.path.expanduser(raw), recursive=True))
            if not matches:
                raise InputError(f"{raw}: no file matches this pattern")
            for match in matches:
                p = Path(match)
                sources += (
                    [Source(str(q), q, named=False) for q in _walk(p)]
                    if p.is_dir()
                    else [Source(match, p, named=False)]
                )
        else:
            raise InputError(f"{raw}: no such file or directory")
    return sources


def _walk(root: Path) -> list[Path]:
    """Every regular file below `root`, hidden ones excluded, in path order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        # Regular files only: a FIFO or socket in a folder would block the run (named on the
        # command line, one is read as the stream it is).
        found += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.startswith(".") and (Path(dirpath) / f).is_file()
        ]
    return found


def total_bytes(sources: list[Source]) -> int | None:
    """Bytes the progress indicator counts towards: None when unknown (stdin, compression)."""
    if any(s.path is None for s in sources) or len(sources) > 1000:
        return None
    total = 0
    for source in sources:
        path = source.path
        assert path is not None  # checked above
        if not path.is_file():  # a FIFO or /dev/fd: opening it to look would eat its bytes
            return None
        try:
            with path.open("rb") as f:
                if f.read(4).startswith((_GZIP, _ZSTD)):
                    return None  # progress counts decompressed bytes
            total += path.stat().st_size
        except OSError:
            return None
    return total


# ---------------------------------------------------------------------------------------------
# Reading


class SpanSink(Protocol):
    """Where read spans go, in reading order: the store (`store.loading`)."""

    def add(self, frame: pl.DataFrame) -> None: ...


def read_into(
    sink: SpanSink,
    sources: list[Source],
    chains: dict[str, tuple[str, ...]],
    report: Report,
    *,
    tuning: Tuning,
    stdin: BinaryIO | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Every source's spans, normalised, handed to `sink` batch by batch; problems go to
    `report`."""
    with _Reader(chains, report, tuning, progress, sink) as reader:
        for source in sources:
            explicit = source.named
            try:
                _read_source(source, reader, stdin, explicit=explicit)
            except InputError as exc:
                if explicit:
                    raise
                report.unreadable.append(str(exc))  # one bad file does not end the run
        reader.finish()


class _Reader:
    """Collects every source's spans in reading order (first read wins when deduplicating).

    JSON lines are cut into pieces of whole lines; pieces, from one big file or from many small
    ones, are batched to about `chunk_bytes` and decoded on a small thread pool. Polars releases
    the GIL while it decodes, so two batches decode on two cores at once while the next is
    read: one batch per worker and one being read are in flight, whatever the size of the
    input. Batching small files matters: decoding has a fixed cost per call, so 10,000
    one-line files cost what one file does.
    """

    def __init__(self, chains, report: Report, tuning: Tuning, progress, store):
        self.chains, self.report, self.chunk_bytes = chains, report, tuning.chunk_bytes
        self.read_bytes = min(tuning.chunk_bytes, _READ_BYTES)
        self.store = store
        self.max_line_bytes = tuning.max_line_bytes
        self.polars_line_bytes = tuning.polars_line_bytes
        self.max_whole_bytes = tuning.max_whole_bytes
        self.progress = progress
        self.bytes_read = 0
        self.workers = tuning.read_workers
        self.protobuf_processes = tuning.protobuf_processes
        self.pool: ThreadPoolExecutor | None = None
        self.batch: list[_Piece] = []
        self.batch_bytes = 0
        # Protobuf request bodies, batched like JSON pieces. Walking them is Python (the GIL),
        # so batches past the first go to worker processes, started only for such an input.
        self.bodies: list[bytes] = []
        self.bodies_label = ""
        self.bodies_bytes = 0
        # Where each body of a framed file's batch starts; None for a batch of bare bodies.
        self.bodies_offsets: list[int] | None = None
        # Framed files a bad message ended: their later batches, decoded ahead, are dropped.
        self.cut_files: set[str] = set()
        self.processes: ProcessPoolExecutor | None = None
        self.protobuf_batches = 0
        self.queue: deque = deque()  # frames and pending batches, in reading order

    def __enter__(self) -> _Reader:
        if self.workers > 1:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sessions-read")
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.processes is not None:
            self.processes.shutdown(wait=True, cancel_futures=True)

    def add_frame(self, frame: pl.DataFrame) -> None:
        """Spans read whole (Parquet, CSV, a JSON document), in their place in the order."""
        self._submit()
        self._submit_bodies()
        self.queue.append(frame)
        self._drain(keep=self.workers)

    def add_lines(self, stream: BinaryIO, label: str) -> None:
        report, limit = self.report, self.max_line_bytes

        def long_line(number: int) -> None:
            report.bad_line(label, number, f"longer than {limit / 2**20:g} MB: skipped")

        def cut_short(reason: str, lines: int) -> None:
            report.truncated[label] = f"{reason}; read up to line {lines:,}, the rest is lost"

        pieces = _chunks(
            stream,
            self.read_bytes,
            max_line_bytes=limit,
            on_long_line=long_line,
            on_cut_short=cut_short,
        )
        self._submit_bodies()
        for first_line_no, data in pieces:
            self.batch.append(_Piece(label, first_line_no, data))
            self.batch_bytes += len(data)
            if self.batch_bytes >= self.chunk_bytes:
                self._submit()

    def add_body(self, body: bytes, label: str, offset: int | None = None) -> None:
        """One protobuf ExportTraceServiceRequest, in its place in the order. A bare body was
        checked to parse when it was read; a framed file's messages (`offset`: where each
        starts) are checked where they are decoded, off this thread, so their batches hold one
        file each: a bad message ends its file there, keeping what came before."""
        self._submit()
        framed = offset is not None
        if self.bodies and (framed != (self.bodies_offsets is not None) or (
            framed and label != self.bodies_label
        )):  # fmt: skip
            self._submit_bodies()
        if not self.bodies:
            self.bodies_label = label
            self.bodies_offsets = [] if framed else None
        elif label != self.bodies_label and not self.bodies_label.endswith("more files)"):
            self.bodies_label += " (and more files)"
        self.bodies.append(body)
        if self.bodies_offsets is not None:
            self.bodies_offsets.append(offset)  # type: ignore[arg-type]
        self.bodies_bytes += len(body)
        if self.bodies_bytes >= self.chunk_bytes:
            self._submit_bodies()

    def _submit_bodies(self) -> None:
        if not self.bodies:
            return
        bodies, size, label = self.bodies, self.bodies_bytes, self.bodies_label
        batch = (bodies, self.chains, label, self.bodies_offsets)
        self.bodies, self.bodies_bytes, self.bodies_offsets = [], 0, None
        self.protobuf_batches += 1
        if native.protobuf_active() and self.pool is not None:  # GIL released: threads do
            job = self.pool.submit(_parse_bodies, *batch)
            self.queue.append((job, size))
            self._drain(keep=self.workers)
            return
        if self.protobuf_batches == 2 and self.protobuf_processes > 1:  # a big input
            import multiprocessing

            # spawn, not fork: polars' thread pool does not survive a fork
            self.processes = ProcessPoolExecutor(
                self.protobuf_processes, mp_context=multiprocessing.get_context("spawn")
            )
        if self.processes is None:
            self.queue.append((_parse_bodies(*batch), size))
        else:
            job = self.processes.submit(_parse_bodies, *batch)
            self.queue.append((job, size))
        self._drain(keep=self.workers)

    def finish(self) -> None:
        self._submit()
        self._submit_bodies()
        self._drain(keep=0)

    def _submit(self) -> None:
        if not self.batch:
            return
        batch, size = self.batch, self.batch_bytes
        self.batch, self.batch_bytes = [], 0
        if self.pool is None:
            self.queue.append((_parse_pieces(batch, self.chains, self.polars_line_bytes), size))
        else:
            job = self.pool.submit(_parse_pieces, batch, self.chains, self.polars_line_bytes)
            self.queue.append((job, size))
        self._drain(keep=self.workers)

    def _drain(self, keep: int) -> None:
        while len(self.queue) > keep:
            item = self.queue.popleft()
            if isinstance(item, pl.DataFrame):
                self.store.add(compact(item))
                continue
            job, size = item
            parsed = job if isinstance(job, _Parsed) else job.result()
            if parsed.label not in self.cut_files:
                self.store.add(self._merge(parsed))
            self.bytes_read += size
            if self.progress is not None:
                self.progress(self.bytes_read)

    def _merge(self, parsed: _Parsed) -> pl.DataFrame:
        report = self.report
        for label, line_no, reason in parsed.bad_lines:
            report.bad_line(label, line_no, reason)
        for label in parsed.invalid_utf8:
            if label not in report.invalid_utf8:
                report.invalid_utf8.append(label)
        for label in parsed.surrogates:
            if label not in report.surrogates:
                report.surrogates.append(label)
        report.add_problems(parsed.label, parsed.problems)
        if parsed.cut is not None:  # the earliest break: it overrides a framing one after it
            report.truncated[parsed.label] = parsed.cut
            self.cut_files.add(parsed.label)
        return parsed.spans


def _read_source(source, reader: _Reader, stdin, *, explicit) -> None:
    try:
        raw = (stdin or _stdin()) if source.path is None else source.path.open("rb")
    except OSError as exc:
        raise InputError(f"{source.label}: cannot read ({exc.strerror or exc})") from exc
    try:
        stream, start = _sniffed(_decompressed(raw, source.label, reader.report))
        if protobuf.looks_framed(start[:16]):
            _read_framed(stream, source.label, reader)
            return
        head = start.lstrip()[:4]  # text may start with blank lines or spaces
        if not head and start:  # nothing but whitespace as far as the sniff went
            rest = _whole(stream, source.label, reader, "whitespace")
            if not rest.strip():
                return
            stream, start = _sniffed(io.BufferedReader(io.BytesIO(rest)))  # type: ignore[arg-type]
            head = start.lstrip()[:4]
        if not head:
            return
        problems: Counter = Counter()  # what the span-record readers drop, as OTLP's
        if start.startswith(_PARQUET):
            data = _whole(stream, source.label, reader, "a Parquet stream")
            for frame in flat.read_parquet(data, source.label, problems):
                reader.add_frame(frame)
            reader.report.add_problems(source.label, problems)
            return
        first = head.decode("utf-8", "replace").lstrip(_BOM)[:1]
        if first in "{[":
            _read_json(stream, source.label, reader)
            return
        data = _whole(stream, source.label, reader, "a file that is not OTLP JSON lines")
        if console.looks_like(data[:_CONSOLE_SNIFF]):
            _read_console(data, source.label, reader)
            return
        # A protobuf body starts with a newline byte (field 1), so text sniffing comes first.
        if protobuf.looks_like_body(data[:16]):
            _read_body(data, source.label, reader, explicit=explicit)
            return
        table = flat.read_csv(data, source.label, problems)
        if table is None:
            why = flat.why_not_records(data) or _EXPECTED
            if explicit:
                raise InputError(f"{source.label}: not a trace file: {why}")
            reader.report.skipped_files.append((source.label, why))
            return
        reader.add_frame(table)
        reader.report.add_problems(source.label, problems)
    except _STREAM_ERRORS as exc:  # OSError and EOFError among them
        raise InputError(f"{source.label}: cannot read ({_describe(exc)})") from exc
    finally:
        if source.path is not None:
            raw.close()


# How much of a file its format is told from.
_SNIFF = 1 << 20
# How far into a file a console-exporter span is looked for (the app may print first).
_CONSOLE_SNIFF = 1 << 20


def _read_console(data: bytes, label: str, reader: _Reader) -> None:
    """ConsoleSpanExporter output, the app's own lines in between skipped and counted."""
    documents, skipped = console.documents(_decode(data, label, reader.report))
    problems: Counter = Counter({"other_lines": skipped})
    if documents:
        lines = pl.Series("line", documents, dtype=pl.String)
        spans = otlp.spans_from_lines(lines, reader.chains, problems, trust_nul=True)
        reader.add_frame(compact(spans))
    reader.report.add_problems(label, problems)


def _read_framed(stream: BinaryIO, label: str, reader: _Reader) -> None:
    """The Collector's framed protobuf, each message in its place (the reader checks them)."""
    offset = 0
    try:
        for body in protobuf.frames(stream):
            reader.add_body(body, label, offset)
            offset += 4 + len(body)
    except protobuf.Truncated as exc:
        reader.report.truncated[label] = str(exc)


# What a file must be to be read, said when it is none of them.
_EXPECTED = ("expected OTLP JSON or protobuf, console exporter output, span records (JSONL, "
             "CSV, Parquet), optionally gzip or zstd compressed")  # fmt: skip


def _read_body(data: bytes, label: str, reader: _Reader, *, explicit: bool) -> None:
    """One bare ExportTraceServiceRequest (an OTLP/HTTP body, a `.pb` file)."""
    try:
        message = protobuf.request(data, label)
    except InputError:
        if explicit:
            raise
        reader.report.skipped_files.append((label, _EXPECTED))
        return
    spans = (
        span for r in message.resource_spans for scope in r.scope_spans for span in scope.spans
    )
    if not any(len(span.trace_id) == 16 for span in spans):  # logs parse as id-less "spans"
        other = protobuf.what_else(data)
        if other:
            raise InputError(f"{label}: {other}: expected trace spans")
    reader.add_body(data, label)


def _sniffed(stream: BinaryIO) -> tuple[io.BufferedReader, bytes]:
    """The stream again, whole, and its first `_SNIFF` bytes to tell the format from. Read,
    not peeked: a buffer's peek gives what one read of the layer below holds (8 KB of a gzip
    stream, say), and a stream cut short inside that read would lose it all; here what came
    before the cut is kept and the error comes back where the stream is read on."""
    block, error = read_block(stream, _SNIFF)
    rest: BinaryIO = _Failing(error) if error is not None else stream  # type: ignore[assignment]
    return io.BufferedReader(_Prefixed(block, rest)), block


def _stdin() -> BinaryIO:
    import sys

    return sys.stdin.buffer


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        return "compressed stream ends early: the file is truncated"
    return text


def _decompressed(
    raw: BinaryIO, label: str, report: Report | None = None
) -> io.BufferedReader[Any]:
    """Peel gzip/zstd layers, found by their magic numbers. Bytes after the last gzip member
    are ignored, as zcat does, and counted in `report`."""
    stream = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type,type-var]
    for _ in range(4):  # a few nested layers at most
        head = stream.peek(4)[:4]
        if head.startswith(_GZIP):

            def trailing(count: int) -> None:
                if report is not None:
                    report.add_problems(label, Counter(trailing_garbage=count))

            stream = io.BufferedReader(_Gzip(stream, trailing))  # type: ignore[arg-type,assignment]
        elif head.startswith(_ZSTD):
            stream = io.BufferedReader(_Zstd(stream))  # type: ignore[arg-type,assignment]
        else:
            return stream
    raise InputError(f"{label}: too many layers of compression")


def _whole(stream, label: str, reader: _Reader, what: str, already: int = 0) -> bytes:
    """The rest of `stream`, for a format read whole, within the tuning's limit: past it, an
    error naming the file, instead of memory running out (a gzip bomb, /dev/zero)."""
    limit = reader.max_whole_bytes
    if limit is None:
        return stream.read()
    room = limit - already  # `already`: bytes of the input the caller holds
    data = bytearray()  # grown a piece at a time: one read of `room` bytes would reserve it all
    while len(data) <= room and (piece := stream.read(min(_WHOLE_PIECE, room + 1 - len(data)))):
        data += piece
    if len(data) > room:
        raise InputError(
            f"{label}: {what} over {limit:,} bytes (decompressed) cannot be read whole; only "
            "OTLP JSON lines and framed protobuf stream in bounded memory (convert them, split "
            "the file, or raise SESSIONS_MAX_WHOLE_BYTES)"
        )
    return bytes(data)


_WHOLE_PIECE = 8 * 1024 * 1024


def _count_rest(stream) -> int:
    """Bytes left in `stream`, counted a piece at a time (trailing garbage may be huge)."""
    count = 0
    while piece := stream.read(_COMPRESSED_READ):
        count += len(piece)
    return count


def _read_json(stream, label, reader: _Reader) -> None:
    chains, report = reader.chains, reader.report
    # peek() returns only what the buffer holds (often 8 KB, less than one batch line), so
    # read a first block and put it back in front of the stream.
    block, error = read_block(stream, reader.read_bytes)
    if error is not None:  # the stream ends within the first block: _chunks reports it
        stream = _Failing(error)
    if console.looks_like(block[:_CONSOLE_SNIFF]):
        rest = _whole(stream, label, reader, "console output", len(block))
        _read_console(block + rest, label, reader)
        return
    if b"\r" in block and b"\n" not in block:  # old Mac line endings: CR alone ends a line
        rest = _whole(stream, label, reader, "CR-ended text", len(block))
        block = (block + rest).replace(b"\r", b"\n")
        stream = io.BufferedReader(io.BytesIO(b""))
    mode = _json_mode(block)
    if mode == "document":
        data = block + _whole(stream, label, reader, "a JSON document", len(block))
        text = _decode(data, label, report)
        try:
            value = otlp.loads(text.lstrip(_BOM))
        except ValueError:
            mode = "lines"  # not one document: report it line by line
            stream = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
        else:
            reader.add_frame(_documents_frame(value, label, chains, report))
            return
    else:
        stream = _Prefixed(block, stream)
    if mode == "flat":
        problems: Counter = Counter()
        text = _decode(_whole(stream, label, reader, "span records"), label, report)
        reader.add_frame(flat.read_jsonl(text, label, report, problems))
        report.add_problems(label, problems)
        return
    reader.add_lines(stream, label)


class _Gzip(io.RawIOBase):
    """gzip members one after another, decompressed a bounded piece at a time (a gzip bomb is
    read as it streams, never held whole). Input that ends inside a member raises EOFError;
    bytes after the last member that do not start another are ignored, as zcat does, and
    reported through `on_trailing` (GzipFile raised there, losing the member's last read)."""

    def __init__(self, raw: BinaryIO, on_trailing) -> None:
        self.raw, self.on_trailing = raw, on_trailing
        self.member = zlib.decompressobj(wbits=31)
        self.in_member = False  # bytes were fed to a member that has not ended
        self.pending = self.tail = b""
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending and not self.done:
            chunk, self.tail = self.tail or self.raw.read(_COMPRESSED_READ), b""
            if not chunk:
                if self.in_member:
                    raise EOFError("gzip stream ends inside a member")
                self.done = True
                break
            if self.member.eof:  # the previous member ended: this is the next one, or not
                if not chunk.startswith(_GZIP[: len(chunk)]):
                    self.on_trailing(len(chunk) + _count_rest(self.raw))
                    self.done = True
                    break
                self.member = zlib.decompressobj(wbits=31)
            self.pending = self.member.decompress(chunk, _DECOMPRESSED_PIECE)
            self.in_member = not self.member.eof
            self.tail = self.member.unused_data if self.member.eof else self.member.unconsumed_tail
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


_COMPRESSED_READ = 16 * 1024
_DECOMPRESSED_PIECE = 4 * 1024 * 1024


class _Zstd(io.RawIOBase):
    """A zstd stream decompressed frame after frame, that says when it ends inside a frame
    (EOFError, as gzip does): zstandard's own stream reader just stops there, and a cut-short
    file read as complete."""

    def __init__(self, raw: BinaryIO) -> None:
        import zstandard

        self.raw, self.zstd = raw, zstandard.ZstdDecompressor()
        self.frame = self.zstd.decompressobj()
        self.in_frame = False  # bytes were fed to a frame that has not ended
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            # Small reads: what one of them decompresses to is held at once.
            chunk = self.raw.read(_COMPRESSED_READ)
            if not chunk:
                if self.in_frame:
                    raise EOFError("zstd stream ends inside a frame")
                return 0
            out = []
            while chunk:
                if self.frame.eof:  # the next frame of a multi-frame file
                    self.frame = self.zstd.decompressobj()
                out.append(self.frame.decompress(chunk))
                self.in_frame = not self.frame.eof
                chunk = self.frame.unused_data if self.frame.eof else b""
            self.pending = b"".join(out)
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


class _Failing(io.RawIOBase):
    """The rest of a stream that already failed: raises its error again when read."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise self.error

    def readinto(self, buffer) -> int:
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

    def readinto(self, buffer) -> int:  # what a BufferedReader around it reads with
        if not self.head and hasattr(self.rest, "readinto"):
            return self.rest.readinto(buffer)  # straight into the caller's buffer: no copy
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# How a JSON file is laid out: OTLP documents a line each, span records a line each, or one
# (pretty-printed) document.
JsonMode = Literal["lines", "flat", "document"]


def _json_mode(block: bytes) -> JsonMode:
    """ "lines" of OTLP, "flat" span records, or one pretty-printed "document".

    JSON lines: one of the first lines is a JSON value on its own (the first may be the
    malformed one). A block without a line break is one long line.
    """
    lines = block.split(b"\n", 4)
    if len(lines) == 1:
        return "lines"
    for line in lines[:-1]:  # the last piece may be cut by the block's end
        try:
            value = otlp.loads(line.decode("utf-8", "replace").lstrip(_BOM))
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
    max_line_bytes: int,
    on_long_line=None,
    on_cut_short=None,
) -> Iterator[tuple[int, bytes | memoryview]]:
    """Blocks of whole lines, with the number of each block's first line.

    A line longer than `max_line_bytes` is skipped without being held (`on_long_line(number)`),
    so memory stays bounded whatever the input. A compressed stream that ends early or turns
    corrupt ends the file there (`on_cut_short(reason, lines_read)`): what came before counts.
    Bytes are not copied on their way out (measured: the copies, not the reads, cost most):
    a block's whole lines are handed out as a view of it, and only a line cut by a block's end
    is put together, on its own.
    """
    line_no, skipping = 1, False
    pending: list[bytes] = []  # the start of a line still without its end
    pending_bytes = 0
    while True:
        block, error = read_block(stream, chunk_bytes)
        if error is not None and on_cut_short is not None:
            lines = line_no + sum(p.count(b"\n") for p in pending) + block.count(b"\n")
            on_cut_short(_describe(error), lines)
        if not block:
            break
        view = memoryview(block)
        if skipping:  # inside an over-long line: drop bytes up to its end
            end = block.find(b"\n")
            if end < 0:
                continue
            view, skipping, line_no = view[end + 1 :], False, line_no + 1
        cut = block.rfind(b"\n") + 1 - (len(block) - len(view))
        if cut <= 0:  # no line ends in this block: keep reading, up to the limit
            pending.append(bytes(view))
            pending_bytes += len(view)
            if pending_bytes > max_line_bytes:
                if on_long_line is not None:
                    on_long_line(line_no)
                pending, pending_bytes, skipping = [], 0, True
            continue
        start = len(block) - len(view)  # where `view` starts in `block`
        if pending:  # the line begun in earlier blocks ends in this one
            joint = block.find(b"\n", start) + 1 - start
            yield line_no, b"".join([*pending, view[:joint]])
            line_no, view, cut, start = line_no + 1, view[joint:], cut - joint, start + joint
        if cut > 0:
            yield line_no, block if cut == len(block) else view[:cut]
            line_no += _count_lines(block, start, start + cut)
        pending = [bytes(view[cut:])] if cut < len(view) else []
        pending_bytes = len(view) - cut
        if error is not None:
            break
    if pending and not skipping:
        yield line_no, b"".join(pending)  # an unterminated last line (a file still being written)


def _count_lines(data: bytes, start: int = 0, end: int | None = None) -> int:
    """The newlines in `data[start:end]`. `bytes.count` looks at every byte (0.5 ms per MB:
    0.7 s of the main thread on 1.5 GB); `find` jumps with memchr, so while lines are long, as
    OTLP batches are, finding them one by one is 15x faster. Short lines are counted instead."""
    end = len(data) if end is None else end
    limit = (end - start) // 1024  # more lines than this: they are short
    n, at = 0, data.find(b"\n", start, end)
    while at >= 0:
        n += 1
        if n > limit:
            return n + data.count(b"\n", at + 1, end)
        at = data.find(b"\n", at + 1, end)
    return n


def read_block(stream: BinaryIO, size: int) -> tuple[bytes, BaseException | None]:
    """Up to `size` bytes, and the error that ended the stream early, if one did, with what
    came before it. A plain file gives the whole block in one read (no parts to join: the
    join was a copy of every byte); a pipe or a compressed stream may give it in parts."""
    parts: list[bytes] = []
    total = 0
    read = getattr(stream, "read1", stream.read)  # one underlying read at a time
    while total < size:
        try:
            part = read(size - total)
        except _STREAM_ERRORS as exc:
            return b"".join(parts), exc
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts), None


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


@dataclass(frozen=True)
class _Piece:
    label: str
    first_line_no: int
    # Whole lines (the last may lack its newline: an unterminated last line), as read: a view
    # of a block, made bytes only if the polars path reads them (`_as_bytes`).
    data: bytes | memoryview


@dataclass
class _Parsed:
    """What a worker made of one batch; the report is merged on the main thread."""

    label: str  # where `problems` are reported: the file, or the first of the batch's files
    spans: pl.DataFrame
    bad_lines: list[tuple[str, int, str]] = field(default_factory=list)
    invalid_utf8: set[str] = field(default_factory=set)
    surrogates: set[str] = field(default_factory=set)
    problems: Counter = field(default_factory=Counter)
    cut: str | None = None  # why a framed file ends early at a message of this batch


def _parse_bodies(bodies: list[bytes], chains, label: str, offsets: list[int] | None) -> _Parsed:
    """A batch of protobuf request bodies -> normalised spans (run in a worker process for a
    big input: module-level, and everything it takes and returns pickles). A framed file's
    batch (`offsets`) keeps the messages before one that is not a request and cuts the file
    there; bare bodies were checked when read."""
    parsed = _Parsed(label, empty_spans())
    spans = protobuf.spans_from_bodies(bodies, chains, parsed.problems)
    if spans is None:  # unsure, or a message does not parse: each is parsed here
        messages = []
        for number, body in enumerate(bodies):
            try:
                messages.append(protobuf.request(body, label))
            except InputError:
                if offsets is None:
                    raise
                parsed.cut = (
                    f"the message at byte {offsets[number]:,} is not an OTLP traces request; "
                    "the messages before it are read, the rest is lost"
                )
                break
        spans = protobuf.spans_of(messages, chains, parsed.problems)
    parsed.spans = compact(spans)
    return parsed


def _parse_pieces(pieces: list[_Piece], chains, polars_line_bytes: int | None = None) -> _Parsed:
    """A batch of whole lines -> normalised spans, and the lines that were malformed. A line
    longer than `polars_line_bytes` that the native reader does not read is skipped as
    malformed: decoding it with polars would take about ten times its size in memory."""
    labels = list(dict.fromkeys(p.label for p in pieces))
    label = labels[0] if len(labels) == 1 else f"{labels[0]} (and {len(labels) - 1:,} more)"
    parsed = _Parsed(label, empty_spans())
    read_natively = otlp.spans_from_blocks(_blocks(pieces), chains, parsed.problems)
    if read_natively is not None:
        parsed.spans = compact(read_natively)
        return parsed
    pieces = _as_bytes(pieces)
    if polars_line_bytes is not None and any(len(p.data) > polars_line_bytes for p in pieces):
        pieces = _without_long_lines(pieces, polars_line_bytes, parsed)
        if not pieces:
            return parsed
    lines, texts = _lines(pieces), None
    if lines is None:  # not UTF-8 (or a raw U+001F): split in Python, bad bytes replaced
        texts = _texts(pieces, parsed)
        kept = [line for line in "\n".join(texts).split("\n") if line and not line.isspace()]
        lines = pl.Series("line", kept, pl.String)
    if lines.is_empty():
        return parsed
    try:
        parsed.spans = compact(otlp.spans_from_lines(lines, chains, parsed.problems))
        return parsed
    except (pl.exceptions.PolarsError, otlp.SuspectText):
        pass
    if texts is None:
        texts = _texts(pieces, parsed)
    # Slow path: find the bad lines, reshape the good ones (see otlp.py).
    good: list[str] = []
    for piece, text in zip(pieces, texts, strict=True):
        for offset, line in enumerate(text.split("\n")):
            if not line.strip():
                continue
            try:
                docs = otlp.canonical_documents(otlp.loads(line))
            except ValueError as exc:
                parsed.bad_lines.append(
                    (piece.label, piece.first_line_no + offset, _reason(exc, line))
                )
                continue
            for doc in docs:
                text_doc, replaced = _dumps(doc)
                good.append(text_doc)
                if replaced:
                    parsed.surrogates.add(piece.label)
    if good:
        lines = pl.Series("line", good, dtype=pl.String)
        parsed.problems.clear()  # the fast path may have counted before it failed
        spans = otlp.spans_from_lines(lines, chains, parsed.problems, trust_nul=True)
        parsed.spans = compact(spans)
    return parsed


def _without_long_lines(pieces: list[_Piece], limit: int, parsed: _Parsed) -> list[_Piece]:
    """The pieces with their lines longer than `limit` cut out (and reported), the lines
    around them kept with their own numbers."""
    why = f"longer than {limit / 2**20:g} MB, which only the native reader reads" + (
        " (it was unsure of this batch): skipped"
        if native.active()
        else ", not active here: skipped"
    )
    out = []
    for piece in pieces:
        data, line_no, start, at = bytes(piece.data), piece.first_line_no, 0, 0
        while at < len(data):
            end = data.find(b"\n", at)
            end = len(data) if end < 0 else end
            if end - at > limit:
                if at > start:
                    out.append(_Piece(piece.label, line_no, data[start:at]))
                line_no += data.count(b"\n", start, at)
                parsed.bad_lines.append((piece.label, line_no, why))
                line_no, start = line_no + 1, end + 1
            at = end + 1
        if start < len(data):
            out.append(_Piece(piece.label, line_no, data[start:] if start else data))
    return out


def _blocks(pieces: list[_Piece]) -> list[bytes | memoryview]:
    """The batch's blocks of lines, a file's byte-order mark left out, for the native reader:
    as they were read, not joined (a join copied every byte of the input once more)."""
    return [
        memoryview(piece.data)[len(_BOM_BYTES) :]
        if piece.first_line_no == 1 and piece.data[: len(_BOM_BYTES)] == _BOM_BYTES
        else piece.data
        for piece in pieces
    ]


def _as_bytes(pieces: list[_Piece]) -> list[_Piece]:
    """The pieces with their lines as bytes, for the polars path (which splits and decodes
    text): a copy of the ones handed out as views of a block, made once. After it, the path's
    `bytes(piece.data)` is the same object, not a copy."""
    return [
        _Piece(p.label, p.first_line_no, bytes(p.data)) if isinstance(p.data, memoryview) else p
        for p in pieces
    ]


def _texts(pieces: list[_Piece], parsed: _Parsed) -> list[str]:
    """Each piece as text; invalid UTF-8 is replaced, and reported."""
    texts = []
    for piece in pieces:
        try:
            text = bytes(piece.data).decode("utf-8")
        except UnicodeDecodeError:
            text = bytes(piece.data).decode("utf-8", "replace")
            parsed.invalid_utf8.add(piece.label)
        texts.append(text.lstrip(_BOM) if piece.first_line_no == 1 else text)
    return texts


def _lines(pieces: list[_Piece]) -> pl.Series | None:
    """The batch's lines that are not blank, split by polars: None when a line is not UTF-8 or
    holds a raw U+001F (not valid JSON either), which the slow path then reports.

    Read as one-column CSV with a separator and no quote character that JSON never leaves
    raw: measured 3x faster than `str.split` in Python, and without holding the GIL. A big
    piece is read as it is (joining would copy it); small pieces, from small files, are joined
    first, as each read has a fixed cost (0.5 ms).
    """
    blocks: list[bytes] = []
    small: list[bytes] = []
    for piece in pieces:
        data = bytes(piece.data)
        if piece.first_line_no == 1 and data.startswith(_BOM_BYTES):
            data = data[len(_BOM_BYTES) :]
        if not data.endswith(b"\n"):
            data += b"\n"
        if len(data) < _READ_BYTES // 4:
            small.append(data)
            continue
        if small:
            blocks.append(b"".join(small))
            small = []
        blocks.append(data)
    if small:
        blocks.append(b"".join(small))
    try:
        lines = pl.concat([_csv_lines(block) for block in blocks])
    except pl.exceptions.PolarsError:
        return None
    return lines.filter(lines.str.contains(r"\S").fill_null(False))


def _csv_lines(data: bytes) -> pl.Series:
    frame = pl.read_csv(
        data, has_header=False, separator="\x1f", quote_char=None, schema={"line": pl.String}
    )
    return frame.get_column("line")


_BOM_BYTES = _BOM.encode()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _dumps(doc) -> tuple[str, bool]:
    """A document as JSON text for the fast path, and whether anything was replaced. JSON may
    escape lone UTF-16 surrogates (`"\\ud800"`), which no UTF-8 output can carry: they become
    U+FFFD, and are reported."""
    text = json.dumps(doc, ensure_ascii=False)
    if _SURROGATE.search(text):
        return _SURROGATE.sub("\ufffd", text), True
    return text, False


def _documents_frame(value, label, chains, report) -> pl.DataFrame:
    try:
        docs = otlp.canonical_documents(value)
    except otlp.Malformed as exc:
        report.bad_line(label, 1, str(exc))
        return empty_spans()
    dumped = [_dumps(d) for d in docs]
    lines = pl.Series("line", [text for text, _ in dumped], dtype=pl.String)
    if any(replaced for _, replaced in dumped) and label not in report.surrogates:
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
