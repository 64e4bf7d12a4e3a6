"""Distributions, group totals and budget checks across sessions (`sessions stats`).

Frames in, frames out. Percentiles interpolate linearly between the two nearest ranks (numpy's
default, R type 7, Excel PERCENTILE.INC), so p50 of an even count is the mean of the middle two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo

import polars as pl

PERCENTILES = (50, 90, 95, 99)
DISTRIBUTED = ("cost_usd", "total_tokens", "duration_ms", "trace_count")
GROUPINGS = ("user", "model", "name", "tag", "day", "week", "month", "meta:KEY")
GROUP_FIELDS = ["group", "sessions", "traces", "total_tokens", "cost_usd", "p50_session_cost",
                "p95_session_cost"]  # fmt: skip
TOTAL_FIELDS = [
    "sessions", "traces", "spans", "llm_calls", "input_tokens", "output_tokens", "total_tokens",
    "cost_usd", "sessions_with_errors", "traces_without_session",
]  # fmt: skip


def totals(sessions: pl.DataFrame, orphans: pl.DataFrame) -> dict:
    """Sums over the sessions; traces without a session are only counted, never added in."""
    sums = sessions.select(
        pl.len().alias("sessions"),
        pl.col("trace_count").sum().alias("traces"),
        pl.col("span_count").sum().alias("spans"),
        pl.col("llm_call_count").sum().alias("llm_calls"),
        pl.col("input_tokens").sum(),
        pl.col("output_tokens").sum(),
        pl.col("total_tokens").sum(),
        _exact_sum("cost_usd"),
        (pl.col("error_count") > 0).sum().alias("sessions_with_errors"),
    ).row(0, named=True)
    return {**sums, "traces_without_session": orphans.height}


def distributions(sessions: pl.DataFrame) -> pl.DataFrame:
    """One row per metric: count, min, mean, percentiles and max of the per-session values."""
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
    """Group totals, most expensive first. A session with several values (models, tags, users)
    counts in each of its groups, so group totals can add up to more than the overall total."""
    keyed = sessions.with_columns(_group_key(by, zone).alias("group")).explode("group")
    cost = pl.col("cost_usd")
    return (
        keyed.group_by("group")
        .agg(
            pl.len().alias("sessions"),
            pl.col("trace_count").sum().alias("traces"),
            pl.col("total_tokens").sum(),
            _exact_sum("cost_usd"),
            cost.quantile(0.5, "linear").alias("p50_session_cost"),
            cost.quantile(0.95, "linear").alias("p95_session_cost"),
        )
        .sort(["cost_usd", "group"], descending=[True, False], nulls_last=True)
        .select(GROUP_FIELDS)
    )


def _exact_sum(column: str) -> pl.Expr:
    """Money summed as an exact decimal, whatever the order of the rows (see pricing.EXACT)."""
    from sessions_cli.model.pricing import exact

    return exact(pl.col(column)).sum().cast(pl.Float64).alias(column)


def check_grouping(by: str) -> str:
    """A grouping, checked: one of GROUPINGS, or meta:KEY with a key; else ValueError."""
    if by in GROUPINGS[:-1] or (by.startswith("meta:") and len(by) > len("meta:")):
        return by
    raise ValueError(f"expected one of {', '.join(GROUPINGS)}, got {by!r}")


def _group_key(by: str, zone: tzinfo | None) -> pl.Expr:
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


@dataclass(frozen=True)
class Budget:
    name: str  # the option without dashes, snake_case: max_session_cost
    limit: float
    value: float | None  # the total, or the worst session's value
    held: bool
    session_id: str | None = None  # the worst session, for per-session budgets
    breaches: tuple[tuple[str, float], ...] = ()  # (session id, value) over the limit

    def as_dict(self) -> dict:
        out = {"budget": self.name, "limit": self.limit, "value": self.value, "held": self.held}
        if self.name.startswith("max_session_"):
            out["session_id"] = self.session_id
            out["breaching_sessions"] = len(self.breaches)
        return out


# Per-session budgets: option name -> session column.
SESSION_BUDGETS = {
    "max_session_cost": "cost_usd",
    "max_session_tokens": "total_tokens",
    "max_session_duration": "duration_ms",
}
# Comparisons of money allow for float summation noise far below a billionth of a dollar:
# 0.1 + 0.2 must not break a $0.30 budget.
_MONEY_DECIMALS = 10


def check_budgets(sessions: pl.DataFrame, limits: dict[str, float]) -> list[Budget]:
    """Evaluate every budget given (None: not given). A value equal to its limit holds."""
    out = []
    for name, limit in limits.items():
        if limit is None:
            continue
        if name in SESSION_BUDGETS:
            column = SESSION_BUDGETS[name]
            value = pl.col(column)
            if column == "cost_usd":
                value = value.round(_MONEY_DECIMALS)
            over = (
                sessions.select("session_id", value.alias("value"))
                .filter(pl.col("value") > limit)
                .sort(["value", "session_id"], descending=[True, False])
            )
            worst = sessions.select("session_id", value.alias("value")).sort(
                ["value", "session_id"], descending=[True, False], nulls_last=True
            )
            top = worst.row(0) if worst.height else (None, None)
            out.append(
                Budget(name, limit, top[1], over.is_empty(), top[0], tuple(over.iter_rows()))
            )
        elif name == "max_total_cost":
            total = round(sessions.select(_exact_sum("cost_usd")).item() or 0.0, _MONEY_DECIMALS)
            out.append(Budget(name, limit, total, total <= limit))
        elif name == "max_total_tokens":
            total = int(sessions.get_column("total_tokens").sum())
            out.append(Budget(name, limit, total, total <= limit))
        elif name == "max_error_rate":
            traces = int(sessions.get_column("trace_count").sum())
            failed = int(sessions.get_column("failed_trace_count").sum())
            rate = failed / traces if traces else 0.0
            out.append(Budget(name, limit, rate, rate <= limit))
        else:  # pragma: no cover - the CLI only passes the names above
            raise ValueError(name)
    return out


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
