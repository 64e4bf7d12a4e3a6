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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl

from sessions_cli import flat, otlp
from sessions_cli.errors import InputError, UsageError
from sessions_cli.schema import empty_spans

CHUNK_BYTES = 16 * 1024 * 1024
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


# ---------------------------------------------------------------------------------------------
# Reading


def read_spans(
    sources: list[Source],
    chains: dict[str, tuple[str, ...]],
    *,
    stdin: BinaryIO | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    strict: bool = False,
) -> tuple[pl.DataFrame, Report]:
    """All spans of all sources, de-duplicated by (trace_id, span_id): first seen wins."""
    report = Report()
    frames = []
    for source in sources:
        frames += list(
            _read_source(
                source,
                chains,
                report,
                stdin,
                chunk_bytes,
                explicit=len(sources) == 1 or source.path is None,
            )
        )
    if strict and report.malformed:
        raise InputError("malformed input (--strict): " + "; ".join(report.warnings()))
    spans = pl.concat(frames) if frames else empty_spans()
    valid = spans.filter(pl.col("trace_id").is_not_null() & pl.col("span_id").is_not_null())
    report.spans_without_ids = spans.height - valid.height
    return valid.unique(["trace_id", "span_id"], keep="first", maintain_order=True), report


def _read_source(source, chains, report, stdin, chunk_bytes, *, explicit) -> Iterator[pl.DataFrame]:
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
            yield from _read_json(stream, source.label, chains, report, chunk_bytes)
            return
        frame = flat.read_csv(stream.read(), source.label)
        if frame is None:
            if explicit:
                raise InputError(
                    f"{source.label}: not a trace file: expected OTLP JSON, span records "
                    "(JSONL, CSV, Parquet), optionally gzip or zstd compressed"
                )
            report.skipped_files.append(source.label)
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


def _read_json(stream, label, chains, report, chunk_bytes) -> Iterator[pl.DataFrame]:
    first_line = stream.peek(chunk_bytes).split(b"\n", 1)[0]
    mode = _json_mode(first_line)
    if mode == "document":
        data = stream.read()
        text = _decode(data, label, report)
        try:
            value = json.loads(text.lstrip(_BOM))
        except ValueError:
            mode = "lines"  # not one document: report it line by line
            stream = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
        else:
            yield _documents_frame(value, label, chains, report)
            return
    if mode == "flat":
        yield flat.read_jsonl(_decode(stream.read(), label, report), label, report)
        return
    for first_line_no, chunk in _chunks(stream, chunk_bytes):
        text = _decode(chunk, label, report)
        if first_line_no == 1:
            text = text.lstrip(_BOM)
        yield _lines_frame(text, first_line_no, label, chains, report)


def _json_mode(first_line: bytes) -> str:
    """ "lines" of OTLP, "flat" span records, or one pretty-printed "document"."""
    try:
        value = json.loads(first_line.decode("utf-8", "replace").lstrip(_BOM))
    except ValueError:
        return "document"
    if (
        isinstance(value, dict)
        and "resourceSpans" not in value
        and ("trace_id" in value or "span_id" in value)
    ):
        return "flat"
    return "lines"


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


def _lines_frame(text, first_line_no, label, chains, report) -> pl.DataFrame:
    lines = pl.Series("line", text.split("\n"), dtype=pl.String)
    lines = lines.filter(lines.str.strip_chars() != "")
    if lines.is_empty():
        return empty_spans()
    try:
        return otlp.spans_from_lines(lines, chains)
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
            report.bad_line(label, first_line_no + offset, _reason(exc, line))
            continue
        good += [json.dumps(doc, ensure_ascii=False) for doc in docs]
    if not good:
        return empty_spans()
    return otlp.spans_from_lines(pl.Series("line", good, dtype=pl.String), chains)


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
