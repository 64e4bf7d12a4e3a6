"""Spans -> traces -> sessions (contract §3), in polars.

- A trace is all spans sharing a trace_id; a root is a span without a parent in the data.
- A trace belongs to one session: its root's session id, else the earliest span's that has one.
- Usage is counted once: on the deepest spans that carry it. A span whose descendant (in the same
  trace) carries usage is a wrapper repeating its children's totals, and its own usage is ignored.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sessions_cli.frames import sorted_stack
from sessions_cli.kinds import CostMode
from sessions_cli.model import pricing
from sessions_cli.notices import Notice
from sessions_cli.read.keys import MODEL_CALL_NAME_SUFFIXES, MODEL_CALL_OPERATIONS
from sessions_cli.read.schema import TOKEN_PARTS
from sessions_cli.store.traces import Rows, TraceStore, in_start_order

SESSION_FIELDS = [
    "session_id", "session_name", "user_id", "users", "start", "end", "start_unix_ms",
    "end_unix_ms", "duration_ms",
    "trace_count", "span_count", "llm_call_count", "input_tokens", "output_tokens",
    "total_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd",
    "cost_source", "unpriced_call_count", "error_count",
    "failed_trace_count", "models", "tags", "metadata", "session_name_source",
]  # fmt: skip
TRACE_FIELDS = [
    "trace_id", "trace_name", "start", "end", "start_unix_ms", "end_unix_ms", "duration_ms",
    "span_count", "llm_call_count",
    "input_tokens", "output_tokens", "total_tokens", "cost_usd", "status", "models",
]  # fmt: skip
# Traces without a session (`list --orphans`): the trace fields plus who ran them.
ORPHAN_FIELDS = [*TRACE_FIELDS[:2], "user_id", *TRACE_FIELDS[2:]]

_USAGE = ("input_tokens", "output_tokens", "total_tokens", "cost_usd")
_TOKENS = ("input_tokens", "output_tokens", "total_tokens", *TOKEN_PARTS)
# An LLM call that used tokens but has no cost: its cost is unknown, not $0 (contract §3). A
# call of zero tokens costs nothing at any per-token price.
UNPRICED_CALL = (
    pl.col("is_llm_call")
    & pl.col("call_cost_usd").is_null()
    & pl.any_horizontal((pl.col(c) > 0).fill_null(False) for c in _TOKENS)
)


@dataclass(frozen=True)
class Model:
    spans: pl.DataFrame | None  # annotated spans (is_root, counted, ...); None when built by group
    sessions: pl.DataFrame  # one row per session, SESSION_FIELDS
    trace_store: TraceStore  # one row per trace, with its session_id (null: no session)
    notices: tuple[Notice, ...] = ()  # conflicts in the data the contract resolves
    # Annotated spans of some traces, when `spans` was not kept (read back from a SpanStore).
    load_spans: Callable[[list[str]], pl.DataFrame] | None = None

    @property
    def traces(self) -> pl.DataFrame:
        """Every trace, in start order (all of them at once: for tests and checks)."""
        return self.trace_store.everything()

    @property
    def orphans(self) -> pl.DataFrame:
        return self.trace_store.orphans()

    def traces_of(self, session_id: str) -> pl.DataFrame:
        """One session's traces, in start order."""
        return self.trace_store.of_session(session_id)

    def spans_of(self, trace_ids: list[str]) -> pl.DataFrame:
        """The annotated spans of these traces (one session's, for a timeline)."""
        if self.spans is not None:
            wanted = pl.Series(trace_ids, dtype=pl.String)
            return self.spans.filter(pl.col("trace_id").is_in(wanted))
        assert self.load_spans is not None  # a model holds its spans or a way to read them
        return self.load_spans(trace_ids)


