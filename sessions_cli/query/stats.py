"""Distributions, group totals and budget checks across sessions (`sessions stats`).

Frames in, frames out. Percentiles interpolate linearly between the two nearest ranks (numpy's
default, R type 7, Excel PERCENTILE.INC), so p50 of an even count is the mean of the middle two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Literal

import polars as pl

PERCENTILES = (50, 90, 95, 99)
DISTRIBUTED = ("cost_usd", "total_tokens", "duration_ms", "trace_count")
GROUPINGS = ("user", "model", "provider", "name", "tag", "day", "week", "month", "meta:KEY")
# Groupings that split sessions: each LLM call's tokens and cost go to its own model (or
# provider), so the group rows add up to the totals. The others group whole sessions.
SPLIT_GROUPINGS = ("model", "provider")
GROUP_FIELDS = ["group", "sessions", "traces", "llm_calls", "total_tokens", "cost_usd",
                "unpriced_call_count", "p50_session_cost", "p95_session_cost"]  # fmt: skip
TOTAL_FIELDS = [
    "sessions", "traces", "spans", "llm_calls", "input_tokens", "output_tokens", "total_tokens",
    "cost_usd", "unpriced_call_count", "sessions_with_errors", "traces_without_session",
]  # fmt: skip


@dataclass(frozen=True)
class StatsReport:
    """Everything `sessions stats` reports, computed once, rendered in any format."""

    totals: dict
    distributions: pl.DataFrame
    by: str | None
    groups: pl.DataFrame | None
    budgets: list[Budget]


def report(
    sessions: pl.DataFrame,
    orphans: pl.DataFrame,
    *,
    by: str | None = None,
    zone: tzinfo | None = None,
    limits: dict[str, float | None] | None = None,
    allow_unpriced: bool = False,
    warn_at: float | None = None,
) -> StatsReport:
    """Totals, distributions, the groups of `by` and the budgets of `limits` over sessions."""
    return StatsReport(
        totals=totals(sessions, orphans),
        distributions=distributions(sessions),
        by=by,
        groups=groups(sessions, by, zone=zone) if by else None,
        budgets=check_budgets(
            sessions, limits or {}, allow_unpriced=allow_unpriced, warn_at=warn_at
        ),
    )


def totals(sessions: pl.DataFrame, orphans: pl.DataFrame) -> dict:
    """Sums over the sessions; traces without a session are only counted, never added in.
    The cost is the sum of the known costs (a lower bound when `unpriced_call_count` > 0), and
    unknown (None) when no session's cost is known."""
    sums = sessions.select(
        pl.len().alias("sessions"),
        pl.col("trace_count").sum().alias("traces"),
        pl.col("span_count").sum().alias("spans"),
        pl.col("llm_call_count").sum().alias("llm_calls"),
        pl.col("input_tokens").sum(),
        pl.col("output_tokens").sum(),
        pl.col("total_tokens").sum(),
        known_sum(pl.col("cost_usd")).alias("cost_usd"),
        pl.col("unpriced_call_count").sum(),
        (pl.col("error_count") > 0).sum().alias("sessions_with_errors"),
    ).row(0, named=True)
    return {**sums, "traces_without_session": orphans.height}


def unpriced_models(rows: pl.DataFrame) -> list[tuple[str | None, int]]:
    """(model, calls) of the LLM calls in these sessions or traces that have tokens but no
    cost, most calls first (None: calls that name no model)."""
    counts = (
        rows.select(pl.col("calls_by_model").explode().struct.unnest())
        .filter(pl.col("unpriced_call_count") > 0)
        .group_by("model")
        .agg(pl.col("unpriced_call_count").sum())
        .sort(["unpriced_call_count", "model"], descending=[True, False], nulls_last=True)
    )
    return [(model, int(n)) for model, n in counts.iter_rows()]


def distributions(sessions: pl.DataFrame) -> pl.DataFrame:
    """One row per metric: count, min, mean, percentiles and max of the per-session values.
    Sessions whose cost is unknown are not in the cost row (its count says how many are)."""
    rows = []
    for metric in DISTRIBUTED:
        value = pl.col(metric).cast(pl.Float64)
        rows.append(
            sessions.select(
                pl.lit(metric).alias("metric"),
                value.count().alias("count"),
                value.min().alias("min"),
                value.mean().alias("mean"),
                *(value.quantile(p / 100, "linear").alias(f"p{p}") for p in PERCENTILES),
                value.max().alias("max"),
            )
        )
    return pl.concat(rows)


