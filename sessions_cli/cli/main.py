"""The `sessions` command: parse options -> call the library -> render. Click only.

Heavy modules (polars and everything built on it) are imported inside commands, so that
`sessions --help` starts fast.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys

# Polars allocates through its own jemalloc, which by default keeps freed pages for 10 s in
# each of four arenas per core: a page one thread freed could not serve another thread's next
# allocation, so reading a big export held hundreds of MB it no longer used. Returning pages at
# once cost page faults on reuse instead (perf: a quarter of CPU time in the kernel). So: one
# arena per core, freed pages kept 5 s, no purge thread (it cost time and saved nothing).
# Measurements: benchmarks/RESULTS.md. Must be set before polars loads.
os.environ.setdefault(
    "_RJEM_MALLOC_CONF",
    f"narenas:{os.cpu_count() or 1},background_thread:false,dirty_decay_ms:5000,muzzy_decay_ms:0",
)

import click

from sessions_cli import __version__
from sessions_cli.cli import config, diff, options, report, steps
from sessions_cli.errors import ExitCode, SessionsError
from sessions_cli.output import humanise


def _price_table() -> str:
    """Which dated price table is bundled: the installed genai-prices release."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"genai-prices {version('genai-prices')}"
    except PackageNotFoundError:  # pragma: no cover - a broken install
        return "not installed"


def _show_version(ctx: click.Context) -> None:
    from sessions_cli.read import native

    click.echo(f"sessions {__version__} (price table: {_price_table()}; "
               f"JSON reader: {native.describe()}; "
               f"protobuf reader: {native.describe_protobuf()})")  # fmt: skip
    ctx.exit()