def build(
    spans: pl.DataFrame | Iterable[pl.DataFrame],
    *,
    cost_mode: CostMode = "auto",
    prices: dict[str, tuple[float, float]] | None = None,
    load_spans: Callable[[list[str]], pl.DataFrame] | None = None,
    spill_dir: Path | None = None,
    workers: int = 2,
) -> Model:
    """The model of deduplicated spans: one frame, or groups of frames in which no trace is
    split (a SpanStore's). Every trace figure is computed within a group, and only two groups'
    spans are held at a time (and one being read); with groups, spans are not kept:
    `load_spans` reads some back. With `spill_dir`, trace rows wait there, and sessions are
    built a bucket of them at a time.
    """
    prices = prices or {}
    found: Counter = Counter()
    traces = TraceStore(spill_dir)
    kept = None

    def summary(group: pl.DataFrame) -> tuple[Rows, Counter]:
        noticed: Counter = Counter()
        annotated = annotate(group, cost_mode=cost_mode, prices=prices, notices=noticed)
        return traces.prepare(trace_table(annotated, noticed), _with_metadata(annotated)), noticed

    def add(done: tuple[Rows, Counter]) -> None:
        rows, noticed = done
        traces.add(rows)
        found.update(noticed)

    with ThreadPoolExecutor(workers, thread_name_prefix="sessions-model") as pool:
        if isinstance(spans, pl.DataFrame):
            kept = annotate(spans, cost_mode=cost_mode, prices=prices, notices=found)
            traces.add(traces.prepare(trace_table(kept, found), _with_metadata(kept)))
        else:
            # A group's polars calls do not keep every core busy on their own: every worker
            # has a group and one more is queued, so a worker that finishes starts on it at
            # once instead of waiting for the next group to be read (it did, with one fewer).
            for done in _in_flight(pool, summary, spans, waiting=workers):
                add(done)
        # Sessions are built a bucket at a time (one, when the trace rows stayed in memory),
        # `workers` buckets at once: reading one back costs little beside its table.
        tables = list(_in_flight(pool, _sessions_of, traces.buckets(), waiting=workers))
    sessions = sorted_stack(tables, by=("start", "session_id"))

    def reload(trace_ids: list[str]) -> pl.DataFrame:
        assert load_spans is not None  # only handed out when there is one
        return annotate(load_spans(trace_ids), cost_mode=cost_mode, prices=prices)

    return Model(kept, sessions, traces, _notices(found), reload if load_spans else None)


def _in_flight(pool: ThreadPoolExecutor, work: Callable, items: Iterable, *, waiting: int):
    """`work` of each item, in order, done on `pool`; the next item is taken from `items`
    (read) while at most `waiting` are not handed back: items are frames, held until done."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        del item  # the pool holds it until its work is done
        while len(pending) > waiting:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _sessions_of(bucket: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
    traces, metadata = bucket
    return session_table(metadata, in_start_order(traces))


def _with_metadata(spans: pl.DataFrame) -> pl.DataFrame:
    """The few spans that carry metadata, with what session metadata needs of them."""
    return spans.filter(pl.col("metadata").list.len() > 0).select(
        "trace_id", "span_id", "start_time_unix_nano", "metadata"
    )


def _notices(found: Counter) -> tuple[Notice, ...]:
    kinds = ("own_parent", "cycles", "session_conflicts")
    return tuple(Notice(kind, found[kind]) for kind in kinds if found[kind])


def annotate(
    spans: pl.DataFrame, *, cost_mode: CostMode, prices: dict, notices: Counter | None = None
) -> pl.DataFrame:
    """Mark roots, the spans whose usage counts, LLM calls, and each call's cost."""
    notices = Counter() if notices is None else notices
    # A span that names itself as parent has no parent: it is a root.
    own_parent = spans.select((pl.col("parent_span_id") == pl.col("span_id")).sum()).item()
    if own_parent:
        notices["own_parent"] += own_parent
    spans = spans.with_columns(
        pl.when(pl.col("parent_span_id") != pl.col("span_id"))
        .then("parent_span_id")
        .alias("parent_span_id")
    )
    # Each span's parent as a row number (one join); the tree is then walked by indexing.
    parent_row, cycles = _break_cycles(spans, parent_rows(spans))
    if cycles:
        notices["cycles"] += cycles

    has_usage = pl.any_horizontal(pl.col(c).is_not_null() for c in _USAGE)
    usage_rows = spans.select(pl.arg_where(has_usage)).to_series()
    spans = spans.with_columns(
        parent_row.is_null().alias("is_root"),
        _ancestors(parent_row, usage_rows).alias("has_usage_below"),
    )

    operation = pl.col("operation").cast(pl.String).str.to_lowercase()
    name = pl.col("name").cast(pl.String)
    model_call = operation.is_in(MODEL_CALL_OPERATIONS) | pl.any_horizontal(
        name.str.ends_with(s) for s in MODEL_CALL_NAME_SUFFIXES
    )
    counted = has_usage & ~pl.col("has_usage_below")
    failed_call = (
        model_call.fill_null(False)
        & (pl.col("status") == "error")
        & ~has_usage
        & ~pl.col("has_usage_below")
    )
    spans = spans.with_columns(counted=counted, is_llm_call=counted | failed_call)
    # Lazily: only the priced columns are filtered, not every column of the spans.
    calls = pricing.price_calls(
        spans.lazy()
        .with_row_index("row")
        .filter("is_llm_call")
        .select("row", "model", "provider", *pricing.PRICED_TOKENS, "cost_usd")
        .collect(),
        cost_mode,
        prices,
    )
    cost = pl.repeat(None, spans.height, dtype=pl.Float64, eager=True).alias("call_cost_usd")
    source = pl.repeat(None, spans.height, dtype=pl.String, eager=True).alias("call_cost_source")
    call_rows = calls.get_column("row")
    return spans.with_columns(
        cost.scatter(call_rows, calls.get_column("call_cost_usd")),
        source.scatter(call_rows, calls.get_column("call_cost_source")),
    )