def groups(sessions: pl.DataFrame, by: str, *, zone: tzinfo | None = None) -> pl.DataFrame:
    """Group totals, most expensive first. By model or provider, each LLM call counts for its
    own group, so the rows add up to the totals. By any other key a session counts whole, in
    each of its groups (a session with several users or tags is in several), so those rows
    can add up to more."""
    if by in SPLIT_GROUPINGS:
        per_session = _calls_per_session(sessions, by)
    else:
        per_session = sessions.select(
            "session_id",
            group_key(by, zone).alias("group"),
            "trace_count",
            pl.col("llm_call_count").alias("llm_calls"),
            "total_tokens",
            "cost_usd",
            "unpriced_call_count",
        ).explode("group")
    cost = pl.col("cost_usd")
    return (
        per_session.group_by("group")
        .agg(
            pl.col("session_id").n_unique().alias("sessions"),
            pl.col("trace_count").sum().alias("traces"),
            pl.col("llm_calls").sum(),
            pl.col("total_tokens").sum(),
            known_sum(cost).alias("cost_usd"),
            pl.col("unpriced_call_count").sum(),
            cost.quantile(0.5, "linear").alias("p50_session_cost"),
            cost.quantile(0.95, "linear").alias("p95_session_cost"),
        )
        .sort(["cost_usd", "group"], descending=[True, False], nulls_last=True)
        .select(GROUP_FIELDS)
    )


def _calls_per_session(sessions: pl.DataFrame, by: str) -> pl.DataFrame:
    """One row per (session, model or provider) of its LLM calls, with their sums; the cost of
    calls none of which is priced is unknown (null)."""
    calls = (
        sessions.select("session_id", "calls_by_model")
        .explode("calls_by_model")
        .drop_nulls("calls_by_model")
        .unnest("calls_by_model")
    )
    priced, unpriced = pl.col("priced").sum(), pl.col("unpriced_call_count").sum()
    return calls.group_by("session_id", pl.col(by).alias("group")).agg(
        pl.col(f"{by}_traces").sum().alias("trace_count"),
        pl.col("llm_call_count").sum().alias("llm_calls"),
        pl.col("total_tokens").sum(),
        pl.when((priced > 0) | (unpriced == 0))
        .then(pl.col("cost_exact").sum())
        .cast(pl.Float64)
        .alias("cost_usd"),
        unpriced.alias("unpriced_call_count"),
    )


def known_sum(money: pl.Expr) -> pl.Expr:
    """Money summed as an exact decimal whatever the order of the rows (see pricing.EXACT),
    over the known values; null when there are values and none is known."""
    from sessions_cli.model.pricing import exact

    some_known = (money.count() > 0) | (money.len() == 0)
    return pl.when(some_known).then(exact(money).sum().cast(pl.Float64))


def check_grouping(by: str) -> str:
    """A grouping, checked: one of GROUPINGS, or meta:KEY with a key; else ValueError."""
    if by in GROUPINGS[:-1] or (by.startswith("meta:") and len(by) > len("meta:")):
        return by
    raise ValueError(f"expected one of {', '.join(GROUPINGS)}, got {by!r}")