class RowsCommand(click.Command):
    """A command whose rows take --columns (list, show, timeline): `--json FIELDS`, as gh
    spells it, is read as --json --fields FIELDS. Only a value that can be nothing but field
    names counts: lowercase names and commas, and no such file; so `--json traces/` and
    `--json sess-42` keep meaning JSON of that path or session."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out, rest = [], list(args)
        while rest:
            arg = rest.pop(0)
            out.append(arg)
            if arg == "--":
                out += rest
                break
            fields = rest[0] if arg == "--json" and rest else ""
            if _FIELD_LIST.match(fields) and not os.path.exists(fields):
                out += ["--fields", rest.pop(0)]
        return super().parse_args(ctx, out)


_FIELD_LIST = re.compile(r"^[a-z][a-z0-9_]*(,[a-z][a-z0-9_]*)*$")


class SessionsGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SessionsError as exc:
            raise steps.CliError(steps.error_text(exc), exc.code) from None


@click.group(
    cls=SessionsGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    # A callback, not click.version_option: its message would look the price table's release
    # up on every start-up (24 ms), for the one run that asks.
    callback=lambda ctx, _param, value: _show_version(ctx) if value else None,
    help="Show the version (and the price table's release) and exit.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="SESSIONS_CONFIG",
    metavar="FILE",
    help="Option defaults from FILE (sessions.toml, or a pyproject.toml with [tool.sessions]). "
    "By default the nearest one from the working directory up is used; flags override it.",
)
@click.option("--no-config", is_flag=True, help="Use no config file.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, no_config: bool) -> None:
    """Session analytics for LLM application traces (OpenTelemetry exports).

    Traces that share a session id form a session: a conversation, a workflow, a batch job.
    Read OTLP exports (JSON, protobuf or console output; plain, gzip or zstd) or flat records, and
    list, inspect, total and compare them. Input comes from PATHS (files, directories, globs,
    or - for stdin), from piped stdin, or from $SESSIONS_TRACES. Option defaults may come from
    sessions.toml or [tool.sessions] in pyproject.toml, found from the working directory up.
    """
    if not no_config:
        ctx.default_map = config.default_map(ctx.command, config_file, search=True)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Commands


@cli.command("list", cls=RowsCommand)
@options.input_options
@options.filter_options
@click.option(
    "--orphans",
    is_flag=True,
    help="List the traces that belong to no session, instead of sessions.",
)
@click.option(
    "--sort",
    "sort_name",
    type=click.Choice(options.SORT_NAMES),
    default="start",
    show_default=True,
    help="Sort by this field.",
)
@click.option(
    "--asc/--desc",
    "ascending",
    default=None,
    help="Sort direction (default: descending, so newest or largest first).",
)
@click.option(
    "--totals",
    is_flag=True,
    help="A last table row with the sums of the counts, tokens and cost of the rows shown "
    "(as ccusage prints; for totals in machine formats, see stats).",
)
@click.option(
    "--order",
    type=click.Choice(["asc", "desc"]),
    help="The sort direction as ccusage names it: --order asc is --asc.",
)
@options.limit_option
@options.output_options
def list_command(
    paths,
    strict,
    session_keys,
    price_file,
    cost_mode,
    orphans,
    sort_name,
    ascending,
    order,
    totals,
    limit,
    fmt,
    columns,
    tz,
    **filter_args,
) -> None:
    """List sessions, one row each, filtered and sorted (newest first).

    \b
    Examples:
      sessions list traces/ --since 7d --sort cost --limit 10
      sessions list export.jsonl.gz --user alice --json | jq '.[].cost_usd'
      sessions list --orphans traces.jsonl
    """
    from sessions_cli.model.sessions import ORPHAN_FIELDS, SESSION_FIELDS
    from sessions_cli.query import filters as query

    if totals and fmt != "table":
        raise click.BadParameter(
            "a table row: for totals in machine formats use sessions stats", param_hint="--totals"
        )
    if order is not None and ascending is not None and ascending != (order == "asc"):
        raise click.UsageError(f"--{'asc' if ascending else 'desc'} and --order {order} disagree")
    ascending = ascending if ascending is not None else order == "asc"
    zone = options.zone_from(tz)
    filters = options.filters_from(filter_args, zone)
    model = steps.load(
        paths,
        strict=strict,
        session_keys=session_keys,
        price_file=price_file,
        cost_mode=cost_mode,
        spans_again=False,
    )
    # Two kinds of row: sessions, or (--orphans) the traces that belong to none.
    if orphans:
        rows = query.filter_orphans(model.orphans, filters)
        kind, id_column, fields, sort_keys = (
            "traces",
            "trace_id",
            ORPHAN_FIELDS,
            query.ORPHAN_SORT_KEYS,
        )
        empty_note = "no traces without a session match"
    else:
        rows = query.filter_sessions(model.sessions, filters)
        kind, id_column, fields, sort_keys = (
            "sessions",
            "session_id",
            SESSION_FIELDS,
            query.SORT_KEYS,
        )
        empty_note = "no sessions match"
    matched = rows.height
    rows = query.sort_rows(
        rows, sort_keys[sort_name], descending=not ascending, id_column=id_column, limit=limit
    )
    if rows.height < matched:
        click.echo(f"sessions: showing {rows.height:,} of {humanise.count(matched, kind[:-1])} "
                   "(--limit)", err=True)  # fmt: skip
    steps.note_unpriced(rows)
    steps.emit(rows, fields, kind=kind, fmt=fmt, columns=columns, zone=zone,
               empty_note=empty_note, totals=totals)  # fmt: skip


@cli.command("show", cls=RowsCommand)
@click.argument("session_id", metavar="SESSION_ID")
@options.input_options
@options.output_options
def show_command(session_id, paths, strict, session_keys, price_file, cost_mode, fmt, columns, tz):
    """Show one session: its totals, then its traces in time order.

    SESSION_ID may be a unique prefix. --json gives {"session": {...}, "traces": [...]}; the
    other machine formats give the trace rows.

    \b
    Examples:
      sessions show sess-42 traces/
      sessions show sess-42 traces/ --json | jq '.traces[] | select(.status == "error")'
    """
    from sessions_cli.model.sessions import SESSION_FIELDS, TRACE_FIELDS
    from sessions_cli.output import render
    from sessions_cli.query import filters as query
    from sessions_cli.query import timeline

    zone = options.zone_from(tz)
    steps.check_id_first(session_id, paths)
    model = steps.load(
        paths, strict=strict, session_keys=session_keys, price_file=price_file, cost_mode=cost_mode
    )
    found = query.resolve_session(
        model.sessions.get_column("session_id"), session_id, lambda: model.traces
    )
    one = timeline.session(model, found)
    session, traces = one.row, one.traces
    steps.note_unpriced(session)
    if fmt == "json":
        fields = options.checked_columns(columns, TRACE_FIELDS) or TRACE_FIELDS
        document = {"session": render.to_records(session.select(SESSION_FIELDS))[0],
                    "traces": traces.select(fields)}  # fmt: skip
        steps.out(steps.jq_filtered(render.to_json(document)))
        return
    if fmt == "table":
        steps.out(render.summary(session.row(0, named=True), tz=zone) + "\n")
    steps.emit(traces, TRACE_FIELDS, kind="session_traces", fmt=fmt, columns=columns, zone=zone,
          empty_note="the session has no traces", seconds=True)  # fmt: skip


@cli.command("timeline", cls=RowsCommand)
@click.argument("session_id", metavar="SESSION_ID")
@options.input_options
@click.option(
    "--spans", is_flag=True, help="Show every span, as a tree under its trace (depth-first)."
)
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    metavar="N",
    help="Show spans at most N levels below their trace's root (0: roots only). Implies --spans.",
)
@options.limit_option
@click.option("--ascii", "ascii_only", is_flag=True, help="Draw with plain ASCII characters.")
@options.output_options
# Over 60 lines by its docstring, which is the command's --help text.
def timeline_command(
    session_id,
    paths,
    strict,
    session_keys,
    price_file,
    cost_mode,
    spans,
    depth,
    limit,
    ascii_only,
    fmt,
    columns,
    tz,
):
    """Draw one session's traces (and with --spans, their spans) on a time axis.

    Each row shows its offset from the session's start, its duration, and the tokens and cost of
    its own LLM calls. Idle time between traces gets a row of its own. Machine formats give one
    event per row (kind: trace or span), in the same order, with offsets in ms.

    \b
    Examples:
      sessions timeline sess-42 traces/
      sessions timeline sess-42 traces/ --spans --depth 2
      sessions timeline sess-42 traces/ --spans --jsonl | jq 'select(.status == "error")'
    """
    from sessions_cli.output import draw
    from sessions_cli.query import filters as query
    from sessions_cli.query import timeline

    zone = options.zone_from(tz)
    steps.check_id_first(session_id, paths)
    model = steps.load(
        paths, strict=strict, session_keys=session_keys, price_file=price_file, cost_mode=cost_mode
    )
    found = query.resolve_session(
        model.sessions.get_column("session_id"),
        session_id,
        lambda: model.traces,
        command="timeline",
    )
    one = timeline.session(model, found)
    steps.note_unpriced(one.row)
    rows = timeline.events(model, one, spans=spans or depth is not None, depth=depth)
    session = one.row.row(0, named=True)
    if limit is not None and limit < len(rows):
        click.echo(f"sessions: showing the first {limit:,} of {len(rows):,} rows", err=True)
        rows = rows.head(limit)
    if fmt != "table":
        steps.emit(rows, timeline.EVENT_FIELDS, kind="events", fmt=fmt, columns=columns, zone=zone,
              empty_note="no rows")  # fmt: skip
        return
    if columns:
        raise click.BadParameter("applies to machine formats only", param_hint="--columns")
    if one.start_ns is None or one.end_ns is None:
        raise SessionsError(f"{found}: no span of this session has times, so there is no timeline "
                            "to draw (its rows: --json)")  # fmt: skip
    steps.out(draw.title(session, zone) + "\n\n")
    for piece in draw.timeline(
        rows,
        origin_ns=one.start_ns,
        end_ns=one.end_ns,
        width=shutil.get_terminal_size((100, 24)).columns,
        ascii=ascii_only,
        colour=steps.colour_wanted(),
    ):
        steps.out(piece)


@cli.command("convert")
@click.argument("paths", nargs=-1, metavar="[PATHS]...")
@options.parsing_options
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="FILE",
    help="Where to write the spans: FILE.parquet (fast to read back), .jsonl or .csv.",
)
def convert_command(paths, strict, session_keys, output):
    """Write the normalised spans of PATHS to one file, to query it again and again quickly.

    JSON parsing is most of the time a command takes on a big export; every command reads the
    Parquet file this writes many times faster than the JSON it came from, with the same
    results. Spans are deduplicated; their columns are the flat span records of the README.

    \b
    Examples:
      sessions convert traces/ -o spans.parquet
      sessions list spans.parquet --sort cost --limit 10
    """
    from sessions_cli.output import export

    suffix = os.path.splitext(output)[1].lower()
    if suffix not in export.WRITABLE:  # before reading anything
        raise click.BadParameter(
            f"unknown output type {suffix or '(none)'!r}: use .parquet, .jsonl or .csv",
            param_hint="--output",
        )
    store, report = steps.store_of(
        paths, strict=strict, session_keys=session_keys, spans_again=False
    )
    try:
        written = export.write(store.groups(), output, scratch=store.directory)
    except OSError as exc:
        raise steps.CliError(
            f"{output}: cannot write ({exc.strerror or exc})", ExitCode.ERROR
        ) from None
    steps.warn_read(store, report)
    click.echo(f"sessions: wrote {humanise.count(written, 'span')} to {output}", err=True)


@cli.command("stats")
@options.input_options
@options.filter_options
@click.option(
    "--by",
    type=options.QueryValue("field", "check_grouping"),
    metavar="FIELD",
    help="Also total per group: user, model, provider, name, tag, day, week, month or meta:KEY. "
    "By model or provider each LLM call counts for its own group, so the rows add up to the "
    "totals; by the others a session counts whole, in each of its groups (several users or "
    "tags: several groups). Days, weeks (ISO) and months are of the session's start, in --tz "
    "(default UTC).",
)
@options.budget_options
@options.output_options
# Over 60 lines by its docstring, which is the command's --help text.
def stats_command(paths, strict, session_keys, price_file, cost_mode, by, fmt, columns, tz,
                  **given):  # fmt: skip
    """Totals, per-session distributions and group totals, with budget checks for CI.

    Distributions of cost, tokens, duration and trace count per session give count, min, mean,
    p50, p90, p95, p99 and max; percentiles interpolate linearly between the two nearest ranks
    (numpy's default, Excel's PERCENTILE.INC). Traces without a session are counted, not added.

    Budgets: the report is printed as usual, each breach is a line on stderr, and the exit
    code is 3 when any budget is exceeded (a value equal to its limit holds). --json carries a
    "budgets" list. --format csv/tsv/jsonl give the group rows with --by, else the
    distribution rows; --format markdown is a summary for a CI job page.

    \b
    Examples:
      sessions stats traces/ --by model
      sessions stats traces/ --since 24h --max-session-cost 0.50 --max-error-rate 5%
      sessions stats traces/ --format markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from sessions_cli.output import render_stats
    from sessions_cli.query import filters as query
    from sessions_cli.query import stats

    limits = {name: given.pop(name) for name in options.BUDGETS}
    allow_empty, allow_unpriced = given.pop("allow_empty"), given.pop("allow_unpriced")
    warn_at = given.pop("warn_at")
    zone = options.zone_from(tz)
    filters = options.filters_from(given, zone)
    model = steps.load(
        paths,
        strict=strict,
        session_keys=session_keys,
        price_file=price_file,
        cost_mode=cost_mode,
        need_spans=not allow_empty and any(limit is not None for limit in limits.values()),
        spans_again=False,
    )
    sessions = query.filter_sessions(model.sessions, filters)
    if sessions.is_empty():
        click.echo("sessions: no sessions match", err=True)
    steps.note_unpriced(sessions)
    orphans = query.filter_orphans(model.orphans, filters)
    found = stats.report(sessions, orphans, by=by, zone=zone, limits=limits,
                         allow_unpriced=allow_unpriced, warn_at=warn_at)  # fmt: skip
    if fmt == "json":
        text = steps.jq_filtered(render_stats.as_json(found))
    elif fmt == "table":
        notes: list[str] = []
        text = render_stats.as_table(found, width=steps.table_width(), notes=notes)
        steps.warn(notes, empty=False)
    elif fmt == "markdown":
        text = render_stats.as_markdown(found)
    else:  # one kind of row for row formats: the groups with --by, else the distributions
        fields = (found.groups if found.groups is not None else found.distributions).columns
        text = render_stats.as_rows(found, fmt, columns=options.checked_columns(columns, fields),
                                    raw_csv=steps.raw_csv(), header=steps.headers())  # fmt: skip
    findings = [("error", line) for line in render_stats.breach_lines(found.budgets)]
    findings += [("warning", line) for line in render_stats.near_lines(found.budgets)]
    steps.gate(text, findings, title="sessions budget")


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell):
    """Print the shell completion script for SHELL: commands, options and their choices.

    \b
    Examples:
      eval "$(sessions completion bash)"      # in ~/.bashrc
      eval "$(sessions completion zsh)"       # in ~/.zshrc
      sessions completion fish > ~/.config/fish/completions/sessions.fish
    """
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    assert complete is not None  # click has all three
    steps.out(complete(cli, {}, "sessions", "_SESSIONS_COMPLETE").source() + "\n")


