"""One session in time order: its traces and, on request, their span trees (contract §4 events).

Frames in, frames out. The tree walk is a Python loop over one session's spans: a depth-first
order is awkward to express in columns, and it is one session's, not the whole export's.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import polars as pl

from sessions_cli.frames import sorted_stack
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
    parts = [trace_events]
    if spans:
        parts.append(_span_events(model, traces))
        if depth is not None:
            parts[1] = parts[1].filter(pl.col("depth") <= depth)
    del trace_events  # `parts` holds the only references, so that each column is let go of
    rows = sorted_stack(parts, by=("trace_order", "span_order"))
    span_models = (
        pl.when(pl.col("model").is_not_null())
        .then(pl.concat_list("model"))
        .otherwise(pl.lit([], pl.List(pl.String)))
    )
    return rows.with_columns(
        pl.coalesce("models", span_models).alias("models"),
        pl.from_epoch("start_ns", time_unit="ns").dt.replace_time_zone("UTC").alias("start"),
        pl.from_epoch("end_ns", time_unit="ns").dt.replace_time_zone("UTC").alias("end"),
        (pl.col("start_ns") // 1_000_000).alias("start_unix_ms"),
        (pl.col("end_ns") // 1_000_000).alias("end_unix_ms"),
        ((pl.col("start_ns") - origin) / 1e6).round(6).alias("offset_ms"),
        ((pl.col("end_ns") - pl.col("start_ns")) / 1e6).round(6).alias("duration_ms"),
    ).select(*EVENT_FIELDS, "start_ns", "end_ns", "unpriced_call_count")


def _span_events(model: Model, traces: pl.DataFrame) -> pl.DataFrame:
    """The traces' span events in the order they were read, each with its `depth` and its
    `span_order` (its place in its trace's walk). The walk is found in row numbers, not by
    sorting or joining the spans themselves, so they are copied once, by the caller's sort."""
    own_usage = pl.col("counted")  # only a counted span's usage is its own LLM call's
    trace_ids = traces.get_column("trace_id")
    spans = model.spans_of(trace_ids.to_list()).select(
        pl.lit("span").alias("kind"),
        "trace_id",
        "span_id",
        "parent_span_id",
        pl.col("name").cast(pl.String),
        pl.col("start_time_unix_nano").alias("start_ns"),
        pl.col("end_time_unix_nano").alias("end_ns"),
        pl.col("status").cast(pl.String),
        pl.col("model").cast(pl.String),
        # filled in after the sort: a list column's gather across chunks was the sort's dearest
        pl.lit(None, pl.List(pl.String)).alias("models"),
        pl.when(own_usage).then("input_tokens").alias("input_tokens"),
        pl.when(own_usage).then("output_tokens").alias("output_tokens"),
        pl.col("call_cost_usd").alias("cost_usd"),
        # 1 for an LLM call with tokens but no price, so that a drawing shows it as unknown
        UNPRICED_CALL.cast(pl.UInt32).alias("unpriced_call_count"),
        # a lookup, not a join: a join would copy every column of every span
        pl.col("trace_id")
        .replace_strict(trace_ids, pl.int_range(len(trace_ids), eager=True))
        .alias("trace_order"),
        "is_root",
    )
    # The walk wants rows in (trace, start) order: it gets their numbers in that order, and
    # each span's parent as a number in that order too.
    by_start = spans.select(
        pl.arg_sort_by("trace_order", "start_ns", "span_id", nulls_last=True).alias("row")
    ).to_series()
    rank = pl.repeat(0, spans.height, dtype=pl.UInt32, eager=True).scatter(
        by_start, pl.int_range(spans.height, dtype=pl.UInt32, eager=True)
    )
    parent = parent_rows(spans).gather(by_start)
    walk = tree_order(
        rank.gather(parent), spans.get_column("is_root").gather(by_start)
    )  # rows here are places in by_start
    read_row = by_start.gather(walk.get_column("row"))
    span_order = pl.repeat(0, spans.height, dtype=pl.Int64, eager=True)
    depth = pl.repeat(0, spans.height, dtype=pl.Int64, eager=True)
    return (
        spans.drop("is_root")
        .with_columns(
            span_order.scatter(read_row, walk.get_column("span_order")).alias("span_order"),
            depth.scatter(read_row, walk.get_column("depth")).alias("depth"),
        )
        .select(*_SPAN_EVENT_COLUMNS)
    )


def _children(parents: pl.Series, is_root: pl.Series) -> tuple[array, array]:
    """Each row's children as one slice of `kids`: first[row]..first[row + 1], in row order."""
    edges = (
        pl.DataFrame({"parent": parents.cast(pl.UInt32), "is_root": is_root})
        .with_row_index("row")
        .filter(pl.col("parent").is_not_null() & ~pl.col("is_root"))
        .sort("parent", "row")  # rows are in start order: so are each parent's children
    )
    kids = array("I", edges.get_column("row").to_list())
    below = edges.group_by("parent").len()
    first = array(
        "I",
        pl.DataFrame({"parent": pl.int_range(len(parents), dtype=pl.UInt32, eager=True)})
        .join(below, on="parent", how="left", maintain_order="left")
        .select(pl.concat([pl.lit(0, pl.UInt32), pl.col("len").fill_null(0).cum_sum()]))
        .to_series()
        .to_list(),
    )
    return kids, first


def _walk(tops, kids: array, first: array, n: int) -> tuple[array, array]:
    """Rows depth-first from each of `tops` in turn, and their depths; a row is walked once."""
    seen = bytearray(n)
    order, depths = array("I"), array("I")
    stack, at_depth = array("I"), array("I")
    for top in tops:
        stack.append(top)
        at_depth.append(0)
        while stack:
            row, depth = stack.pop(), at_depth.pop()
            if seen[row]:
                continue
            seen[row] = 1
            order.append(row)
            depths.append(depth)
            lo, hi = first[row], first[row + 1]
            if hi > lo:  # children go on the stack last-first, to come off first-first
                children = kids[lo:hi]
                children.reverse()
                stack.extend(children)
                at_depth.extend(array("I", [depth + 1]) * (hi - lo))
    return order, depths


_SPAN_EVENT_COLUMNS = (
    "kind", "trace_id", "span_id", "parent_span_id", "depth", "name", "start_ns", "end_ns",
    "status", "model", "models", "input_tokens", "output_tokens", "cost_usd",
    "unpriced_call_count", "trace_order", "span_order",
)  # fmt: skip


def tree_order(parents: pl.Series, is_root: pl.Series) -> pl.DataFrame:
    """Depth-first order of spans already sorted by (trace, start), from each one's parent
    row: a frame of `row`, `span_order` (its place in the walk) and `depth`.

    Children follow their parent in start order; roots (no parent in the data) are at depth 0.
    Spans on a parent cycle have no root above them: the earliest of each such group is walked
    as if it were a root, so every span appears exactly once. Tops are walked in start order.

    The walk is a Python loop per span, over compact arrays rather than lists and dicts of
    Python ints (those took hundreds of MB on a trace of 1M spans): each span's children are
    one slice of `kids`, found in columns.
    """
    n = len(parents)
    kids, first = _children(parents, is_root)

    def walk(tops) -> tuple[array, array]:
        return _walk(tops, kids, first, n)

    roots = is_root.arg_true().to_list()
    order, depths = walk(roots)
    if len(order) < n:  # spans no root reaches: each cycle's earliest unreached one is a top
        reached = bytearray(n)
        for row in order:
            reached[row] = 1
        tops = list(roots)
        for row in range(n):
            if not reached[row]:
                tops.append(row)
                for below_row in walk([row])[0]:
                    reached[below_row] = 1
        # Rows are sorted by (trace, start), so sorting the tops by row keeps that order.
        order, depths = walk(sorted(tops))
    return pl.DataFrame(
        {"row": order, "span_order": range(len(order)), "depth": depths},
        schema={"row": pl.UInt32, "span_order": pl.Int64, "depth": pl.Int64},
    )
