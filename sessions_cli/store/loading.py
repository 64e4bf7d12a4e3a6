"""Sources -> a SpanStore: what every command reads before it builds the model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import BinaryIO

import polars as pl

from sessions_cli.errors import IncompleteInput
from sessions_cli.read.sources import Report, Source, read_into
from sessions_cli.store import converted
from sessions_cli.store.spans import SpanStore
from sessions_cli.tuning import Tuning


def read_spans(
    sources: list[Source],
    chains: dict[str, tuple[str, ...]],
    *,
    tuning: Tuning | None = None,
    **options,
) -> tuple[pl.DataFrame, Report]:
    """All spans of all sources, in memory, de-duplicated by (trace_id, span_id): first seen wins.

    For tests; the commands read into a SpanStore (`read_store`, whose keyword options this
    takes too).
    """
    store, report = read_store(
        sources, chains, tuning=dataclasses.replace(tuning or Tuning(), memory_rows=None), **options
    )
    with store:
        (spans,) = list(store.groups())
        report.conflicting_duplicates = store.conflicting_duplicates
        report.spans_without_ids = store.without_ids
    return spans, report


def read_store(
    sources: list[Source],
    chains: dict[str, tuple[str, ...]],
    *,
    tuning: Tuning | None = None,
    stdin: BinaryIO | None = None,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    spans_again: bool = True,
) -> tuple[SpanStore, Report]:
    """All spans of all sources in a SpanStore (spilled to disk past `tuning.memory_rows`;
    None: never). The report is complete once the store's groups have been read through
    (`conflicting_duplicates`). Without `spans_again`, spans are read only through the
    store's groups, once, and never by `spans_of`: more of them may stay in memory."""
    report = Report()
    tuning = tuning or Tuning()
    memory_rows = tuning.memory_rows or 2**62
    # A converted file is read by its own groups. Not with --strict: spans without ids are
    # only counted as its groups are read, after the point where --strict must refuse them.
    if not strict and len(sources) == 1 and sources[0].path is not None:
        grouped = converted.grouped_parquet(
            sources[0].path, sources[0].label, memory_rows, tuning.read_workers
        )
        if grouped is not None:
            return grouped, report
    store = SpanStore(
        memory_rows=memory_rows,
        group_rows=tuning.group_rows,
        once_bytes=0 if spans_again else tuning.once_bytes,
    )
    try:
        read_into(
            store,
            sources,
            chains,
            report,
            tuning=tuning,
            stdin=stdin,
            progress=progress,
        )
        store.finish()
        report.spans_without_ids = store.without_ids
        if strict and report.failures():
            raise IncompleteInput(report.failures())
    except BaseException:
        store.close()
        raise
    return store, report
