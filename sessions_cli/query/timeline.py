"""One session in time order: its traces and, on request, their span trees (contract §4 events).

Frames in, frames out. The tree walk is plain Python over one session's spans: sessions have
tens of thousands of spans at most, and a depth-first order is awkward to express in columns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import polars as pl

from sessions_cli.model.sessions import UNPRICED_CALL, Model, parent_rows

EVENT_FIELDS = [
    "kind", "trace_id", "span_id", "parent_span_id", "depth", "name", "start", "end",
    "start_unix_ms", "end_unix_ms", "offset_ms", "duration_ms", "status", "model", "models",
    "input_tokens", "output_tokens", "cost_usd",
]  # fmt: skip


@dataclass(frozen=True)
class Session:
    """One session: its row of the session table, its traces in start order, and its bounds."""

    row: pl.DataFrame  # one row, model.SESSION_FIELDS
    traces: pl.DataFrame  # trace fields and then some, in start order
    start_ns: int | None  # None when no span of the session has times
    end_ns: int | None


def _instant(value: object) -> int | None:
    """A nanosecond bound of a session: None when no span has times."""
    return value if isinstance(value, int) else None  # the min/max of an Int64 column


def session(model: Model, session_id: str) -> Session:
    traces = model.traces_of(session_id)
    return Session(
        row=model.sessions.filter(pl.col("session_id") == session_id),
        traces=traces,
        start_ns=_instant(traces.get_column("start_ns").min()),
        end_ns=_instant(traces.get_column("end_ns").max()),
    )


def events(
    model: Model, one: Session, *, spans: bool = False, depth: int | None = None
) -> pl.DataFrame:
    """Trace events in start order; with `spans`, each followed by its span tree, depth-first.

    `depth` keeps spans at most that deep (0 = roots only). Offsets are from the session start.
    """
    traces, origin = one.traces, one.start_ns
    trace_events = traces.select(
        pl.lit("trace").alias("kind"),
        "trace_id",
        pl.lit(None, pl.String).alias("span_id"),
        pl.lit(None, pl.String).alias("parent_span_id"),
        pl.lit(None, pl.Int64).alias("depth"),
        pl.col("trace_name").alias("name"),
        "start_ns",
        "end_ns",
        "status",
        # `model` reads in a table; `models` is the list, as list and show give it
        pl.col("models").list.join(", ").replace("", None).alias("model"),
        "models",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "unpriced_call_count",
        pl.int_range(pl.len()).alias("trace_order"),
        pl.lit(-1, pl.Int64).alias("span_order"),
    )
    if spans:
        ordered = _span_events(model, traces)
        if depth is not None:
            ordered = ordered.filter(pl.col("depth") <= depth)
        trace_events = pl.concat([trace_events, ordered], how="vertical_relaxed")
    rows = trace_events.sort("trace_order", "span_order")
    return rows.with_columns(
        pl.from_epoch("start_ns", time_unit="ns").dt.replace_time_zone("UTC").alias("start"),
        pl.from_epoch("end_ns", time_unit="ns").dt.replace_time_zone("UTC").alias("end"),
        (pl.col("start_ns") // 1_000_000).alias("start_unix_ms"),
        (pl.col("end_ns") // 1_000_000).alias("end_unix_ms"),
        ((pl.col("start_ns") - origin) / 1e6).round(6).alias("offset_ms"),
        ((pl.col("end_ns") - pl.col("start_ns")) / 1e6).round(6).alias("duration_ms"),
    ).select(*EVENT_FIELDS, "start_ns", "end_ns", "unpriced_call_count")


def _span_events(model: Model, traces: pl.DataFrame) -> pl.DataFrame:
    spans = (
        model.spans_of(traces.get_column("trace_id").to_list())
        .join(
            traces.select("trace_id", pl.int_range(pl.len()).alias("trace_order")),
            on="trace_id",
        )
        .sort("trace_order", "start_time_unix_nano", "span_id", nulls_last=True)
        .with_row_index("row")
    )
    # Rows, not ids, go to the Python walk: a million id strings took hundreds of MB.
    order, depths = tree_order(parent_rows(spans).to_list(), spans.get_column("is_root").to_list())
    position = pl.DataFrame(
        {"row": order, "span_order": range(len(order)), "depth": depths},
        schema={"row": pl.UInt32, "span_order": pl.Int64, "depth": pl.Int64},
    )
    own_usage = pl.col("counted")  # only a counted span's usage is its own LLM call's
    return spans.join(position, on="row").select(
        pl.lit("span").alias("kind"),
        "trace_id",
        "span_id",
        "parent_span_id",
        "depth",
        pl.col("name").cast(pl.String),
        pl.col("start_time_unix_nano").alias("start_ns"),
        pl.col("end_time_unix_nano").alias("end_ns"),
        pl.col("status").cast(pl.String),
        pl.col("model").cast(pl.String),
        pl.when(pl.col("model").is_not_null())
        .then(pl.concat_list(pl.col("model").cast(pl.String)))
        .otherwise(pl.lit([], pl.List(pl.String)))
        .alias("models"),
        pl.when(own_usage).then("input_tokens").alias("input_tokens"),
        pl.when(own_usage).then("output_tokens").alias("output_tokens"),
        pl.col("call_cost_usd").alias("cost_usd"),
        # 1 for an LLM call with tokens but no price, so that a drawing shows it as unknown
        UNPRICED_CALL.cast(pl.UInt32).alias("unpriced_call_count"),
        "trace_order",
        "span_order",
    )


def tree_order(parents: list[int | None], is_root: list[bool]) -> tuple[list[int], list[int]]:
    """Depth-first order of spans already sorted by (trace, start), from each one's parent
    row: (row indexes, depths).

    Children follow their parent in start order; roots (no parent in the data) are at depth 0.
    Spans on a parent cycle have no root above them: the earliest of each such group is walked
    as if it were a root, so every span appears exactly once. Tops are walked in start order.
    """
    children: dict[int, list[int]] = defaultdict(list)
    for row, (parent, root) in enumerate(zip(parents, is_root, strict=True)):
        if not root and parent is not None:
            children[parent].append(row)

    def walk(top: int, seen: list[bool], visit) -> None:
        stack = [(top, 0)]
        while stack:
            row, depth = stack.pop()
            if seen[row]:
                continue
            seen[row] = True
            visit(row, depth)
            below = children.get(row, ())
            stack.extend((child, depth + 1) for child in reversed(below))

    # First find the tops: the roots, then the earliest unreached span of each cycle.
    reached = [False] * len(parents)
    tops = [row for row, root in enumerate(is_root) if root]
    for row in tops:
        walk(row, reached, lambda r, d: None)
    for row in range(len(parents)):
        if not reached[row]:
            tops.append(row)
            walk(row, reached, lambda r, d: None)
    # Rows are sorted by (trace, start), so sorting the tops by row keeps that order.
    order: list[int] = []
    depths: list[int] = []

    def visit(row: int, depth: int) -> None:
        order.append(row)
        depths.append(depth)

    seen = [False] * len(parents)
    for row in sorted(tops):
        walk(row, seen, visit)
    return order, depths
