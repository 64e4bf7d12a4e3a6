"""The `sessions diff` report as text: a table for people, Markdown for a pull-request comment or
a CI job summary, JSON for scripts, one row per (group, metric) for the row formats, and the
breach lines for stderr."""

from __future__ import annotations

import json

import polars as pl

from sessions_cli.kinds import Format
from sessions_cli.output import humanise, render, tables
from sessions_cli.query.diff import INTEGER_METRICS, METRICS, ROW_FIELDS, DiffReport

_RESULTS = {"exceeded": "EXCEEDED", "unpriced": "UNPRICED", "unknown": "UNKNOWN"}
_MARKS = {"exceeded": "❌ exceeded", "unpriced": "❌ unpriced", "unknown": "❌ unknown"}
# SGR colours on a terminal: an increase of a cost, size or error metric is worse, a decrease
# better; the number of sessions is neither.
_WORSE, _BETTER, _BREACH, _NEAR = "31", "32", "1;31", "33"


def records(report: DiffReport) -> list[dict]:
    """The (group, metric) rows as JSON-ready dicts, whole-number metrics as integers."""
    rows = report.rows.with_columns(pl.col("reason").is_not_null().alias("breached"))
    out = render.to_records(rows)
    for row in out:
        if row["metric"] in INTEGER_METRICS:
            for key in ("base", "new", "change"):
                if row[key] is not None:
                    row[key] = int(row[key])
    return out


# The fields of the row formats, one row per (group, metric).
ROW_COLUMNS = [*ROW_FIELDS, "breached"]


def as_rows(
    report: DiffReport,
    fmt: Format,
    *,
    raw_csv: bool = False,
    header: bool = True,
    columns: list[str] | None = None,
) -> str:
    """csv, tsv, jsonl: one row per (group, metric). One column holds every metric's values,
    so CSV writes them as text: whole-number metrics as 12, not 12.0."""
    wanted = columns or ROW_COLUMNS
    if fmt == "jsonl":
        return "".join(
            json.dumps({k: r[k] for k in wanted}, ensure_ascii=False) + "\n"
            for r in records(report)
        )
    whole = pl.col("metric").is_in(INTEGER_METRICS)
    rows = report.rows.with_columns(
        pl.when(whole)
        .then(pl.col(c).cast(pl.Int64).cast(pl.String))
        .otherwise(pl.col(c).cast(pl.String))
        .alias(c)
        for c in ("base", "new", "change")
    ).with_columns(pl.col("reason").is_not_null().alias("breached"))
    numbers = ("base", "new", "change")
    return render.render(rows.select(wanted), fmt, raw_csv=raw_csv, header=header, numbers=numbers)


# What `--json` gives for each metric of a group, and for each breach.
_METRIC_KEYS = ("metric", "base", "new", "change", "change_pct", "limit", "breached", "reason",
                "warned")  # fmt: skip
_BREACH_KEYS = ("group", "metric", "base", "new", "change", "change_pct", "limit", "reason")


def as_json(report: DiffReport) -> str:
    groups: dict = {}
    rows = records(report)
    for row in rows:
        group = groups.setdefault(row["group"], {
            "group": row["group"], "status": row["status"], "gated": row["gated"], "metrics": [],
        })  # fmt: skip
        group["metrics"].append({key: row[key] for key in _METRIC_KEYS})
    breaches = [{key: row[key] for key in _BREACH_KEYS} for row in rows if row["breached"]]
    return render.to_json(
        {
            "by": report.by,
            "min_sessions": report.min_sessions,
            "verdict": report.verdict,
            "groups": list(groups.values()),
            "breaches": breaches,
        }
    )


def headline(report: DiffReport) -> str:
    """The verdict in a few words: what a CI log or a PR comment leads with."""
    breaches, verdict = report.breaches.height, report.verdict
    if verdict == "fail":
        return f"❌ {humanise.count(breaches, 'threshold')} crossed"
    if verdict == "pass":
        near = report.warnings.height
        return "✅ every threshold held" + (
            f" ({humanise.count(near, 'change')} near "
            f"{humanise.plural(near, 'its', 'their')} limit)"
            if near
            else ""
        )
    if verdict == "not gated":
        return f"⚠️ {not_gated(report)}"
    return "no thresholds set"


def not_gated(report: DiffReport) -> str:
    return (
        f"not gated: no group has {report.min_sessions:,} sessions on both sides (--min-sessions)"
    )


def as_table(report: DiffReport, *, colour: bool = False) -> str:
    parts = [f"sessions diff{_by(report)}: {headline(report)}\n"]
    for group, rows in _groups(report):
        first = rows[0]
        if report.by is not None:
            label = "(none)" if group is None else humanise.plain(str(group))
            parts.append(f"\n{report.by} {label}{_group_note(first, report.min_sessions)}:\n")
        cells = [_cells(row, colour=colour) for row in rows]
        headers = ["METRIC", "BASE", "NEW", "CHANGE", "CHANGE %", "LIMIT", "RESULT"]
        parts.append(tables.simple(headers, cells, tables.first_left(len(headers))) + "\n")
    return "".join(parts)


