"""Two exports compared, metric by metric and group by group, with regression thresholds for CI
(`sessions diff BASE NEW`). Frames in, frames out.

What one group's "session" is depends on the grouping. By user, tag or meta:KEY (or overall) it
is the whole session, in each of its groups, as `stats --by` does. By trace_name it is the part
of a session made of the traces of that name; by model, the session's calls of that model
(their tokens and cost, as `stats --by model` splits them) and the traces that made them (their
duration and errors). So a group compares like with like: the `checkout` workflow's cost per
session before and after, not the cost of whole sessions that happened to run it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import polars as pl

from sessions_cli.query.stats import group_key, known_sum, parse_duration_ms

GROUPINGS = ("trace_name", "model", "user", "tag", "meta:KEY")

MetricUnit = Literal["count", "usd", "tokens", "ms", "fraction"]
# Every metric compared, in report order, with what it measures in.
METRICS: dict[str, MetricUnit] = {
    "sessions": "count",
    "cost_total": "usd",
    "cost_mean": "usd",
    "cost_p50": "usd",
    "cost_p95": "usd",
    "tokens_total": "tokens",
    "tokens_mean": "tokens",
    "tokens_p95": "tokens",
    "duration_p50": "ms",
    "duration_p95": "ms",
    "llm_calls_mean": "count",
    "error_rate": "fraction",
    "unpriced_calls": "count",
}
# Metrics that are whole numbers, shown and written as integers.
INTEGER_METRICS = ("sessions", "tokens_total", "unpriced_calls")
COST_METRICS = tuple(m for m, unit in METRICS.items() if unit == "usd")
DEFAULT_MIN_SESSIONS = 5
# Comparisons allow for float noise far below anything a limit is written in: +10% stays 10%.
_DECIMALS = 9

Status = Literal["both", "added", "removed"]


@dataclass(frozen=True)
class Threshold:
    """`--max-increase METRIC=LIMIT`: the most METRIC may grow from BASE to NEW."""

    metric: str
    text: str  # as given: 10%, 500ms, 2pp, $0.05
    relative: bool  # True: `value` is a percentage of the base; False: in the metric's unit
    value: float


def parse_threshold(text: str) -> Threshold:
    """`cost_total=10%`, `cost_p95=$0.02`, `duration_p95=500ms`, `error_rate=2pp`,
    `tokens_mean=1500`; ValueError saying what was expected."""
    metric, sep, limit = (part.strip() for part in text.partition("="))
    if not sep or not metric or not limit:
        raise ValueError(f"expected METRIC=LIMIT such as cost_total=10%, got {text!r}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}")
    if limit.endswith("%"):
        return Threshold(metric, limit, True, _non_negative(limit[:-1], text))
    unit = METRICS[metric]
    if unit == "ms":
        try:
            return Threshold(metric, limit, False, parse_duration_ms(limit))
        except ValueError:
            raise ValueError(
                f"{metric}: expected a percentage (10%) or a duration (500ms, 2s, 1m), "
                f"got {limit!r}"
            ) from None
    if unit == "usd":
        amount = re.sub(r"(?i)^\$|usd$", "", limit).strip()
        return Threshold(metric, limit, False, _non_negative(amount, text, "an amount ($0.05)"))
    if unit == "fraction":
        if limit.endswith("pp"):  # percentage points: the rate itself moves by so much
            return Threshold(metric, limit, False, _non_negative(limit[:-2], text) / 100)
        return Threshold(metric, limit, False, _non_negative(limit, text, "points (2pp)"))
    return Threshold(metric, limit, False, _non_negative(limit, text, "a number (1500)"))


def _non_negative(number: str, text: str, absolute: str = "") -> float:
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        kinds = "a percentage (10%)" + (f" or {absolute}" if absolute else "")
        raise ValueError(f"expected {kinds}, at least 0, in {text!r}")
    return value


def check_grouping(by: str) -> str:
    if by in GROUPINGS[:-1] or (by.startswith("meta:") and len(by) > len("meta:")):
        return by
    raise ValueError(f"expected one of {', '.join(GROUPINGS)}, got {by!r}")


# ---------------------------------------------------------------------------------------------
# One side's metrics


def units(sessions: pl.DataFrame, traces: pl.DataFrame | None, by: str | None) -> pl.DataFrame:
    """One row per (group, session) with what that session contributes to the group: cost_usd
    (null: unknown), total_tokens, duration_ms, llm_calls, has_error, unpriced_calls. `traces`
    (those of `sessions`) are needed by trace_name and by model only."""
    if by in ("trace_name", "model"):
        assert traces is not None  # the CLI reads them for these groupings
        mine = traces.join(sessions.select("session_id"), on="session_id", how="semi")
        return _trace_units(mine) if by == "trace_name" else _model_units(mine)
    key = pl.lit([None], pl.List(pl.String)) if by is None else group_key(by, None)
    return sessions.select(
        key.alias("group"),
        "session_id",
        "cost_usd",
        pl.col("total_tokens"),
        pl.col("duration_ms").cast(pl.Float64),
        pl.col("llm_call_count").alias("llm_calls"),
        (pl.col("error_count") > 0).alias("has_error"),
        pl.col("unpriced_call_count").alias("unpriced_calls"),
    ).explode("group")


def _span_of(start: str, end: str) -> pl.Expr:
    """From the earliest start to the latest end of a group's traces, in ms."""
    return ((pl.col(end).max() - pl.col(start).min()) / 1e6).alias("duration_ms")


