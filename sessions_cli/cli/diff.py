"""`sessions diff BASE NEW`: two exports compared, a regression gate for CI."""

from __future__ import annotations

import click

from sessions_cli.cli import options, steps


@click.command("diff")
@click.argument("base", required=False, metavar="BASE")
@click.argument("new", required=False, metavar="NEW")
@options.reading_options
@options.filter_options
@click.option(
    "--by",
    type=options.QueryValue("field", "check_grouping", "diff"),
    metavar="FIELD",
    help="Compare per group: trace_name, model, user, tag or meta:KEY (default: overall). By "
    "trace_name a session's traces of each name count together; by model each LLM call counts "
    "for its own model, with the traces that made it.",
)
@click.option(
    "--max-increase",
    "thresholds",
    multiple=True,
    type=options.QueryValue("threshold", "parse_threshold", "diff"),
    metavar="METRIC=LIMIT",
    help="Fail (exit 3) when METRIC grows by more than LIMIT from BASE to NEW: a percentage "
    "(cost_total=10%) or an amount in the metric's unit (cost_p95=$0.02, duration_p95=500ms, "
    "error_rate=2pp, tokens_mean=1500). Repeatable.",
)
@click.option(
    "--min-sessions",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    metavar="N",
    help="Gate only groups with at least N sessions on both sides; smaller ones are shown, "
    "not gated.",
)
@options.warn_at_option
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Let thresholds pass when a side has no spans. By default a gate on empty input "
    "fails (exit 1): nothing read is not a pass.",
)
@click.option(
    "--allow-unpriced",
    is_flag=True,
    help="Compare the known costs when some LLM calls have no price. By default a cost "
    "threshold over such calls fails (exit 3, reason unpriced).",
)
@options.output_options
# Over 60 lines by its docstring, which is the command's --help text.
def diff_command(base, new, strict, session_keys, price_file, cost_mode, by, thresholds,
                 min_sessions, warn_at, allow_empty, allow_unpriced, fmt, columns, tz,
                 **given):  # fmt: skip
    """Compare two exports: cost, tokens, latency and errors per session, BASE against NEW.

    BASE and NEW are each a file, directory, glob (quoted) or a Parquet file from convert;
    the filters apply to both. Metrics: sessions, cost_total, cost_mean, cost_p50, cost_p95,
    tokens_total, tokens_mean, tokens_p95, duration_p50, duration_p95, llm_calls_mean,
    error_rate (sessions with errors / sessions) and unpriced_calls, each with its change.
    Groups on one side only are listed as added or removed. A value equal to its limit holds.

    \b
    Examples:
      sessions diff baseline.parquet traces/ --max-increase cost_p95=10%
      sessions diff main/ pr/ --by model --format markdown >> "$GITHUB_STEP_SUMMARY"
      sessions diff main/ pr/ --json | jq '.breaches'
    """
    import polars as pl

    from sessions_cli.output import render_diff
    from sessions_cli.query import diff

    if base is None or new is None:
        raise click.UsageError(
            "diff needs BASE and NEW: two exports (files, directories, quoted globs or Parquet "
            "files from convert), or base and new in [diff] of sessions.toml"
        )
    metrics = {threshold.metric for threshold in thresholds}
    if len(metrics) < len(thresholds):
        raise click.BadParameter("each metric may have one limit", param_hint="--max-increase")
    if columns and fmt not in ("csv", "tsv", "jsonl"):
        raise click.BadParameter("applies to csv, tsv and jsonl only", param_hint="--columns")
    zone = options.zone_from(tz)
    filters = options.filters_from(given, zone)
    sides, shown = [], []
    for path in (base, new):
        with steps.released():
            sessions, traces = _side(path, filters, by, strict=strict, session_keys=session_keys,
                                     price_file=price_file, cost_mode=cost_mode,
                                     need_spans=bool(thresholds) and not allow_empty)  # fmt: skip
            sides.append(diff.metrics(diff.units(sessions, traces, by), by))
            shown.append(sessions)
    steps.note_unpriced(pl.concat(shown, how="diagonal_relaxed"))
    report = diff.compare(*sides, by=by, thresholds=tuple(thresholds), min_sessions=min_sessions,
                          allow_unpriced=allow_unpriced, warn_at=warn_at)  # fmt: skip
    if fmt == "json":
        text = steps.jq_filtered(render_diff.as_json(report))
    elif fmt == "markdown":
        text = render_diff.as_markdown(report)
    elif fmt == "table":
        text = render_diff.as_table(report, colour=steps.colour_wanted())
    else:
        wanted = options.checked_columns(columns, render_diff.ROW_COLUMNS)
        text = render_diff.as_rows(
            report, fmt, raw_csv=steps.raw_csv(), header=steps.headers(), columns=wanted
        )
    if report.verdict == "not gated":
        click.echo(f"sessions: warning: {render_diff.not_gated(report)}", err=True)
    findings = [(level, f"diff: {line}") for level, line in render_diff.breach_lines(report)]
    steps.gate(text, findings, title="sessions diff")


def _side(path, filters, by, **load):
    """One side's sessions after the filters, and (by trace_name or model) their traces."""
    from sessions_cli.query import filters as query

    model = steps.load((path,), **load, spans_again=False)
    sessions = query.filter_sessions(model.sessions, filters)
    if sessions.is_empty():
        click.echo(f"sessions: {path}: no sessions match", err=True)
    return sessions, model.traces if by in ("trace_name", "model") else None