def as_markdown(report: DiffReport) -> str:
    """One headline with the verdict, then one table, the breached rows first."""
    rows = records(report)
    rows.sort(key=lambda row: not row["breached"])  # stable: group order kept within each part
    by = report.by
    headers = ["metric", "base", "new", "change", "change %", "limit", "result"]
    cells = [_cells(row, marks=_MARKS) for row in rows]
    align = tables.first_left(len(headers))
    notes = [
        f"_Groups with fewer than {humanise.count(report.min_sessions, 'session')} on either "
        "side, or on one side only, are shown but not gated._"
    ]
    if by is not None:
        headers, align = [by, *headers], ["left", *align]
        cells = [[_label(row["group"]), *line] for row, line in zip(rows, cells, strict=True)]
        notes.insert(0, f"_{by} groups: {_by_note(by)}._")
    # Values from traces and options end up in a page: a | would end the cell.
    cells = [[render.markdown_cell(text) for text in line] for line in cells]
    return (
        f"### Sessions diff{_by(report)}: {headline(report)}\n\n"
        + "".join(f"{note}\n" for note in notes)
        + "\n"
        + tables.github([render.markdown_cell(h) for h in headers], cells, align)
        + "\n"
    )


def breach_lines(report: DiffReport) -> list[tuple[str, str]]:
    """(level, text) per crossed threshold ("error") and per change near its limit
    ("warning"), for stderr and CI annotations."""
    lines = []
    for row in records(report):
        if not (row["breached"] or row["warned"]):
            continue
        where = "" if report.by is None else f"{report.by} {_label(row['group'])}: "
        moved = f"{_value(row, 'base')} -> {_value(row, 'new')} ({_change(row)}, {_pct(row)})"
        if row["reason"] == "unpriced":
            text = (
                f"{where}{row['metric']} cannot be checked against {row['limit']}: some LLM calls "
                "have no price; give prices with --prices FILE, or pass --allow-unpriced to "
                "compare the known costs only"
            )
        elif row["reason"] == "unknown":
            text = (
                f"{where}{row['metric']} is unknown on one side, so {row['limit']} cannot be "
                "checked"
            )
        elif row["breached"]:
            text = f"{where}{row['metric']} {moved} > {row['limit']}"
        else:
            text = f"{where}{row['metric']} {moved} is near its limit of {row['limit']}"
        lines.append(("error" if row["breached"] else "warning", text))
    return lines


# ---------------------------------------------------------------------------------------------
# Cells


def _groups(report: DiffReport) -> list[tuple[object, list[dict]]]:
    out: dict = {}
    for row in records(report):
        out.setdefault(row["group"], []).append(row)
    return list(out.items())


def _by(report: DiffReport) -> str:
    return "" if report.by is None else f" by {report.by}"


def _by_note(by: str) -> str:
    if by == "model":
        return "each LLM call counts for its own model, with the traces that made it"
    if by == "trace_name":
        return "each trace counts for its own name; a session's traces of one name count together"
    return f"whole sessions; a session with several values of {by} counts in each"


def _group_note(row: dict, min_sessions: int) -> str:
    if row["status"] == "added":
        return " (new only: not gated)"
    if row["status"] == "removed":
        return " (base only: not gated)"
    if not row["gated"]:
        return f" (fewer than {humanise.count(min_sessions, 'session')} on a side: not gated)"
    return ""


def _label(group) -> str:
    return "(none)" if group is None else humanise.plain(str(group))


def _cells(row: dict, *, colour: bool = False, marks: dict | None = None) -> list[str]:
    change, pct = _change(row), _pct(row)
    if colour and row["change"]:
        code = _trend(row)
        if code:
            change, pct = _sgr(code, change), _sgr(code, pct)
    result = _result(row, marks)
    if colour and result:
        result = _sgr(_BREACH if row["breached"] else _NEAR, result)
    return [row["metric"], _value(row, "base"), _value(row, "new"), change, pct,
            row["limit"] or "", result]  # fmt: skip


def _result(row: dict, marks: dict | None) -> str:
    if row["breached"]:
        return (marks or _RESULTS)[row["reason"]]
    if row["limit"] is None:
        return ""
    if not row["gated"]:
        return "➖ not gated" if marks else "not gated"
    if row["warned"]:
        return "⚠️ near" if marks else "near"
    return "✅ held" if marks else "held"


def _trend(row: dict) -> str | None:
    if row["metric"] == "sessions":
        return None
    return _WORSE if row["change"] > 0 else _BETTER


def _sgr(code: str, text: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m"


def _value(row: dict, side: str) -> str:
    value = row[side]
    if value is None:
        if row["status"] == ("added" if side == "base" else "removed"):
            return "-"
        return "?" if METRICS[row["metric"]] == "usd" else "-"
    return _measure(row["metric"], value)


def _measure(metric: str, value: float) -> str:
    unit = METRICS[metric]
    if unit == "usd":
        return humanise.money(value)
    if unit == "ms":
        return humanise.duration(value)
    if unit == "fraction":
        return f"{value:.1%}"
    if metric in INTEGER_METRICS:
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _change(row: dict) -> str:
    change = row["change"]
    if change is None:
        return ""
    sign = "+" if change > 0 else "-" if change < 0 else "±"
    if METRICS[row["metric"]] == "fraction":  # a rate moves by percentage points
        return f"{sign}{abs(change) * 100:.1f}pp"
    return sign + _measure(row["metric"], abs(change))


def _pct(row: dict) -> str:
    pct = row["change_pct"]
    if pct is None:
        return "new" if row["change"] and row["base"] == 0 else ""
    return f"{pct:+.1f}%" if pct else "0%"