cli.add_command(diff.diff_command)
cli.add_command(report.report_command)


class _Terminated(BaseException):
    """SIGTERM arrived; a BaseException, so that no `except Exception` swallows it."""


def _terminated(signum, frame) -> None:
    raise _Terminated


def main() -> None:
    """Console entry point: exit codes, quiet pipes and Ctrl-C, and never a traceback."""
    # Whatever text came in, what goes out must encode: never fail on a stray character.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    # SIGTERM (a CI job cancelled, `timeout`) unwinds like Ctrl-C, so that the command's
    # clean-ups run: spilled spans are removed from $TMPDIR, not left behind.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        code = cli.main(prog_name="sessions", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Abort:
        click.echo("sessions: interrupted", err=True)
        code = ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        click.echo("sessions: interrupted", err=True)
        code = ExitCode.INTERRUPTED
    except _Terminated:
        click.echo("sessions: terminated", err=True)
        code = 128 + signal.SIGTERM
    except (BrokenPipeError, steps.ReaderGone):
        # The reader went away (`| head`): what it wanted was printed. Silence the final flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = ExitCode.OK
    except Exception as exc:  # a bug: say so plainly, without a traceback
        if os.environ.get("SESSIONS_DEBUG"):
            raise
        click.echo(
            f"sessions: internal error: {type(exc).__name__}: {humanise.plain(str(exc))} "
            "(set SESSIONS_DEBUG=1 for a traceback, and please report it)",
            err=True,
        )
        code = ExitCode.ERROR
    if os.environ.get("SESSIONS_TIMING") and steps.TIMINGS:
        phases = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in steps.TIMINGS.items())
        click.echo(f"sessions: timing: {phases}", err=True)
    sys.exit(int(code or 0))