def group_key(by: str, zone: tzinfo | None) -> pl.Expr:
    """A list-valued key per session (explode makes one row per value; empty lists -> null)."""
    as_list = {
        "user": pl.col("users"),
        "model": pl.col("models"),
        "tag": pl.col("tags"),
    }
    if by in as_list:
        return (
            pl.when(as_list[by].list.len() > 0)
            .then(as_list[by])
            .otherwise(pl.lit([None], pl.List(pl.String)))
        )
    if by == "name":
        return pl.concat_list(pl.col("session_name"))
    if by.startswith("meta:"):
        key = by[len("meta:") :]
        value = (
            pl.col("metadata")
            .list.eval(
                pl.element().filter(pl.element().struct.field("key") == key).struct.field("value")
            )
            .list.first()
        )
        return pl.concat_list(value)
    start = pl.col("start")
    if zone is not None:
        start = start.dt.convert_time_zone(str(zone))
    formats = {"day": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m"}
    return pl.concat_list(start.dt.strftime(formats[by]))


# ---------------------------------------------------------------------------------------------
# Budgets


Unit = Literal["usd", "tokens", "ms", "fraction"]
# What each budget measures in: how its value and limit read.
BUDGET_UNITS: dict[str, Unit] = {
    "max_session_cost": "usd",
    "max_total_cost": "usd",
    "max_session_tokens": "tokens",
    "max_total_tokens": "tokens",
    "max_session_duration": "ms",
    "max_error_rate": "fraction",
}


@dataclass(frozen=True)
class Budget:
    name: str  # the option without dashes, snake_case: max_session_cost
    limit: float
    value: float | None  # the total, or the worst session's value (of known costs)
    # None: held; "exceeded": over the limit; "unpriced": a cost that cannot be checked, since
    # some LLM calls in scope have no price
    reason: str | None = None
    session_id: str | None = None  # the worst session, for per-session budgets
    breaches: tuple[tuple[str, float], ...] = ()  # (session id, value) over the limit
    unpriced_sessions: tuple[str, ...] = ()  # sessions with unpriced calls, for cost budgets
    warned: bool = False  # held, but the value is past --warn-at of the limit

    @property
    def held(self) -> bool:
        return self.reason is None

    @property
    def unit(self) -> Unit:
        return BUDGET_UNITS[self.name]

    def as_dict(self) -> dict:
        out = {"budget": self.name, "limit": self.limit, "value": self.value, "held": self.held,
               "reason": self.reason, "warned": self.warned}  # fmt: skip
        if self.name.startswith("max_session_"):
            out["session_id"] = self.session_id
            out["breaching_sessions"] = len(self.breaches)
        if self.name in COST_BUDGETS:
            out["unpriced_sessions"] = len(self.unpriced_sessions)
        return out


# Per-session budgets: option name -> session column.
SESSION_BUDGETS = {
    "max_session_cost": "cost_usd",
    "max_session_tokens": "total_tokens",
    "max_session_duration": "duration_ms",
}
COST_BUDGETS = ("max_session_cost", "max_total_cost")
# Comparisons of money allow for float summation noise far below a billionth of a dollar:
# 0.1 + 0.2 must not break a $0.30 budget.
MONEY_DECIMALS = 10


def check_budgets(
    sessions: pl.DataFrame,
    limits: dict[str, float | None],
    *,
    allow_unpriced: bool = False,
    warn_at: float | None = None,
) -> list[Budget]:
    """Evaluate every budget given (None: not given). A value equal to its limit holds. A cost
    budget over sessions with unpriced calls fails as "unpriced" (their cost is not known),
    unless `allow_unpriced`, when the known costs are checked; a proven breach is "exceeded"
    either way. A budget that holds with its value past `warn_at` (a fraction) of its limit
    is `warned`."""
    unpriced = tuple(
        sessions.filter(pl.col("unpriced_call_count") > 0).get_column("session_id").sort().to_list()
    )
    out = []
    for name, limit in limits.items():
        if limit is None:
            continue
        budget = _check(sessions, name, limit)
        if name in COST_BUDGETS and unpriced:
            reason = budget.reason or (None if allow_unpriced else "unpriced")
            budget = replace(budget, reason=reason, unpriced_sessions=unpriced)
        if budget.held and warn_at is not None and budget.value is not None:
            budget = replace(budget, warned=budget.value > limit * warn_at)
        out.append(budget)
    return out


def _check(sessions: pl.DataFrame, name: str, limit: float) -> Budget:
    def verdict(over: bool) -> str | None:
        return "exceeded" if over else None

    if name in SESSION_BUDGETS:
        column = SESSION_BUDGETS[name]
        value = pl.col(column)
        if column == "cost_usd":
            value = value.round(MONEY_DECIMALS)
        values = sessions.select("session_id", value.alias("value"))
        over = values.filter(pl.col("value") > limit).sort(
            ["value", "session_id"], descending=[True, False]
        )
        worst = values.sort(["value", "session_id"], descending=[True, False], nulls_last=True)
        top = worst.row(0) if worst.height else (None, None)
        return Budget(name, limit, top[1], verdict(not over.is_empty()), top[0],
                      tuple(over.iter_rows()))  # fmt: skip
    if name == "max_total_cost":
        total = sessions.select(known_sum(pl.col("cost_usd"))).item()
        total = None if total is None else round(total, MONEY_DECIMALS)
        return Budget(name, limit, total, verdict(total is not None and total > limit))
    if name == "max_total_tokens":
        tokens = int(sessions.get_column("total_tokens").sum())
        return Budget(name, limit, tokens, verdict(tokens > limit))
    if name == "max_error_rate":
        traces = int(sessions.get_column("trace_count").sum())
        failed = int(sessions.get_column("failed_trace_count").sum())
        rate = failed / traces if traces else 0.0
        return Budget(name, limit, rate, verdict(rate > limit))
    raise ValueError(name)  # pragma: no cover - the CLI only passes the names above


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> float:
    """`1500ms`, `90s`, `5m`, `1.5h`, `2d`; a bare number is seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"expected a duration such as 90s, 5m or 1h, got {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2) or "s"]


def parse_fraction(text: str) -> float:
    """`0.05` or `5%`, between 0 and 1."""
    try:
        value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"expected a fraction such as 0.05 or 5%, got {text!r}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"expected a fraction between 0 and 1, got {text!r}")
    return value