def parent_rows(spans: pl.DataFrame) -> pl.Series:
    """Each span's parent as a row number; null for a root.

    Joined on a 64-bit hash of (trace id, span id), not on the two strings, whose hash table
    was most of the model's memory on a trace of 1M spans. Each match is then checked against
    the ids themselves, and on any doubt (a collision: a wrong match, or a key matched twice)
    the strings are joined instead, so the answer is exact either way.
    """
    ids = spans.select("trace_id", "span_id", "parent_span_id")
    own = pl.struct("trace_id", "span_id").hash()
    of_parent = pl.struct("trace_id", pl.col("parent_span_id").alias("span_id")).hash()
    child = ids.select(pl.when(pl.col("parent_span_id").is_not_null()).then(of_parent).alias("k"))
    parents = ids.select(own.alias("k")).with_row_index("p")
    joined = child.join(parents, on="k", how="left", maintain_order="left")
    if joined.height == ids.height:
        found = joined.get_column("p")
        checked = ids.select(
            (pl.col("trace_id").gather(found) == pl.col("trace_id"))
            & (pl.col("span_id").gather(found) == pl.col("parent_span_id"))
        ).to_series()
        if checked.fill_null(True).all():
            return found
    rows = ids.select("trace_id", pl.col("span_id").alias("parent_span_id")).with_row_index("p")
    exact = ids.join(rows, on=["trace_id", "parent_span_id"], how="left", maintain_order="left")
    return exact.get_column("p")


def _break_cycles(spans: pl.DataFrame, parent_row: pl.Series) -> tuple[pl.Series, int]:
    """Parents with every cycle cut at its earliest span (then by span id), and how many.

    Pointer doubling finds the rows whose ancestry never reaches a root (on or under a cycle)
    in log2(depth) gathers; only those rows, normally none, are walked in Python.
    """
    jump = parent_row
    for _ in range(64):
        if jump.null_count() == len(jump):
            return parent_row, 0
        further = jump.gather(jump)
        if further.null_count() == jump.null_count() and (further == jump).fill_null(True).all():
            break
        jump = further
    stuck = jump.is_not_null()
    if not stuck.any():
        return parent_row, 0
    rows = stuck.arg_true().to_list()
    parents = dict(zip(rows, parent_row.gather(rows).to_list(), strict=True))
    order = spans.select("start_time_unix_nano", "span_id")
    key = {r: order.row(r) for r in rows}
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    leaders = []
    for row in rows:
        path = []
        while row is not None and row in parents and row not in state:
            state[row] = 1
            path.append(row)
            row = parents[row]
        if row is not None and state.get(row) == 1:  # closed a new cycle at `row`
            cycle = path[path.index(row) :]
            leaders.append(min(cycle, key=lambda r: (key[r][0] is None, key[r])))
        for r in path:
            state[r] = 2
    cut = parent_row.clone()
    cut.scatter(leaders, None)
    return cut, len(leaders)


def _ancestors(parent_row: pl.Series, start: pl.Series) -> pl.Series:
    """True for every ancestor of the `start` rows: one gather per tree level. A row already
    marked is not walked again, so a parent cycle (a -> b -> a) ends too. Past
    `_LEVELS_IN_POLARS` levels (a chain of thousands of spans, one per level) the few rows left
    are walked in Python: each level costs polars calls whatever its size, each row a step."""
    marked = pl.repeat(False, len(parent_row), dtype=pl.Boolean, eager=True)
    frontier = parent_row.gather(start).drop_nulls().unique()
    for _ in range(_LEVELS_IN_POLARS):
        if frontier.is_empty():
            return marked
        frontier = frontier.filter(~marked.gather(frontier))
        marked.scatter(frontier, True)
        frontier = parent_row.gather(frontier).drop_nulls().unique()
    if frontier.is_empty():
        return marked
    parents, seen = parent_row.to_list(), marked.to_list()
    for row in frontier.to_list():
        while row is not None and not seen[row]:
            seen[row] = True
            row = parents[row]
    return pl.Series(seen, dtype=pl.Boolean)


