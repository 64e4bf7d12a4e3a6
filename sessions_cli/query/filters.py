"""Filters and sorting over the session (or orphan-trace) table. Frames in, frames out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from sessions_cli.errors import SessionsError

# --sort NAME -> column; "start" is the default, newest first.
SORT_KEYS = {
    "start": "start",
    "end": "end",
    "cost": "cost_usd",
    "tokens": "total_tokens",
    "duration": "duration_ms",
    "traces": "trace_count",
    "spans": "span_count",
    "errors": "error_count",
    "name": "session_name",
    "user": "user_id",
}
# The same names on orphan traces (--orphans), where a name is the trace's name.
ORPHAN_SORT_KEYS = {
    **SORT_KEYS, "name": "trace_name", "traces": "span_count", "errors": "status",
}  # fmt: skip


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    until_inclusive: bool = True  # False: `until` is the midnight after a whole day
    users: tuple[str, ...] = ()  # any of them
    search: str | None = None
    tags: tuple[str, ...] = ()  # all of them
    meta: tuple[tuple[str, str], ...] = ()  # all of them
    models: tuple[str, ...] = ()  # any of them
    min_cost: float | None = None
    max_cost: float | None = None
    min_tokens: int | None = None
    min_traces: int | None = None
    errors: bool = False


def filter_sessions(sessions: pl.DataFrame, f: Filters) -> pl.DataFrame:
    conditions = _common(f, name="session_name", id_="session_id")
    if f.users:
        conditions.append(pl.col("users").list.eval(pl.element().is_in(f.users)).list.any())
    for tag in f.tags:
        conditions.append(pl.col("tags").list.contains(tag))
    for key, value in f.meta:
        conditions.append(
            pl.col("metadata")
            .list.eval(
                (pl.element().struct.field("key") == key)
                & (pl.element().struct.field("value") == value)
            )
            .list.any()
        )
    if f.min_traces is not None:
        conditions.append(pl.col("trace_count") >= f.min_traces)
    if f.errors:
        conditions.append(pl.col("error_count") > 0)
    return sessions.filter(conditions) if conditions else sessions


def filter_orphans(traces: pl.DataFrame, f: Filters) -> pl.DataFrame:
    """The filters that make sense for a trace without a session."""
    conditions = _common(f, name="trace_name", id_="trace_id")
    if f.users:
        conditions.append(pl.col("user_id").is_in(f.users))
    if f.errors:
        conditions.append(pl.col("status") == "error")
    return traces.filter(conditions) if conditions else traces


def _common(f: Filters, *, name: str, id_: str) -> list[pl.Expr]:
    out = []
    # A session matches a window when it was active inside it: it ends after `since` and
    # starts before `until`.
    if f.since is not None:
        out.append(pl.col("end") >= f.since)
    if f.until is not None:
        out.append(pl.col("start") <= f.until if f.until_inclusive else pl.col("start") < f.until)
    if f.search:
        needle = f.search.lower()
        out.append(
            pl.col(id_).str.to_lowercase().str.contains(needle, literal=True)
            | pl.col(name).str.to_lowercase().str.contains(needle, literal=True).fill_null(False)
        )
    if f.models:
        out.append(pl.col("models").list.eval(pl.element().is_in(f.models)).list.any())
    if f.min_cost is not None:
        out.append(pl.col("cost_usd") >= f.min_cost)
    if f.max_cost is not None:
        out.append(pl.col("cost_usd") <= f.max_cost)
    if f.min_tokens is not None:
        out.append(pl.col("total_tokens") >= f.min_tokens)
    return out


def sort_rows(
    rows: pl.DataFrame, column: str, *, descending: bool, id_column: str, limit: int | None
) -> pl.DataFrame:
    """Sort with nulls last whatever the direction, ties broken by id for a stable order."""
    rows = rows.sort([column, id_column], descending=[descending, False], nulls_last=True)
    return rows.head(limit) if limit is not None else rows


def resolve_id(ids: pl.Series, wanted: str, *, noun: str = "session") -> str:
    """The one id equal to `wanted`, or the only one starting with it (like git).

    Unknown: an error naming up to five close ids. Ambiguous prefix: an error listing them.
    """
    if (ids == wanted).any():
        return wanted
    matches = ids.filter(ids.str.starts_with(wanted)).unique().sort()
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches.head(10).to_list())
        more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
        raise SessionsError(f"{noun} prefix {wanted!r} is ambiguous: it matches {shown}{more}")
    import difflib

    close = difflib.get_close_matches(wanted, ids.unique().sort().to_list(), n=5, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise SessionsError(f"no {noun} {wanted!r}{hint}")


def resolve_session(
    ids: pl.Series, wanted: str, traces: Callable[[], pl.DataFrame], *, command: str = "show"
) -> str:
    """`resolve_id` for a session, which, when no session matches, says whether `wanted` is a
    trace id (or prefix) and of which session (`sessions COMMAND` it): `traces()` gives
    trace_id and session_id."""
    try:
        return resolve_id(ids, wanted)
    except SessionsError as missing:
        if not wanted or not (ids != wanted).all():
            raise
        known = traces().select("trace_id", "session_id")
        hits = known.filter(pl.col("trace_id").str.starts_with(wanted.lower()))
        if hits.height != 1:
            raise
        session = hits.item(0, "session_id")
        if session is None:
            raise SessionsError(
                f"{wanted!r} is a trace that belongs to no session (see: sessions list --orphans)"
            ) from None
        raise SessionsError(
            f"{wanted!r} is a trace of session {session!r}: sessions {command} {session}"
        ) from missing
