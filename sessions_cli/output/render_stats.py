"""The `sessions stats` report as text: a table for people, Markdown for a CI job summary page,
JSON for scripts, and the budget breach lines for stderr. Rows use `render` for every format."""

from __future__ import annotations

import json

import polars as pl

from sessions_cli.kinds import Format
from sessions_cli.output import humanise, render, tables
from sessions_cli.query.stats import SPLIT_GROUPINGS, TOTAL_FIELDS, Budget, StatsReport, Unit

# How each distributed metric reads in a table.
_METRIC_LABELS = {
    "cost_usd": "cost",
    "total_tokens": "tokens",
    "duration_ms": "duration",
    "trace_count": "traces",
}
_TOTAL_LABELS = {
    "sessions": "Sessions", "traces": "Traces", "spans": "Spans", "llm_calls": "LLM calls",
    "input_tokens": "Input tokens", "output_tokens": "Output tokens",
    "total_tokens": "Total tokens", "cost_usd": "Cost",
    "unpriced_call_count": "Unpriced LLM calls",
    "sessions_with_errors": "Sessions with errors",
    "traces_without_session": "Traces without a session",
}  # fmt: skip
_PERCENTILE_NOTE = "percentiles interpolate linearly between ranks"
_RESULTS = {None: "held", "exceeded": "EXCEEDED", "unpriced": "UNPRICED"}


def group_unit(by: str) -> str:
    """What one group row counts: LLM calls (model, provider) or whole sessions."""
    return "llm_call" if by in SPLIT_GROUPINGS else "session"


def _group_note(by: str) -> str:
    if group_unit(by) == "llm_call":
        return f"each LLM call counts for its own {by}, so the rows add up to the totals"
    return (
        f"whole sessions; a session with several values of {by} counts in each, so the rows "
        "can add up to more than the totals"
    )


# Distributed metrics that are whole numbers: their min and max are written as integers.
_WHOLE = ("total_tokens", "trace_count")


def _distribution_records(dist: pl.DataFrame) -> list[dict]:
    records = render.to_records(dist)
    for record in records:
        if record["metric"] in _WHOLE:
            for key in ("min", "max"):
                if record[key] is not None:
                    record[key] = int(record[key])
    return records


def as_rows(
    report: StatsReport, fmt: Format, *, columns: list[str] | None, raw_csv: bool, header: bool
) -> str:
    """csv, tsv, jsonl: the group rows with --by, else the distribution rows, whose min and
    max of whole-number metrics are written as integers (1408, not 1408.0)."""
    if report.groups is not None:
        rows = report.groups
        return render.render(rows.select(columns or rows.columns), fmt, raw_csv=raw_csv,
                             header=header)  # fmt: skip
    dist = report.distributions
    wanted = columns or dist.columns
    if fmt == "jsonl":
        return "".join(
            json.dumps({k: r[k] for k in wanted}, ensure_ascii=False) + "\n"
            for r in _distribution_records(dist)
        )
    whole = pl.col("metric").is_in(_WHOLE)
    as_text = dist.with_columns(
        pl.when(whole)
        .then(pl.col(c).cast(pl.Int64).cast(pl.String))
        .otherwise(pl.col(c).cast(pl.String))
        .alias(c)
        for c in ("min", "max")
    )
    return render.render(as_text.select(wanted), fmt, raw_csv=raw_csv, header=header,
                         numbers=("min", "max"))  # fmt: skip


def as_json(report: StatsReport) -> str:
    totals, dist, by, groups, budgets = _parts(report)
    return render.to_json(
        {
            "totals": totals,
            "distributions": _distribution_records(dist),
            "by": by,
            "group_unit": group_unit(by) if by else None,
            "groups": groups if groups is not None else [],
            "budgets": [b.as_dict() for b in budgets],
        }
    )


def _parts(report: StatsReport) -> tuple:
    return report.totals, report.distributions, report.by, report.groups, report.budgets