_LEVELS_IN_POLARS = 64


def _text(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String)


def _first(column: str) -> pl.Expr:
    """The first value in the contract's order: roots first, then by start (trace_table sorts
    the spans so)."""
    return _text(column).drop_nulls().first()


def _session_conflicts(spans: pl.DataFrame) -> int:
    """How many traces carry more than one session id."""
    return (
        spans.select("trace_id", "session_id")
        .drop_nulls()
        .group_by("trace_id")
        .agg(pl.col("session_id").n_unique())
        .filter(pl.col("session_id") > 1)
        .height
    )


def trace_table(spans: pl.DataFrame, notices: Counter | None = None) -> pl.DataFrame:
    """One row per trace. Text comes out as String, whatever the span columns' types."""
    conflicts = _session_conflicts(spans)
    if conflicts and notices is not None:
        notices["session_conflicts"] += conflicts
    counted, llm = pl.col("counted"), pl.col("is_llm_call")
    text, first = _text, _first
    is_error = pl.col("status") == "error"

    # One sort, then one pass: every first-in-order value and list is an aggregate of it (a
    # filter, sort and join per field took twice as long). Columns no aggregate reads are
    # dropped first: the sort moves every column it is given.
    # Groups keep their rows' order, so the trace id need not be sorted on.
    unread = ("metadata", "parent_span_id", "status_message", "provider", "operation",
              "cost_usd", "has_usage_below")  # fmt: skip
    in_order = spans.drop(unread).sort(
        "is_root",
        "start_time_unix_nano",
        "span_id",
        descending=[True, False, False],
        nulls_last=True,
    )
    traces = in_order.group_by("trace_id").agg(
        pl.col("start_time_unix_nano").min().alias("start_ns"),
        pl.col("end_time_unix_nano").max().alias("end_ns"),
        pl.len().alias("span_count"),
        text("name").get(pl.col("start_time_unix_nano").arg_min()).alias("first_name"),
        llm.sum().alias("llm_call_count"),
        *(_token_sum(pl.when(counted).then(c)).alias(c) for c in _TOKENS),
        # Only LLM calls have a call cost (annotate).
        pricing.exact(pl.col("call_cost_usd")).sum().alias("cost_exact"),
        (pl.col("call_cost_source") == "attribute").sum().alias("attribute_priced"),
        (pl.col("call_cost_source") == "price_table").sum().alias("table_priced"),
        UNPRICED_CALL.sum().alias("unpriced_call_count"),
        is_error.sum().alias("error_count"),
        pl.col("is_root").any().alias("has_root"),
        (pl.col("is_root") & is_error).any().alias("root_failed"),
        # A trace's users and tags in no order: only the sessions' unions read them, and sort
        # them (a sort in every group cost more than the rest of the lists).
        pl.col("user_id").drop_nulls().unique().alias("users"),
        pl.col("tags").list.explode(keep_nulls=False, empty_as_null=False).drop_nulls().unique(),
        first("session_id").alias("session_id"),
        first("session_name").alias("session_name"),
        first("user_id").alias("user_id"),
        first("trace_name").alias("named"),
        text("name").filter(pl.col("is_root")).drop_nulls().first().alias("root_name"),
    )
    traces = traces.join(_calls_by_model(spans), on="trace_id", how="left")
    no_models = pl.lit([], pl.List(pl.String))
    failed = pl.when(pl.col("has_root")).then("root_failed").otherwise(pl.col("error_count") > 0)
    # Not sorted here: the TraceStore puts traces in start order as it hands them out.
    return traces.with_columns(
        pl.col("users").cast(pl.List(pl.String)),
        pl.col("models").fill_null(no_models),  # a trace without LLM calls
        pl.coalesce("named", "root_name", "first_name").alias("trace_name"),
        _instant("start_ns").alias("start"),
        _instant("end_ns").alias("end"),
        *_unix_ms(),
        _duration_ms().alias("duration_ms"),
        _known_cost().alias("cost_usd"),
        pl.when(failed).then(pl.lit("error")).otherwise(pl.lit("ok")).alias("status"),
    ).drop("first_name", "named", "root_name", "has_root", "root_failed")  # written to disk