def _trace_units(traces: pl.DataFrame) -> pl.DataFrame:
    return traces.group_by(pl.col("trace_name").alias("group"), "session_id").agg(
        known_sum(pl.col("cost_usd")).alias("cost_usd"),
        pl.col("total_tokens").sum(),
        _span_of("start_ns", "end_ns"),
        pl.col("llm_call_count").sum().alias("llm_calls"),
        (pl.col("error_count").sum() > 0).alias("has_error"),
        pl.col("unpriced_call_count").sum().alias("unpriced_calls"),
    )


def _model_units(traces: pl.DataFrame) -> pl.DataFrame:
    calls = (
        traces.select(
            "session_id", "trace_id", "start_ns", "end_ns", "error_count", "calls_by_model"
        )
        .explode("calls_by_model")
        .drop_nulls("calls_by_model")
        .unnest("calls_by_model")
    )
    priced, unpriced = pl.col("priced").sum(), pl.col("unpriced_call_count").sum()
    # A trace with calls of one model under two providers is one row per pair: its duration
    # and errors count once for the model.
    per_trace = pl.col("trace_id").is_first_distinct().over("session_id", "model")
    return calls.group_by(pl.col("model").alias("group"), "session_id").agg(
        pl.when((priced > 0) | (unpriced == 0))
        .then(pl.col("cost_exact").sum())
        .cast(pl.Float64)
        .alias("cost_usd"),
        pl.col("total_tokens").sum(),
        _span_of("start_ns", "end_ns"),
        pl.col("llm_call_count").sum().cast(pl.Int64).alias("llm_calls"),
        (pl.col("error_count").filter(per_trace).sum() > 0).alias("has_error"),
        unpriced.alias("unpriced_calls"),
    )


def metrics(units: pl.DataFrame, by: str | None) -> pl.DataFrame:
    """One row per group (overall: exactly one, also with no sessions), with every metric of
    METRICS, as Float64 (null: unknown)."""
    cost, tokens, duration = pl.col("cost_usd"), pl.col("total_tokens"), pl.col("duration_ms")
    as_float = tokens.cast(pl.Float64)
    aggregates = [
        pl.col("session_id").n_unique().cast(pl.Float64).alias("sessions"),
        known_sum(cost).alias("cost_total"),
        cost.mean().alias("cost_mean"),
        cost.quantile(0.5, "linear").alias("cost_p50"),
        cost.quantile(0.95, "linear").alias("cost_p95"),
        tokens.sum().cast(pl.Float64).alias("tokens_total"),
        as_float.mean().alias("tokens_mean"),
        as_float.quantile(0.95, "linear").alias("tokens_p95"),
        duration.quantile(0.5, "linear").alias("duration_p50"),
        duration.quantile(0.95, "linear").alias("duration_p95"),
        pl.col("llm_calls").cast(pl.Float64).mean().alias("llm_calls_mean"),
        pl.col("has_error").cast(pl.Float64).mean().alias("error_rate"),
        pl.col("unpriced_calls").sum().cast(pl.Float64).alias("unpriced_calls"),
    ]
    if by is None:
        return units.select(pl.lit(None, pl.String).alias("group"), *aggregates)
    return units.group_by("group").agg(*aggregates)


# ---------------------------------------------------------------------------------------------
# The two sides compared

# One row per (group, metric) of a comparison.
ROW_FIELDS = ["group", "status", "gated", "metric", "base", "new", "change", "change_pct",
              "limit", "reason", "warned"]  # fmt: skip
Verdict = Literal["pass", "fail", "not gated"]


@dataclass(frozen=True)
class DiffReport:
    """Everything `sessions diff` reports, computed once, rendered in any format."""

    by: str | None
    min_sessions: int
    thresholds: tuple[Threshold, ...]
    rows: pl.DataFrame  # ROW_FIELDS, groups with breaches first, metrics in METRICS order

    @property
    def breaches(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("reason").is_not_null())

    @property
    def warnings(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("warned"))

    @property
    def verdict(self) -> Verdict | None:
        """fail: a threshold was crossed (or could not be checked); pass: at least one was
        checked and none crossed; not gated: no group had enough sessions on both sides;
        None: no thresholds were given."""
        if not self.thresholds:
            return None
        if not self.breaches.is_empty():
            return "fail"
        checked = self.rows.filter(pl.col("gated") & pl.col("limit").is_not_null())
        return "pass" if not checked.is_empty() else "not gated"