def as_table(report: StatsReport, *, width: int | None, notes: list[str] | None = None) -> str:
    """`notes`: where to say which group columns were left out to fit `width`."""
    totals, dist, by, groups, budgets = _parts(report)
    parts = []
    label_width = max(len(label) for label in _TOTAL_LABELS.values())
    parts.append(
        "".join(
            f"{_TOTAL_LABELS[k] + ':':<{label_width + 1}}  {_total(k, totals)}\n"
            for k in TOTAL_FIELDS
        )
    )
    parts.append(
        f"Per session ({_PERCENTILE_NOTE}):\n"
        + tables.simple(
            ["", *(c.upper() for c in dist.columns[1:])],
            _distribution_cells(dist),
            tables.first_left(len(dist.columns)),
        )
        + "\n"
    )
    if groups is not None and by:
        # The group column is headed by what it groups: USER, MODEL, META:PLAN, ...
        shown = groups.with_columns(pl.col("group").fill_null("(none)")).rename({"group": by})
        parts.append(
            f"By {by} ({_group_note(by)}):\n"
            + render.render(
                shown,
                "table",
                width=width,
                unpriced=groups.get_column("unpriced_call_count"),
                keys=(by,),  # the group's name: what the row is read for
                notes=notes,
            )
        )
    if budgets:
        parts.append(
            "Budgets:\n"
            + tables.simple(["BUDGET", "LIMIT", "FOUND", "RESULT"], _budget_cells(budgets))
            + "\n"
        )
    return "\n".join(parts)


def as_markdown(report: StatsReport) -> str:
    """A summary fit for $GITHUB_STEP_SUMMARY: a headline, then the tables, humanised."""
    totals, dist, by, groups, budgets = _parts(report)

    def table(headers, rows) -> str:
        return tables.github(headers, rows, tables.first_left(len(headers))) + "\n"

    verdict = ""
    if budgets:
        failed = [
            f"{n} of {len(budgets)} budgets {what}"
            for reason, what in (("exceeded", "exceeded"), ("unpriced", "not checked (unpriced)"))
            if (n := sum(b.reason == reason for b in budgets))
        ]
        verdict = f" — ❌ {', '.join(failed)}" if failed else " — ✅ all budgets held"
    parts = [
        f"### Sessions: {totals['sessions']:,} sessions, {_total('cost_usd', totals)}, "
        f"{totals['total_tokens']:,} tokens{verdict}\n",
        table(["", "total"], [[_TOTAL_LABELS[k], _total(k, totals)] for k in TOTAL_FIELDS]),
        f"#### Per session\n\n_{_PERCENTILE_NOTE.capitalize()}._\n\n"
        + table(["metric", *dist.columns[1:]], _distribution_cells(dist)),
    ]
    if groups is not None and by:
        rows = [
            [humanise.plain(str(g["group"])) if g["group"] is not None else "(none)",
             f"{g['sessions']:,}", f"{g['traces']:,}", f"{g['llm_calls']:,}",
             f"{g['total_tokens']:,}",
             humanise.money(g["cost_usd"], unpriced=g["unpriced_call_count"]),
             f"{g['unpriced_call_count']:,}", humanise.money(g["p50_session_cost"]),
             humanise.money(g["p95_session_cost"])]
            for g in groups.iter_rows(named=True)
        ]  # fmt: skip
        headers = [by, "sessions", "traces", "llm calls", "tokens", "cost", "unpriced calls",
                   "p50 session cost", "p95 session cost"]  # fmt: skip
        parts.append(
            f"#### By {by}\n\n_{_group_note(by).capitalize()}._\n\n" + table(headers, rows)
        )
    if budgets:
        marks = {"held": "✅ held", "held (near)": "⚠️ held, near its limit",
                 "EXCEEDED": "❌ exceeded", "UNPRICED": "❌ unpriced"}  # fmt: skip
        cells = [[name, limit, found, marks[result]]
                 for name, limit, found, result in _budget_cells(budgets)]  # fmt: skip
        parts.append("#### Budgets\n\n" + table(["budget", "limit", "found", "result"], cells))
    return "\n".join(parts)


