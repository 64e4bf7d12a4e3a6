"""`sessions report` as one self-contained HTML page: figures, charts, a session table that
sorts, searches, filters and pages in the browser, and a section per detailed session.

The page fetches nothing. Charts are Vega-Lite specs rendered to inline SVG by vl-convert (its
own bundled Vega, no JavaScript in the page); the one script and the one style sheet are inline
and allowed by their hashes in a Content-Security-Policy that allows nothing else. Text from
traces reaches the page only through Jinja's autoescaping, the SVG renderer's escaping, or
JSON read by the script and shown with textContent.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import tzinfo
from importlib import resources

import polars as pl

from sessions_cli.output import draw, humanise, messages, render
from sessions_cli.query.report import TABLE_FIELDS, Detail, Report
from sessions_cli.query.timeline import EVENT_FIELDS

# The session table's columns, in order: a field of TABLE_FIELDS and its header.
COLUMNS = [
    ("session_id", "Session"), ("session_name", "Name"), ("user_id", "User"),
    ("start", "Start"), ("duration_ms", "Duration"), ("trace_count", "Traces"),
    ("llm_call_count", "LLM calls"), ("total_tokens", "Tokens"), ("cost_usd", "Cost"),
    ("error_count", "Errors"),
]  # fmt: skip
_TRACE_COLUMNS = render.TABLE_COLUMNS["session_traces"]
# A detailed session's timeline draws at most this many rows; the rest are one command away.
TIMELINE_ROWS = 300
_SHADES = {"trace": "#4c78a8", "span": "#9ecae9", "error": "#e45756", "idle": "#d9d9d9"}


def page(report: Report, *, zone: tzinfo | None, title: str, generator: str) -> str:
    """The whole HTML document."""
    import jinja2

    folder = resources.files("sessions_cli.output") / "report"
    script = (folder / "page.js").read_text(encoding="utf-8")
    style = (folder / "page.css").read_text(encoding="utf-8")
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("sessions_cli.output", "report"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    anchors = {d.session.row.item(0, "session_id"): f"session-{i}"
               for i, d in enumerate(report.details, 1)}  # fmt: skip
    return environment.get_template("page.html").render(
        title=title,
        generator=generator,
        policy=_policy(script, style),
        script=script,
        style=style,
        range=_range(report, zone),
        figures=figures(report),
        notices=messages.texts(report.notices),
        charts=charts(report, zone),
        models=_model_rows(report.by_model),
        table=script_json(table_data(report.sessions, zone, anchors)),
        details=[
            _detail(d, anchor, zone)
            for d, anchor in zip(report.details, anchors.values(), strict=True)
        ],
        session_count=report.sessions.height,
    )


def _policy(script: str, style: str) -> str:
    """Nothing but the page's own script and style; images only as data: URLs."""
    return (
        f"default-src 'none'; script-src '{_digest(script)}'; style-src '{_digest(style)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )


def _digest(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def script_json(value) -> str:
    """JSON to put inside a <script type="application/json"> element: `<`, `>` and `&` as
    \\u escapes, so no text can close the element or open a comment, whatever it holds."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(raw, escaped)
    return text


def _range(report: Report, zone: tzinfo | None) -> str:
    if report.first_start is None or report.last_end is None:
        return "no times"
    first, last = (humanise.instant(t, zone, seconds=True)
                   for t in (report.first_start, report.last_end))  # fmt: skip
    return f"{first} → {last}"


def figures(report: Report) -> list[tuple[str, str, str]]:
    """The headline figures: (label, value, a note under it)."""
    t = report.totals
    unpriced = t["unpriced_call_count"]
    cost = humanise.money(t["cost_usd"], unpriced=unpriced)
    cost_note = f"{humanise.count(unpriced, 'unpriced LLM call')} left out" if unpriced else ""
    rate = t["error_rate"]
    spread = {row["metric"]: row for row in report.distributions.to_dicts()}

    def pair(metric: str, text) -> str:
        low, high = spread[metric]["p50"], spread[metric]["p95"]
        return "–" if low is None else f"{text(low)} / {text(high)}"

    return [
        ("Sessions", f"{t['sessions']:,}",
         f"{humanise.count(t['traces_without_session'], 'trace')} without a session"),
        ("Traces", f"{t['traces']:,}", humanise.count(t["llm_calls"], "LLM call")),
        ("Cost", cost, cost_note),
        ("Tokens", f"{t['total_tokens']:,}",
         f"{t['input_tokens']:,} in, {t['output_tokens']:,} out"),
        ("Error rate", "–" if rate is None else f"{rate:.1%}",
         f"{humanise.count(t['sessions_with_errors'], 'session')} with errors"),
        ("Session cost p50 / p95", pair("cost_usd", humanise.money), "per session, known costs"),
        ("Session duration p50 / p95", pair("duration_ms", humanise.duration), "per session"),
    ]  # fmt: skip


def table_data(sessions: pl.DataFrame, zone: tzinfo | None, anchors: dict[str, str]) -> dict:
    """The session table for the page's script: each row's values as list --json gives them
    (TABLE_FIELDS), and the text of each shown column as a table cell reads."""
    records = render.to_records(sessions.select(TABLE_FIELDS))
    rows = sessions.select(TABLE_FIELDS).iter_rows(named=True)
    texts = [
        [render.human(field, row[field], zone, unpriced=row["unpriced_call_count"])
         for field, _ in COLUMNS]
        for row in rows
    ]  # fmt: skip
    return {
        "fields": TABLE_FIELDS,
        "columns": [
            {"field": field, "header": header, "numeric": sessions.schema[field].is_numeric()}
            for field, header in COLUMNS
        ],
        "rows": [[record[field] for field in TABLE_FIELDS] for record in records],
        "texts": texts,
        "anchors": anchors,
    }


def _model_rows(groups: pl.DataFrame) -> list[list[str]]:
    return [
        [humanise.plain(row["group"] or "(no model)"), f"{row['llm_calls']:,}",
         f"{row['total_tokens']:,}",
         humanise.money(row["cost_usd"], unpriced=row["unpriced_call_count"])]
        for row in groups.iter_rows(named=True)
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Charts: Vega-Lite specs, rendered to SVG


def svg(spec: dict) -> str:
    """A Vega-Lite spec as SVG markup, rendered offline (no data or font is fetched)."""
    import vl_convert

    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "config": {"font": "sans-serif", "view": {"stroke": None}}, **spec}  # fmt: skip
    return vl_convert.vegalite_to_svg(spec, allowed_base_urls=[])


def charts(report: Report, zone: tzinfo | None) -> list[tuple[str, str, str]]:
    """(id, title, SVG) of each chart; none when there is nothing to draw."""
    if report.sessions.is_empty():
        return []
    unit = report.bucket
    where = f"{unit} ({zone or 'UTC'})"
    series = [
        {**row, "bucket": row["bucket"].strftime("%Y-%m-%dT%H:%M:%SZ")}
        for row in report.series.to_dicts()
    ]
    left_out = int(report.series.get_column("unpriced_call_count").sum())
    cost_title = f"Cost per {unit}" + (
        f" (known costs; {humanise.count(left_out, 'unpriced call')} left out)" if left_out else ""
    )
    # Naive wall-clock times in the zone, read as UTC and shown in UTC: the zone's clock.
    hourly = unit == "hour"
    x = {"field": "bucket", "type": "temporal", "title": where,
         "timeUnit": "utcyearmonthdatehours" if hourly else "utcyearmonthdate",
         "axis": {"format": "%b %d %H:%M" if hourly else "%b %d",
                  "tickCount": {"interval": "utchour" if hourly else "utcday"}}}  # fmt: skip
    per_bucket = {"data": {"values": series}, "mark": {"type": "bar"}, "width": 480, "height": 180}
    sessions = report.sessions
    return [
        ("cost-over-time", cost_title, svg({**per_bucket, "encoding": {
            "x": x, "y": {"field": "cost_usd", "type": "quantitative", "title": "cost (USD)",
                          "axis": {"format": "$,.4~f"}}}})),
        ("tokens-over-time", f"Tokens per {unit}", svg({**per_bucket, "encoding": {
            "x": x, "y": {"field": "total_tokens", "type": "quantitative", "title": "tokens"}}})),
        ("session-cost", "Session cost (sessions with a known cost)", _histogram(
            sessions.get_column("cost_usd").drop_nulls().to_list(), "cost (USD)", "$,.4~f")),
        ("session-duration", "Session duration", _histogram(
            (sessions.get_column("duration_ms").drop_nulls() / 1000).to_list(), "seconds", ",~r")),
        ("cost-by-model", "Cost by model (each LLM call counts for its own model)",
         _by_model(report.by_model)),
    ]  # fmt: skip


def _histogram(values: list[float], title: str, number_format: str) -> str:
    return svg({
        "data": {"values": [{"v": v} for v in values]},
        "mark": "bar", "width": 480, "height": 180,
        "encoding": {
            "x": {"field": "v", "bin": {"maxbins": 30}, "type": "quantitative", "title": title,
                  "axis": {"format": number_format}},
            "y": {"aggregate": "count", "type": "quantitative", "title": "sessions"},
        },
    })  # fmt: skip


def _by_model(groups: pl.DataFrame) -> str:
    values = []
    for row in groups.iter_rows(named=True):
        name = humanise.plain(row["group"] or "(no model)")
        # An unknown cost is drawn as no bar, and says so; a lower bound is marked as one.
        if row["cost_usd"] is None:
            name += " (cost unknown)"
        elif row["unpriced_call_count"]:
            name += " (at least)"
        values.append({"model": name, "cost_usd": row["cost_usd"] or 0})
    return svg({
        "data": {"values": values},
        "mark": "bar", "width": 480, "height": {"step": 22},
        "encoding": {
            "y": {"field": "model", "type": "nominal", "sort": "-x", "title": None,
                  "axis": {"labelLimit": 240}},
            "x": {"field": "cost_usd", "type": "quantitative", "title": "cost (USD)",
                  "axis": {"format": "$,.4~f"}},
        },
    })  # fmt: skip


# ---------------------------------------------------------------------------------------------
# A section per detailed session


def _detail(detail: Detail, anchor: str, zone: tzinfo | None) -> dict:
    one, events = detail.session, detail.events
    session = one.row.row(0, named=True)
    traces = one.traces
    return {
        "anchor": anchor,
        "id": session["session_id"],
        "title": draw.title(session, zone),
        "summary": render.summary(session, tz=zone),
        "headers": [render.HEADERS.get(c, c.upper()) for c in _TRACE_COLUMNS],
        "traces": [
            {
                "error": row["status"] == "error",
                "cells": [
                    render.human(
                        c, row[c], zone, seconds=True, unpriced=row.get("unpriced_call_count") or 0
                    )
                    for c in _TRACE_COLUMNS
                ],
            }
            for row in traces.iter_rows(named=True)
        ],
        "timeline": _timeline(events, one.start_ns, one.end_ns),
        "shown": min(events.height, TIMELINE_ROWS),
        "events": events.height,
        "data": script_json(render.to_records(events.select(EVENT_FIELDS))),
    }


def _timeline(events: pl.DataFrame, origin_ns: int | None, end_ns: int | None) -> str | None:
    """The session's traces and spans as bars on one axis from its start, idle gaps between
    traces marked, errors in their own colour."""
    if origin_ns is None or end_ns is None:
        return None
    timed = events.drop_nulls(["start_ns", "end_ns"]).head(TIMELINE_ROWS)
    rows = draw.with_idle_rows(timed.to_dicts(), origin_ns, max(end_ns - origin_ns, 1))
    values = []
    for number, row in enumerate(rows, 1):
        idle = row["kind"] == "idle"
        indent = "" if idle or row.get("depth") is None else "· " * (row["depth"] + 1)
        values.append({
            "label": f"{number}. {indent}{'(idle)' if idle else row['name'] or '(unnamed)'}",
            "start": (row["start_ns"] - origin_ns) / 1e9,
            "end": (row["end_ns"] - origin_ns) / 1e9,
            "shade": "idle" if idle else "error" if row.get("status") == "error" else row["kind"],
        })  # fmt: skip
    return svg({
        "data": {"values": values},
        "mark": "bar",
        "width": 640, "height": {"step": 16},
        "encoding": {
            "y": {"field": "label", "type": "ordinal", "sort": None, "title": None,
                  "axis": {"labelLimit": 280}},
            "x": {"field": "start", "type": "quantitative", "title": "seconds from the start",
                  "scale": {"domain": [0, (end_ns - origin_ns) / 1e9]}},
            "x2": {"field": "end"},
            "color": {"field": "shade", "type": "nominal", "title": None,
                      "scale": {"domain": list(_SHADES), "range": list(_SHADES.values())},
                      "legend": {"orient": "top"}},
        },
    })  # fmt: skip