def compare(
    base: pl.DataFrame,
    new: pl.DataFrame,
    *,
    by: str | None,
    thresholds: tuple[Threshold, ...] = (),
    min_sessions: int = DEFAULT_MIN_SESSIONS,
    allow_unpriced: bool = False,
    warn_at: float | None = None,
) -> DiffReport:
    """BASE's and NEW's `metrics` side by side, every threshold checked.

    A group on one side only is listed (added or removed), never gated; so is a group with
    fewer than `min_sessions` sessions on either side. A value equal to its limit holds. A
    relative limit on a base of 0 is crossed by any increase. A cost threshold over a group
    with unpriced calls on either side cannot be checked (reason `unpriced`) unless
    `allow_unpriced`, when the known costs are compared; a value still unknown is `unknown`.
    `warn_at` (a fraction of each limit) marks changes close to their limit."""
    names = list(METRICS)

    def long(side: pl.DataFrame, name: str) -> pl.DataFrame:
        return side.unpivot(index="group", on=names, variable_name="metric", value_name=name)

    def per_group(side: pl.DataFrame, name: str) -> pl.DataFrame:
        return side.select(
            "group",
            pl.col("sessions").alias(f"{name}_sessions"),
            (pl.col("unpriced_calls") > 0).alias(f"{name}_unpriced"),
        )

    both = dict(on="group", how="full", nulls_equal=True, coalesce=True)
    sides = per_group(base, "base").join(per_group(new, "new"), **both)  # type: ignore[arg-type]
    limits = pl.DataFrame(
        {
            "metric": [t.metric for t in thresholds],
            "limit": [t.text for t in thresholds],
            "relative": [t.relative for t in thresholds],
            "limit_value": [t.value for t in thresholds],
        },
        schema={
            "metric": pl.String,
            "limit": pl.String,
            "relative": pl.Boolean,
            "limit_value": pl.Float64,
        },
    )
    rows = (
        long(base, "base")
        .join(long(new, "new"), on=["group", "metric"], how="full", nulls_equal=True, coalesce=True)
        .join(sides, on="group", how="left", nulls_equal=True)
        .join(limits, on="metric", how="left")
        .with_columns(_changes())
        .with_columns(_verdicts(min_sessions, allow_unpriced, warn_at))
    )
    return DiffReport(by, min_sessions, tuple(thresholds), _in_order(rows).select(ROW_FIELDS))


def _changes() -> list[pl.Expr]:
    base, new = pl.col("base"), pl.col("new")
    change = new - base
    return [
        pl.when(pl.col("base_sessions").is_null())
        .then(pl.lit("added"))
        .when(pl.col("new_sessions").is_null())
        .then(pl.lit("removed"))
        .otherwise(pl.lit("both"))
        .alias("status"),
        change.alias("change"),
        pl.when((base == 0) & (new == 0))
        .then(pl.lit(0.0))
        .when(base != 0)
        .then(change / base.abs() * 100)
        .alias("change_pct"),
    ]


def _verdicts(min_sessions: int, allow_unpriced: bool, warn_at: float | None) -> list[pl.Expr]:
    base, new, limit = pl.col("base"), pl.col("new"), pl.col("limit_value")
    relative = pl.col("relative")
    change_pct, change = pl.col("change_pct"), pl.col("change")
    gated = (pl.col("status") == "both") & (
        pl.min_horizontal("base_sessions", "new_sessions") >= min_sessions
    )
    # How far the metric moved, in the limit's terms (null: it cannot be said).
    moved = (
        pl.when(relative & (base == 0))
        .then(pl.when(new > 0).then(pl.lit(float("inf"))).otherwise(pl.lit(0.0)))
        .when(relative)
        .then(change_pct)
        .otherwise(change)
        .round(_DECIMALS)
    )
    unpriced = (
        pl.col("metric").is_in(COST_METRICS)
        & (pl.col("base_unpriced") | pl.col("new_unpriced"))
        & (not allow_unpriced)
    )
    checked = gated & limit.is_not_null()
    reason = (
        pl.when(~checked)
        .then(pl.lit(None, pl.String))
        .when(unpriced)
        .then(pl.lit("unpriced"))
        .when(moved.is_null())
        .then(pl.lit("unknown"))
        .when(moved > limit.round(_DECIMALS))
        .then(pl.lit("exceeded"))
    )
    near = pl.lit(False) if warn_at is None else moved > (limit * warn_at).round(_DECIMALS)
    return [
        gated.alias("gated"),
        reason.alias("reason"),
        (checked & reason.is_null() & near).fill_null(False).alias("warned"),
    ]


def _in_order(rows: pl.DataFrame) -> pl.DataFrame:
    """Groups with breaches first, then the costliest (on either side), then by name; within
    a group, metrics in METRICS order."""
    cost = pl.when(pl.col("metric") == "cost_total").then(pl.max_horizontal("base", "new"))
    order = rows.group_by("group").agg(
        pl.col("reason").is_not_null().any().alias("breached"),
        cost.max().alias("cost"),
    )
    metric_order = pl.col("metric").replace_strict(
        {name: i for i, name in enumerate(METRICS)}, return_dtype=pl.Int32
    )
    return (
        rows.join(order, on="group", how="left", nulls_equal=True)
        .with_columns(metric_order.alias("metric_order"))
        .sort(
            ["breached", "cost", "group", "metric_order"],
            descending=[True, True, False, False],
            nulls_last=True,
        )
    )