def breach_lines(budgets: list[Budget], *, most: int = 50) -> list[str]:
    """One stderr line per breach: `budget: session sess-42 cost $1.20 > $1.00`."""
    lines = []
    for budget in budgets:
        if budget.held:
            continue
        what = budget.name.removeprefix("max_").replace("_", " ")
        if budget.reason == "unpriced":
            count = len(budget.unpriced_sessions)
            named = ", ".join(humanise.plain(s) for s in budget.unpriced_sessions[:5])
            more = f" and {count - 5:,} more" if count > 5 else ""
            lines.append(
                f"budget: {what} cannot be checked: {humanise.count(count, 'session')} "
                f"{humanise.plural(count, 'has', 'have')} LLM calls without a price "
                f"({named}{more});"
                " give prices with --prices FILE, or pass --allow-unpriced to check the known "
                "costs only"
            )
            continue
        if budget.breaches:
            measure = what.removeprefix("session ")
            for session_id, value in budget.breaches[:most]:
                shown, limit = _pair(budget.unit, value, budget.limit)
                lines.append(
                    f"budget: session {humanise.plain(session_id)} {measure} {shown} > {limit}"
                )
            if len(budget.breaches) > most:
                lines.append(
                    f"budget: ... and {len(budget.breaches) - most:,} more sessions over the "
                    f"{measure} limit"
                )
        elif budget.value is not None:  # a total over its limit
            shown, limit = _pair(budget.unit, budget.value, budget.limit)
            lines.append(f"budget: {what} {shown} > {limit}")
    return lines


def near_lines(budgets: list[Budget]) -> list[str]:
    """One stderr line per budget that held with its value past --warn-at of its limit."""
    lines = []
    for budget in budgets:
        if budget.warned and budget.value is not None:
            shown, limit = _pair(budget.unit, budget.value, budget.limit)
            worst = f" (session {humanise.plain(budget.session_id)})" if budget.session_id else ""
            what = budget.name.removeprefix("max_").replace("_", " ")
            lines.append(f"budget: {what} {shown}{worst} is near its limit of {limit}")
    return lines


def _pair(unit: Unit, value: float, limit: float) -> tuple[str, str]:
    """Value and limit as people read them, precise enough to differ when they do: in full
    when they read alike, or when the value is below the money format's precision."""
    shown, bound = _measure(unit, value), _limit(unit, limit)
    if shown == bound or shown.startswith("<"):
        shown, bound = _full(unit, value), _full(unit, limit)
    return shown, bound


def _limit(unit: Unit, limit: float) -> str:
    """A limit as the user set it: one below the money format's precision (`<$0.0001`) would
    read as a range, not a number (`cost $0.0393 > <$0.0001`)."""
    shown = _measure(unit, limit)
    return _full(unit, limit) if shown.startswith("<") else shown


def _full(unit: Unit, value: float) -> str:
    money, suffix = ("$" if unit == "usd" else ""), ("ms" if unit == "ms" else "")
    return f"{money}{value:.12g}{suffix}"


def _measure(unit: Unit, value) -> str:
    if value is None:
        return "-"
    if unit == "usd":
        return humanise.money(value)
    if unit == "ms":
        return humanise.duration(value)
    if unit == "fraction":
        return f"{value:.2%}".replace(".00%", "%")
    return f"{value:,}" if isinstance(value, int) else f"{value:,.0f}"


def _budget_cells(budgets: list[Budget]) -> list[list[str]]:
    rows = []
    for b in budgets:
        found = _measure(b.unit, b.value)
        if b.session_id:
            found += f" ({humanise.plain(b.session_id)})"
        if b.breaches:
            found += f", {len(b.breaches):,} over"
        if b.unpriced_sessions:
            found += f", {len(b.unpriced_sessions):,} with unpriced calls"
        result = "held (near)" if b.warned else _RESULTS[b.reason]
        rows.append([b.name, _limit(b.unit, b.limit), found, result])
    return rows


def _distribution_cells(dist: pl.DataFrame) -> list[list[str]]:
    rows = []
    for row in dist.iter_rows(named=True):
        metric = row["metric"]
        cells = [_METRIC_LABELS[metric], f"{row['count']:,}"]
        for column in dist.columns[2:]:
            value = row[column]
            if value is None:
                cells.append("")
            elif metric == "cost_usd":
                cells.append(humanise.money(value))
            elif metric == "duration_ms":
                cells.append(humanise.duration(value))
            else:
                cells.append(
                    f"{value:,.1f}" if column != "min" and column != "max" else f"{value:,.0f}"
                )
        rows.append(cells)
    return rows


def _total(key: str, totals: dict) -> str:
    if key == "cost_usd":
        return humanise.money(totals[key], unpriced=totals["unpriced_call_count"])
    return f"{totals[key]:,}"
