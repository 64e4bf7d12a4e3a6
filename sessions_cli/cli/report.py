"""`sessions report`: the sessions of an export as one offline HTML page."""

from __future__ import annotations

import click

from sessions_cli.cli import options, steps
from sessions_cli.errors import ExitCode


@click.command("report")
@options.input_options
@options.filter_options
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="FILE",
    help="Where to write the page (FILE.html), or - for stdout.",
)
@click.option(
    "--sessions",
    "detailed",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    metavar="N",
    help="Give the N most expensive sessions a section each: their traces and a timeline of "
    "their spans.",
)
@click.option("--title", metavar="TEXT", help="The page's title (default: the input's name).")
@options.tz_option
# Over 60 lines by its docstring, which is the command's --help text.
def report_command(paths, strict, session_keys, price_file, cost_mode, output, detailed, title,
                   tz, **given):  # fmt: skip
    """Write one self-contained HTML page of the sessions: figures, charts, a table, timelines.

    The page opens offline and fetches nothing (a strict Content-Security-Policy). It has the
    headline figures (cost with unpriced calls flagged, tokens, error rate, p50/p95 session cost
    and duration) and the time range; charts of cost and tokens per day (per hour for ranges
    under three days), of session cost and duration, and of cost by model; the session table,
    sortable by every column, searchable by id, name or user, filterable by user, model, tag
    and errors, a page at a time; and a section for each of the most expensive sessions with
    its traces and a timeline of its spans. Its numbers are those of list --json and
    timeline --spans --json.

    \b
    Examples:
      sessions report traces/ -o report.html
      sessions report traces/ --since 7d --user alice --sessions 20 -o alice.html
    """
    from sessions_cli import __version__
    from sessions_cli.output import export, report_html
    from sessions_cli.query import filters as query
    from sessions_cli.query import report

    zone = options.zone_from(tz)
    filters = options.filters_from(given, zone)
    model = steps.load(
        paths, strict=strict, session_keys=session_keys, price_file=price_file, cost_mode=cost_mode
    )
    sessions = query.filter_sessions(model.sessions, filters)
    if sessions.is_empty():
        click.echo("sessions: no sessions match: the report is empty", err=True)
    steps.note_unpriced(sessions)
    found = report.build(model, sessions, query.filter_orphans(model.orphans, filters),
                         zone=zone, detailed=detailed)  # fmt: skip
    page = report_html.page(found, zone=zone, title=title or _title(paths),
                            generator=f"sessions {__version__}")  # fmt: skip
    if output == "-":
        steps.out(page)
        return
    try:
        with export.atomic(output) as temporary, open(temporary, "w", encoding="utf-8") as file:
            file.write(page)
    except OSError as exc:
        raise steps.CliError(
            f"{output}: cannot write ({exc.strerror or exc})", ExitCode.ERROR
        ) from None
    size = len(page.encode())
    click.echo(f"sessions: wrote {output} ({size / 1e6:.1f} MB)", err=True)


def _title(paths: tuple[str, ...]) -> str:
    names = ", ".join(paths) if paths else "stdin"
    return f"Sessions: {names if len(names) <= 80 else names[:79] + '…'}"
