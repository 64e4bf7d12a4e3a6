"""What `sessions report` shows, computed once: headline figures, the session table, the series
and groups its charts draw, and the sessions that get a section of their own.

Frames and plain values in, frames and plain values out; the HTML is output.report_html's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

import polars as pl

from sessions_cli.model.sessions import Model
from sessions_cli.notices import Notice
from sessions_cli.query import stats, timeline
from sessions_cli.query.filters import SORT_KEYS, sort_rows

# The session table's fields: those the page shows and filters on, each equal to list --json's.
TABLE_FIELDS = [
    "session_id", "session_name", "user_id", "users", "start", "duration_ms", "trace_count",
    "llm_call_count", "total_tokens", "cost_usd", "unpriced_call_count", "error_count", "models",
    "tags",
]  # fmt: skip
# Ranges shorter than this are drawn per hour, longer ones per day.
_HOURLY_BELOW_NS = 3 * 24 * 3600 * 10**9


@dataclass(frozen=True)
class Detail:
    """A session with a section of its own: its row, traces and timeline events (spans
    included, as `timeline --spans --json` gives them)."""

    session: timeline.Session
    events: pl.DataFrame


@dataclass(frozen=True)
class Report:
    totals: dict  # stats.totals, plus error_rate
    distributions: pl.DataFrame  # stats.distributions
    first_start: object  # datetime of the earliest session start (None: no times)
    last_end: object
    sessions: pl.DataFrame  # TABLE_FIELDS, most expensive first
    bucket: str  # "hour" or "day": the series' unit
    series: pl.DataFrame  # bucket (naive wall-clock datetime in the zone), sessions, tokens, cost
    by_model: pl.DataFrame  # stats.groups by model: LLM calls split per model
    details: list[Detail]
    notices: tuple[Notice, ...]


def build(
    model: Model, sessions: pl.DataFrame, orphans: pl.DataFrame, *, zone: tzinfo | None,
    detailed: int,
) -> Report:  # fmt: skip
    """The report of `sessions` (filtered rows of model.sessions), with a section for each of
    the `detailed` most expensive."""
    totals = stats.totals(sessions, orphans)
    count = totals["sessions"]
    totals["error_rate"] = totals["sessions_with_errors"] / count if count else None
    ranked = sort_rows(
        sessions, SORT_KEYS["cost"], descending=True, id_column="session_id", limit=None
    )
    first, last = sessions.select(pl.col("start").min(), pl.col("end").max()).row(0)
    bucket = _bucket(sessions)
    return Report(
        totals=totals,
        distributions=stats.distributions(sessions),
        first_start=first,
        last_end=last,
        sessions=ranked.select(TABLE_FIELDS),
        bucket=bucket,
        series=_series(sessions, bucket, zone),
        by_model=stats.groups(sessions, "model"),
        details=[
            _detail(model, session_id)
            for session_id in ranked.get_column("session_id").head(detailed)
        ],
        notices=model.notices,
    )


def _bucket(sessions: pl.DataFrame) -> str:
    bounds = sessions.select(
        pl.col("start_unix_ms").min().alias("first"), pl.col("end_unix_ms").max().alias("last")
    ).row(0, named=True)
    if bounds["first"] is None or bounds["last"] is None:
        return "day"
    return "hour" if (bounds["last"] - bounds["first"]) * 10**6 < _HOURLY_BELOW_NS else "day"


def _series(sessions: pl.DataFrame, bucket: str, zone: tzinfo | None) -> pl.DataFrame:
    """Sessions, tokens and cost per hour or day of the sessions' starts, in `zone`, as
    wall-clock times there (a day is the zone's day)."""
    start = pl.col("start")
    if zone is not None:
        start = start.dt.convert_time_zone(str(zone))
    return (
        sessions.drop_nulls("start")
        .group_by(start.dt.truncate("1h" if bucket == "hour" else "1d").alias("bucket"))
        .agg(
            pl.len().alias("sessions"),
            pl.col("total_tokens").sum(),
            stats.known_sum(pl.col("cost_usd")).alias("cost_usd"),
            pl.col("unpriced_call_count").sum(),
        )
        .with_columns(pl.col("bucket").dt.replace_time_zone(None))
        .sort("bucket")
    )


def _detail(model: Model, session_id: str) -> Detail:
    one = timeline.session(model, session_id)
    return Detail(session=one, events=timeline.events(model, one, spans=True))