# Per (model, provider), what a trace's or session's LLM calls used: `stats --by model` and
# `--by provider` give each call's tokens and cost to its own model, so the groups add up.
# `model_traces` and `provider_traces` count each trace once for its model and once for its
# provider (on its first pair of each, in model then provider order): a model's or a
# provider's rows add up to how many traces have calls of it, whatever the pairs.
_CALL_SUMS = (
    "llm_call_count", *_TOKENS, "cost_exact", "priced", "unpriced_call_count",
    "model_traces", "provider_traces",
)  # fmt: skip


def _calls_by_model(spans: pl.DataFrame) -> pl.DataFrame:
    """trace_id, `calls_by_model`: a list of one struct per (model, provider) of its calls, and
    `models`: the distinct models of its calls, in order."""
    llm, counted = pl.col("is_llm_call"), pl.col("counted")
    per_model = (
        spans.lazy()  # only the columns read here are filtered
        .filter(llm)
        .group_by("trace_id", pl.col("model").cast(pl.String), pl.col("provider").cast(pl.String))
        .agg(
            pl.len().cast(pl.UInt32).alias("llm_call_count"),
            *(_token_sum(pl.when(counted).then(c)).alias(c) for c in _TOKENS),
            pricing.exact(pl.col("call_cost_usd")).sum().alias("cost_exact"),
            pl.col("call_cost_source").is_not_null().sum().alias("priced"),
            UNPRICED_CALL.sum().alias("unpriced_call_count"),
        )
        .collect()
    )
    # In model then provider order, a trace's first pair of a model counts it for the model,
    # its first pair of a provider for the provider.
    once = per_model.sort(_PAIR, nulls_last=True).with_columns(
        pl.struct("trace_id", "model").is_first_distinct().cast(pl.UInt32).alias("model_traces"),
        pl.struct("trace_id", "provider")
        .is_first_distinct()
        .cast(pl.UInt32)
        .alias("provider_traces"),
    )
    return _structs_in_order(once, "trace_id", models=True)


_PAIR = ("model", "provider")


def _structs_in_order(per_model: pl.DataFrame, key: str, *, models: bool = False) -> pl.DataFrame:
    """`key`, and the structs of its rows (one per model and provider) as `calls_by_model`, in
    the rows' order: one sort of all the rows (by model, then provider), whose order each
    group keeps; a sort inside every group took three times as long. With `models`, also the
    distinct models, in that order: the first pair of each model, as `model_traces` marks it."""
    lists = [pl.struct(*_PAIR, *_CALL_SUMS).alias("calls_by_model")]
    if models:
        first = pl.col("model_traces") == 1
        lists.append(pl.col("model").filter(first).drop_nulls().alias("models"))
    return per_model.group_by(key).agg(lists)


def _sessions_by_model(traces: pl.DataFrame) -> pl.DataFrame:
    """session_id, and `calls_by_model` summed over its traces (`model_traces` and
    `provider_traces` too: each trace counted once per model and once per provider was
    counted so in its own calls, which spares a count of distinct traces per session)."""
    calls = (
        traces.select("session_id", "calls_by_model")
        .explode("calls_by_model")
        .drop_nulls("calls_by_model")
        .unnest("calls_by_model")
    )
    return (
        calls.group_by("session_id", *_PAIR)
        .agg(*(pl.col(c).sum() for c in _CALL_SUMS))
        .sort(_PAIR, nulls_last=True)
        .pipe(_structs_in_order, "session_id")
    )


