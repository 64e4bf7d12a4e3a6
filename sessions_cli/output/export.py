"""Spans written out as flat span records (`convert`): Parquet, JSONL or CSV."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl

from sessions_cli.kinds import Format
from sessions_cli.output.render import pieces
from sessions_cli.read.flat import GROUPS, ID_SUMS, id_hashes
from sessions_cli.read.schema import expand, stored
from sessions_cli.store.spans import write_part

WRITABLE = (".parquet", ".jsonl", ".csv")


def write(groups: Iterable[pl.DataFrame], path: str, scratch: Path | None = None) -> int:
    """Write spans, a group at a time, as flat span records (SPAN_SCHEMA columns), the type
    chosen by the path's suffix (one of WRITABLE); returns how many. Text is written as it
    came: CSV formula defusing is for spreadsheets, and would change the data read back.

    A Parquet file cannot be appended to: with `scratch` (a spilled store's directory) the
    groups wait there as Arrow files and are streamed into one Parquet file, so memory
    follows a group, not the export."""
    suffix = Path(path).suffix.lower()
    with atomic(path) as temporary:
        return _write(groups, temporary, suffix, scratch)


@contextlib.contextmanager
def atomic(path: str) -> Iterator[str]:
    """A temporary path beside `path`, renamed over it only once it is complete: readers never
    see a half-written file, and two writers never interleave."""
    target = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write(groups: Iterable[pl.DataFrame], path: str, suffix: str, scratch: Path | None) -> int:
    count = 0
    if suffix == ".parquet":
        held, parts, sizes, id_sums = [], [], [], []
        for number, group in enumerate(groups):
            records = stored(group)
            count += records.height
            sizes.append(records.height)
            id_sums.append(records.select(id_hashes().sum()).item())
            if scratch is None:
                held.append(records)
            else:
                parts.append(scratch / f"convert-{number:06d}.arrow")
                write_part(records, parts[-1])
            del records, group
        # Row groups decide what reading a group back decodes. Spilled groups come from their
        # own files, and polars' sink, given no row group size, has ended its row groups where
        # a file ends (seen, not promised): then no group decodes rows of its neighbours'.
        # Held ones, a group or two, are cut in 25k rows that two cores decode at once.
        if parts:
            source, row_group_size = pl.scan_ipc(parts), None
        else:
            source, row_group_size = pl.concat(held).lazy(), 25_000
        source.sink_parquet(
            path,
            compression="zstd",
            statistics=False,
            row_group_size=row_group_size,
            metadata={GROUPS: json.dumps(sizes), ID_SUMS: json.dumps(id_sums)},
        )
        return count
    fmt: Format = "csv" if suffix == ".csv" else "jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for number, group in enumerate(groups):
            records = expand(group)
            count += records.height
            out.writelines(pieces(records, fmt, raw_csv=True, header=number == 0))
    return count