def session_table(spans: pl.DataFrame, traces: pl.DataFrame) -> pl.DataFrame:
    """Sessions of `traces`, which come in start order (a session's name and user are its
    first trace's); `spans`: those with metadata, with their session_id."""
    in_session = traces.filter(pl.col("session_id").is_not_null())
    sessions = in_session.group_by("session_id", maintain_order=True).agg(
        pl.col("session_name").drop_nulls().first().alias("named"),
        pl.col("trace_name").drop_nulls().first().alias("first_trace_name"),
        pl.col("user_id").drop_nulls().first(),
        pl.col("users").pipe(_union),
        pl.col("start_ns").min(),
        pl.col("end_ns").max(),
        pl.len().alias("trace_count"),
        *(pl.col(c).sum() for c in (
            "span_count", "llm_call_count", *_TOKENS, "cost_exact", "attribute_priced",
            "table_priced", "unpriced_call_count", "error_count",
        )),
        (pl.col("status") == "error").sum().alias("failed_trace_count"),
        pl.col("models").pipe(_union),
        pl.col("tags").pipe(_union),
    )  # fmt: skip
    attribute, table = pl.col("attribute_priced") > 0, pl.col("table_priced") > 0
    named = pl.col("named").is_not_null()
    sessions = sessions.with_columns(
        # No session name attribute: the first trace's name, marked as such (contract §2).
        pl.coalesce("named", "first_trace_name").alias("session_name"),
        pl.when(named)
        .then(pl.lit("attribute"))
        .when(pl.col("first_trace_name").is_not_null())
        .then(pl.lit("trace"))
        .alias("session_name_source"),
        _instant("start_ns").alias("start"),
        _instant("end_ns").alias("end"),
        *_unix_ms(),
        _duration_ms().alias("duration_ms"),
        _known_cost().alias("cost_usd"),
        pl.when(attribute & table)
        .then(pl.lit("mixed"))
        .when(attribute)
        .then(pl.lit("attribute"))
        .when(table)
        .then(pl.lit("price_table"))
        .otherwise(pl.lit("none"))
        .alias("cost_source"),
    )
    sessions = (
        sessions.join(_session_metadata(spans), on="session_id", how="left", maintain_order="left")
        .with_columns(pl.col("metadata").fill_null(pl.lit([], spans.schema["metadata"])))
        .join(_sessions_by_model(in_session), on="session_id", how="left", maintain_order="left")
    )
    return sessions.select(*SESSION_FIELDS, "calls_by_model")


def _session_metadata(spans: pl.DataFrame) -> pl.DataFrame:
    """Per key, the value on the earliest span that has it (ties: by trace and span id, so
    that the answer does not depend on reading order). `spans`: those with metadata, with their
    trace's session_id (TraceStore). The spans are put in that order before their pairs are
    unpacked: sorting the unpacked pairs with their text raised the peak by 140 MB on 1M
    spans, this by 90 MB."""
    return (
        spans.lazy()
        .sort("start_time_unix_nano", "trace_id", "span_id", nulls_last=True)
        .select("session_id", "metadata")
        .explode("metadata")
        .select("session_id", pl.col("metadata").struct.unnest())
        .unique(["session_id", "key"], keep="first", maintain_order=True)
        .sort("session_id", "key")
        .group_by("session_id")
        .agg(pl.struct("key", "value").alias("metadata"))
        .collect()
    )


def _union(lists: pl.Expr) -> pl.Expr:
    """The sorted distinct values of a list column, across the rows of a group."""
    return lists.list.explode(keep_nulls=False, empty_as_null=False).drop_nulls().unique().sort()


def _token_sum(tokens: pl.Expr) -> pl.Expr:
    """A sum of token counts that cannot wrap: each count is below 2^62 (read/otlp.py), and
    128 bits hold more of them than any export has spans. (The counts that do not count are
    given as nulls, not filtered out: a filter in every group cost twice the sum.)"""
    return tokens.cast(pl.Int128).sum()


def _known_cost() -> pl.Expr:
    """The sum of the known costs; null (unknown, not $0) when there are LLM calls with tokens
    and none of them is priced. With some priced and some not, the sum is a lower bound, and
    `unpriced_call_count` says so."""
    priced = pl.col("attribute_priced") + pl.col("table_priced")
    unknown = (priced == 0) & (pl.col("unpriced_call_count") > 0)
    return pl.when(~unknown).then(pl.col("cost_exact").cast(pl.Float64))


def _duration_ms() -> pl.Expr:
    # Nanosecond differences are exact; rounding to 6 decimals only drops float noise.
    return ((pl.col("end_ns") - pl.col("start_ns")) / 1e6).round(6)


def _unix_ms() -> list[pl.Expr]:
    """start_unix_ms, end_unix_ms: whole milliseconds since the epoch, for tools that read
    neither nanoseconds nor ISO text (jq's `todate`, spreadsheets, JavaScript's Date)."""
    return [
        (pl.col(f"{side}_ns") // 1_000_000).alias(f"{side}_unix_ms") for side in ("start", "end")
    ]


def _instant(column: str) -> pl.Expr:
    return pl.from_epoch(pl.col(column), time_unit="ns").dt.replace_time_zone("UTC")
