"""The `sessions` command: parse options -> call the library -> render. Click only.

Heavy modules (polars and everything built on it) are imported inside commands, so that
`sessions --help` starts fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import sys
from datetime import tzinfo

# Polars allocates through its own jemalloc. Its default keeps freed pages for 10 s per thread
# arena, so reading a big export held hundreds of MB it no longer used; returning them at once
# (200 ms) cost page faults on reuse instead (perf: a quarter of all CPU time in the kernel).
# Measured on 1M spans (16 MB batches): 200 ms 12.3 s and 460 MB, 5 s without the background
# purge thread 11.2-11.7 s and 490-530 MB. Must be set before polars loads.
os.environ.setdefault(
    "_RJEM_MALLOC_CONF", "background_thread:false,dirty_decay_ms:5000,muzzy_decay_ms:0"
)

import click

from sessions_cli import __version__
from sessions_cli.errors import ExitCode, SessionsError
from sessions_cli.kinds import COST_MODES, FORMATS
from sessions_cli.output import humanise
from sessions_cli.tuning import Tuning

# Sizes and worker counts for every command, from this machine's cores.
TUNING = Tuning()

SORT_NAMES = ("start", "end", "cost", "tokens", "duration", "traces", "spans", "errors", "name",
              "user")  # fmt: skip


def _price_table() -> str:
    """Which dated price table is bundled: the installed genai-prices release."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"genai-prices {version('genai-prices')}"
    except PackageNotFoundError:  # pragma: no cover - a broken install
        return "not installed"


def _show_version(ctx: click.Context) -> None:
    click.echo(f"sessions {__version__} (price table: {_price_table()})")
    ctx.exit()


class CliError(click.ClickException):
    """A library error as the user sees it: `sessions: error: ...` and the contract's code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        # click declares exit_code on the class; each error carries its own.
        self.exit_code = code  # type: ignore[misc]

    def show(self, file=None) -> None:
        # Messages quote what users and their data typed: escapes must not reach the terminal.
        click.echo(f"sessions: error: {humanise.plain(self.format_message())}", err=True)


class SessionsGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SessionsError as exc:
            raise CliError(str(exc), exc.code) from None


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
def cli() -> None:
    """Session analytics for LLM application traces (OpenTelemetry exports).

    Traces that share a session id form a session: a conversation, a workflow, a batch job.
    Read OTLP JSON exports (plain, gzip or zstd), protobuf-JSON, or flat span records, and
    list, inspect and total them. Input comes from PATHS (files, directories, globs, or - for
    stdin), from piped stdin, or from $SESSIONS_TRACES.
    """


# ---------------------------------------------------------------------------------------------
# Options, defined once


def _stacked(decorators, command):
    """Apply option decorators as if written one above the other, first on top."""
    return functools.reduce(lambda f, d: d(f), reversed(decorators), command)


class _PriceFile(click.ParamType):
    """--prices FILE, read and checked as the options are parsed: its errors are usage errors."""

    name = "file"

    def convert(self, value, param, ctx):
        if isinstance(value, dict):
            return value
        from sessions_cli.model import pricing

        try:
            return pricing.load_price_file(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def input_options(command):
    decorators = [
        click.argument("paths", nargs=-1, metavar="[PATHS]..."),
        click.option(
            "--strict",
            is_flag=True,
            help="Fail (exit 1) on malformed input instead of skipping it with a warning.",
        ),
        click.option(
            "--session-key",
            "session_keys",
            multiple=True,
            metavar="KEY",
            help="Attribute holding the session id; replaces the built-in key list. "
            "Repeatable: the first key present wins.",
        ),
        click.option(
            "--prices",
            "price_file",
            type=_PriceFile(),
            metavar="FILE",
            help="JSON prices overriding the bundled table: "
            '{"model": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}.',
        ),
        click.option(
            "--cost-mode",
            type=click.Choice(COST_MODES),
            default="auto",
            show_default=True,
            help="auto: cost attribute, else price table; attribute: attributes only; "
            "calculate: price table only.",
        ),
    ]
    return _stacked(decorators, command)


def filter_options(command):
    # Long, but a list of option declarations: data with nothing to split off.
    decorators = [
        click.option(
            "--since",
            metavar="WHEN",
            help="Only sessions active at or after WHEN: a date/time (without a zone: in --tz, "
            "default UTC), or an age such as 30m, 24h, 7d, 2w; also today, yesterday.",
        ),
        click.option(
            "--until",
            metavar="WHEN",
            help="Only sessions active at or before WHEN; a date without a time takes in that "
            "whole day.",
        ),
        click.option(
            "--user",
            "users",
            multiple=True,
            help="Only sessions of this user (any of the session's users). Repeatable: "
            "any of them.",
        ),
        click.option(
            "--search",
            metavar="TEXT",
            help="Only sessions whose id or name contains TEXT (case-insensitive).",
        ),
        click.option(
            "--tag",
            "tags",
            multiple=True,
            help="Only sessions carrying this tag. Repeatable: all of them.",
        ),
        click.option(
            "--meta",
            "meta",
            multiple=True,
            metavar="KEY=VALUE",
            help="Only sessions whose metadata KEY equals VALUE. Repeatable: all.",
        ),
        click.option(
            "--model",
            "models",
            multiple=True,
            help="Only sessions that called this model. Repeatable: any of them.",
        ),
        click.option("--min-cost", type=float, metavar="USD", help="Only sessions costing >= USD."),
        click.option("--max-cost", type=float, metavar="USD", help="Only sessions costing <= USD."),
        click.option(
            "--min-tokens",
            type=click.IntRange(min=0),
            metavar="N",
            help="Only sessions with at least N total tokens.",
        ),
        click.option(
            "--min-traces",
            type=click.IntRange(min=0),
            metavar="N",
            help="Only sessions with at least N traces.",
        ),
        click.option("--errors", is_flag=True, help="Only sessions with at least one error span."),
    ]
    return _stacked(decorators, command)


def output_options(command):
    decorators = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default="table",
            show_default=True,
            help="table is for people; the others are for programs (raw numbers, UTC).",
        ),
        click.option("--json", "fmt", flag_value="json", help="Short for --format json."),
        click.option("--csv", "fmt", flag_value="csv", help="Short for --format csv."),
        click.option(
            "--columns",
            metavar="A,B,C",
            help="Fields to show, in this order (see the README for the field list).",
        ),
        click.option(
            "--raw-csv",
            is_flag=True,
            expose_value=False,  # read where CSV is written: _raw_csv()
            callback=lambda ctx, _param, value: ctx.meta.__setitem__("raw_csv", value),
            help="Write CSV/TSV text exactly as it came. By default a cell starting with = + - @ "
            "tab or CR gets a leading ' so that spreadsheets do not run it as a formula.",
        ),
        click.option(
            "--tz",
            metavar="ZONE",
            help="Time zone for table times and for dates and times typed without one "
            "(--since, --until): an IANA name or 'local' (default UTC). Machine formats are "
            "always UTC.",
        ),
    ]
    return _stacked(decorators, command)


# ---------------------------------------------------------------------------------------------
# Commands


@cli.command("list")
@input_options
@filter_options
@click.option(
    "--orphans",
    is_flag=True,
    help="List the traces that belong to no session, instead of sessions.",
)
@click.option(
    "--sort",
    "sort_name",
    type=click.Choice(SORT_NAMES),
    default="start",
    show_default=True,
    help="Sort by this field.",
)
@click.option(
    "--asc/--desc",
    "ascending",
    default=False,
    help="Sort direction (default: descending, so newest or largest first).",
)
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="Show at most N rows.")
@output_options
def list_command(
    paths,
    strict,
    session_keys,
    price_file,
    cost_mode,
    orphans,
    sort_name,
    ascending,
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

    zone = _zone(tz)
    filters = _filters(filter_args, zone)
    model = _load(
        paths, strict=strict, session_keys=session_keys, price_file=price_file, cost_mode=cost_mode
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
    rows = query.sort_rows(
        rows, sort_keys[sort_name], descending=not ascending, id_column=id_column, limit=limit
    )
    _note_unpriced(rows)
    _emit(rows, fields, kind=kind, fmt=fmt, columns=columns, zone=zone, empty_note=empty_note)


@cli.command("show")
@click.argument("session_id", metavar="SESSION_ID")
@input_options
@output_options
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

    zone = _zone(tz)
    model = _load(
        paths, strict=strict, session_keys=session_keys, price_file=price_file, cost_mode=cost_mode
    )
    found = query.resolve_id(model.sessions.get_column("session_id"), session_id)
    one = timeline.session(model, found)
    session, traces = one.row, one.traces
    _note_unpriced(session)
    if fmt == "json":
        fields = _columns(columns, TRACE_FIELDS) or TRACE_FIELDS
        document = {"session": render.to_records(session.select(SESSION_FIELDS))[0],
                    "traces": traces.select(fields)}  # fmt: skip
        _out(render.to_json(document))
        return
    if fmt == "table":
        _out(render.summary(session.row(0, named=True), tz=zone) + "\n")
    _emit(traces, TRACE_FIELDS, kind="session_traces", fmt=fmt, columns=columns, zone=zone,
          empty_note="the session has no traces", seconds=True)  # fmt: skip


@cli.command("timeline")
@click.argument("session_id", metavar="SESSION_ID")
@input_options
@click.option(
    "--spans", is_flag=True, help="Show every span, as a tree under its trace (depth-first)."
)
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    metavar="N",
    help="Show spans at most N levels below their trace's root (0: roots only). Implies --spans.",
)
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="Show at most N rows.")
@click.option("--ascii", "ascii_only", is_flag=True, help="Draw with plain ASCII characters.")
@output_options
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
      sessions timeline sess-42 traces/ --spans --json | jq 'select(.status == "error")'
    """
    from sessions_cli.output import draw
    from sessions_cli.query import filters as query
    from sessions_cli.query import timeline

    zone = _zone(tz)
    model = _load(
        paths, strict=strict, session_keys=session_keys, price_file=price_file, cost_mode=cost_mode
    )
    found = query.resolve_id(model.sessions.get_column("session_id"), session_id)
    one = timeline.session(model, found)
    _note_unpriced(one.row)
    rows = timeline.events(model, one, spans=spans or depth is not None, depth=depth)
    session = one.row.row(0, named=True)
    if limit is not None and limit < len(rows):
        click.echo(f"sessions: showing the first {limit:,} of {len(rows):,} rows", err=True)
        rows = rows.head(limit)
    if fmt != "table":
        _emit(rows, timeline.EVENT_FIELDS, kind="events", fmt=fmt, columns=columns, zone=zone,
              empty_note="no rows")  # fmt: skip
        return
    if columns:
        raise click.BadParameter("applies to machine formats only", param_hint="--columns")
    if one.start_ns is None or one.end_ns is None:
        raise SessionsError(f"{found}: no span of this session has times, so there is no timeline "
                            "to draw (its rows: --json)")  # fmt: skip
    text = draw.timeline(
        rows,
        origin_ns=one.start_ns,
        end_ns=one.end_ns,
        width=shutil.get_terminal_size((100, 24)).columns,
        ascii=ascii_only,
        colour=_colour_wanted(),
    )
    _out(draw.title(session, zone) + "\n\n" + text)


@cli.command("convert")
@input_options
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="FILE",
    help="Where to write the spans: FILE.parquet (fast to read back), .jsonl or .csv.",
)
def convert_command(paths, strict, session_keys, price_file, cost_mode, output):
    """Write the normalised spans of PATHS to one file, to query it again and again quickly.

    JSON parsing is most of the time a command takes on a big export; every command reads the
    Parquet file this writes many times faster than the JSON it came from, with the same
    results. Spans are deduplicated; their columns are the flat span records of the README.

    \b
    Examples:
      sessions convert traces/ -o spans.parquet
      sessions list spans.parquet --sort cost --limit 10
    """
    del price_file, cost_mode  # spans are written before any pricing: cost stays as recorded
    from sessions_cli.output import export

    suffix = os.path.splitext(output)[1].lower()
    if suffix not in export.WRITABLE:  # before reading anything
        raise click.BadParameter(
            f"unknown output type {suffix or '(none)'!r}: use .parquet, .jsonl or .csv",
            param_hint="--output",
        )
    store, report = _store(paths, strict=strict, session_keys=session_keys)
    try:
        written = export.write(store.groups(), output, scratch=store.directory)
    except OSError as exc:
        raise CliError(f"{output}: cannot write ({exc.strerror or exc})", ExitCode.ERROR) from None
    _warn_read(store, report)
    noun = "span" if written == 1 else "spans"
    click.echo(f"sessions: wrote {written:,} {noun} to {output}", err=True)


def budget_options(command):
    """The --max-* options of `stats`, from BUDGETS."""
    decorators = [
        click.option(
            f"--{name.replace('_', '-')}", type=kind, metavar=metavar, help=f"Budget: {text}"
        )
        for name, (kind, metavar, text) in BUDGETS.items()
    ]
    decorators.append(
        click.option(
            "--allow-empty",
            is_flag=True,
            help="Let budgets pass when the input has no spans. By default a budget check on "
            "empty input fails (exit 1): nothing read is not a pass.",
        )
    )
    decorators.append(
        click.option(
            "--allow-unpriced",
            is_flag=True,
            help="Check cost budgets against the known costs when some LLM calls have no "
            "price. By default such a budget fails (exit 3, reason unpriced): their cost is "
            "not known.",
        )
    )
    return _stacked(decorators, command)


class _StatsValue(click.ParamType):
    """An option value read by a parser of sessions_cli.query.stats, imported only when used."""

    def __init__(self, name: str, parser: str) -> None:
        self.name, self.parser = name, parser

    def convert(self, value, param, ctx):
        from sessions_cli.query import stats

        try:
            return getattr(stats, self.parser)(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


BUDGETS = {
    "max_session_cost": (click.FloatRange(min=0), "USD", "no session may cost more than USD."),
    "max_total_cost": (click.FloatRange(min=0), "USD",
                       "the sessions together may cost at most USD."),
    "max_session_tokens": (click.IntRange(min=0), "N",
                           "no session may use more than N total tokens."),
    "max_total_tokens": (click.IntRange(min=0), "N",
                         "the sessions together may use at most N total tokens."),
    "max_session_duration": (_StatsValue("duration", "parse_duration_ms"), "DURATION",
                             "no session may last longer than DURATION (90s, 5m, 1h; a bare "
                             "number is seconds)."),
    "max_error_rate": (_StatsValue("fraction", "parse_fraction"), "FRACTION",
                       "at most this share of the sessions' traces may fail (0.05 or 5%)."),
}  # fmt: skip


@cli.command("stats")
@input_options
@filter_options
@click.option(
    "--by",
    type=_StatsValue("field", "check_grouping"),
    metavar="FIELD",
    help="Also total per group: user, model, provider, name, tag, day, week, month or meta:KEY. "
    "By model or provider each LLM call counts for its own group, so the rows add up to the "
    "totals; by the others a session counts whole, in each of its groups (several users or "
    "tags: several groups). Days, weeks (ISO) and months are of the session's start, in --tz "
    "(default UTC).",
)
@budget_options
@output_options
# Over 60 lines by its docstring, which is the command's --help text.
def stats_command(paths, strict, session_keys, price_file, cost_mode, by, fmt, columns, tz,
                  **options):  # fmt: skip
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
    from sessions_cli.output import render, render_stats
    from sessions_cli.query import filters as query
    from sessions_cli.query import stats

    limits = {name: options.pop(name) for name in BUDGETS}
    allow_empty, allow_unpriced = options.pop("allow_empty"), options.pop("allow_unpriced")
    zone = _zone(tz)
    filters = _filters(options, zone)
    model = _load(
        paths,
        strict=strict,
        session_keys=session_keys,
        price_file=price_file,
        cost_mode=cost_mode,
        need_spans=not allow_empty and any(limit is not None for limit in limits.values()),
    )
    sessions = query.filter_sessions(model.sessions, filters)
    if sessions.is_empty():
        click.echo("sessions: no sessions match", err=True)
    _note_unpriced(sessions)
    orphans = query.filter_orphans(model.orphans, filters)
    found = stats.report(sessions, orphans, by=by, zone=zone, limits=limits,
                         allow_unpriced=allow_unpriced)  # fmt: skip
    if fmt == "json":
        text = render_stats.as_json(found)
    elif fmt == "table":
        text = render_stats.as_table(found, width=_table_width())
    elif fmt == "markdown":
        text = render_stats.as_markdown(found)
    else:  # one kind of row for row formats: the groups with --by, else the distributions
        rows = found.groups if found.groups is not None else found.distributions
        wanted = _columns(columns, rows.columns) or rows.columns
        text = render.render(rows.select(wanted), fmt, raw_csv=_raw_csv())
    breaches = render_stats.breach_lines(found.budgets)
    try:
        _out(text)
    except _ReaderGone:  # `| head` must not turn a breached budget into success
        if not breaches:
            raise
    for line in breaches:
        click.echo(line, err=True)
    if breaches:
        raise click.exceptions.Exit(ExitCode.BUDGET)


# ---------------------------------------------------------------------------------------------
# Shared steps


def _load(paths, *, strict, session_keys, price_file, cost_mode, need_spans=False):
    """The model of PATHS. Spans wait in a SpanStore (on disk past a size); it is removed when
    the command ends. With `need_spans` (a budget check), reading no spans is an error: an
    empty export must not pass a CI gate."""
    from sessions_cli.model import sessions as model

    prices = price_file or {}  # read and checked while the options were parsed
    store, report = _store(paths, strict=strict, session_keys=session_keys)
    with _timed("model"):
        built = model.build(
            store.groups(),
            cost_mode=cost_mode,
            prices=prices,
            load_spans=store.spans_of,
            spill_dir=store.directory,
            workers=TUNING.model_workers,
        )
    # A converted Parquet file is read a group at a time, as the model takes them.
    _TIMINGS["read"] += store.read_seconds
    _TIMINGS["model"] -= store.read_seconds
    _warn_read(store, report, built.notices)
    if need_spans and store.rows == 0:
        where = ", ".join(paths) if paths else "the input"
        raise SessionsError(
            f"read no spans from {where}, so no budget was checked "
            "(pass --allow-empty to accept empty input)"
        )
    return built


# Seconds per phase, printed on stderr at exit when $SESSIONS_TIMING is set (benchmarks/).
_TIMINGS: dict[str, float] = {}


@contextlib.contextmanager
def _timed(phase: str):
    import time

    started = time.perf_counter()
    try:
        yield
    finally:
        _TIMINGS[phase] = _TIMINGS.get(phase, 0.0) + time.perf_counter() - started


def _store(paths, *, strict, session_keys):
    """The deduplicated spans of PATHS, in a SpanStore (on disk past a size) that is removed
    when the command ends, and the report of what was read."""
    from sessions_cli.read import keys as attributes
    from sessions_cli.store import loading

    with _reading(paths) as (sources, progress), _timed("read"):
        store, report = loading.read_store(
            sources,
            attributes.chains(tuple(session_keys)),
            tuning=TUNING,
            strict=strict,
            progress=progress,
        )
    # The part of reading spent writing spill files: the same for any input format.
    _TIMINGS["of which spilling"] = store.spill_seconds
    click.get_current_context().call_on_close(store.close)
    return store, report


def _note_unpriced(rows) -> None:
    """One stderr line naming the models of these rows' calls that have no price (their cost
    is unknown), and how to give one."""
    from sessions_cli.query import stats

    unpriced = stats.unpriced_models(rows)
    if not unpriced:
        return
    calls = sum(n for _, n in unpriced)
    shown = [f"{model or '(no model named)'} ({n:,})" for model, n in unpriced[:5]]
    if len(unpriced) > 5:
        shown.append(humanise.count(len(unpriced) - 5, "more model"))
    named = next((m for m, _ in unpriced if m), None)
    fix = (
        f'; give prices with --prices FILE: {{"{named}": {{"input_per_mtok": 0.15, '
        '"output_per_mtok": 0.6}}'
        if named
        else "; a call that names no model can only be priced by a cost attribute"
    )
    _warn(
        [
            f"{humanise.count(calls, 'LLM call')} {'has' if calls == 1 else 'have'} tokens "
            "but no price, so "
            f"{'its' if calls == 1 else 'their'} cost is unknown (a cost shows ? or a lower "
            f"bound ≥$): {', '.join(shown)}{fix}"
        ],
        empty=False,
    )


def _warn_read(store, report, notices=()) -> None:
    """What reading found, once the store's groups have been read through (re-sent spans
    with different content are counted then), with the model's notices."""
    report.conflicting_duplicates = store.conflicting_duplicates
    report.spans_without_ids = store.without_ids
    _warn(report.warnings() + list(notices), empty=store.rows == 0)


@contextlib.contextmanager
def _reading(paths):
    """The sources of PATHS, and a progress line on stderr when it is a terminal."""
    from sessions_cli.read import sources as inputs

    sources = inputs.resolve(tuple(paths), stdin_is_tty=_stdin_is_tty(), env=dict(os.environ))
    progress = Progress(inputs.total_bytes(sources)) if _stderr_is_tty() else None
    try:
        yield sources, progress
    finally:
        if progress is not None:
            progress.done()


def _warn(warnings: list[str], *, empty: bool) -> None:

    for warning in warnings:  # file names and reasons can hold control characters
        click.echo(f"sessions: warning: {humanise.plain(warning)}", err=True)
    if empty:
        click.echo("sessions: no spans found in the input", err=True)


class Progress:
    """`sessions: reading 412 MB of 1.4 GB (29%), 3.1 s` on stderr, redrawn in place, shown only
    once reading has taken a second (small inputs never flash a line), and erased at the end."""

    DELAY_S = 1.0

    def __init__(self, total: int | None) -> None:
        import time

        self.clock = time.monotonic
        self.started = self.clock()
        self.total = total
        self.shown = False

    def __call__(self, done: int) -> None:
        elapsed = self.clock() - self.started
        if elapsed < self.DELAY_S:
            return
        of = f" of {_size(self.total)} ({min(done / self.total, 1):.0%})" if self.total else ""
        sys.stderr.write(f"\r\x1b[Ksessions: reading {_size(done)}{of}, {elapsed:.1f} s")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _filters(args: dict, zone: tzinfo | None):
    from sessions_cli.query.filters import Filters
    from sessions_cli.query.timeparse import parse_instant, parse_until

    def when(name: str, parse=parse_instant):
        value = args.get(name)
        if value is None:
            return None
        try:
            return parse(value, zone=zone)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"--{name}") from None

    until = when("until", parse_until)

    meta = []
    for item in args.get("meta", ()):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--meta")
        meta.append((key, value))
    return Filters(
        since=when("since"),
        until=until[0] if until else None,
        until_inclusive=until[1] if until else True,
        users=tuple(args.get("users", ())),
        search=args.get("search"),
        tags=tuple(args.get("tags", ())),
        meta=tuple(meta),
        models=tuple(args.get("models", ())),
        min_cost=args.get("min_cost"),
        max_cost=args.get("max_cost"),
        min_tokens=args.get("min_tokens"),
        min_traces=args.get("min_traces"),
        errors=bool(args.get("errors")),
    )


def _zone(name: str | None) -> tzinfo | None:
    if name is None:
        return None
    if name.lower() == "local":
        from datetime import datetime

        return datetime.now().astimezone().tzinfo
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Paris, or 'local')",
            param_hint="--tz",
        ) from None


def _columns(columns: str | None, fields) -> list[str] | None:
    """The fields named by --columns, checked (a usage error names the valid ones)."""
    if not columns:
        return None
    wanted = [c.strip() for c in columns.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in fields]
    if unknown:
        raise click.BadParameter(
            f"unknown field {', '.join(map(repr, unknown))}; fields: {', '.join(fields)}",
            param_hint="--columns",
        )
    return wanted


def _emit(rows, fields, *, kind, fmt, columns, zone, empty_note, seconds=False) -> None:
    from sessions_cli.output import render

    wanted = _columns(columns, fields)
    if wanted is None:
        wanted = render.TABLE_COLUMNS[kind] if fmt == "table" else fields
    if rows.is_empty():
        click.echo(f"sessions: {empty_note}", err=True)
    width = _table_width() if fmt == "table" else None
    unpriced = rows.get_column("unpriced_call_count") if "unpriced_call_count" in rows else None
    for piece in render.pieces(
        rows.select(wanted),
        fmt,
        tz=zone,
        width=width,
        seconds=seconds,
        raw_csv=_raw_csv(),
        unpriced=unpriced,
    ):
        _out(piece)


class _ReaderGone(Exception):
    """stdout's reader went away (`| head`). Raised instead of BrokenPipeError, which click
    turns into exit 1 when it comes from inside a command (rows are written a slice at a
    time, so it can); `main` ends quietly with 0."""


def _out(text: str) -> None:
    """Data to stdout exactly as rendered. (click.echo would strip escape sequences when not on
    a terminal: data must not change with where it goes; tables are made safe when rendered.)"""
    try:
        click.echo(text, nl=False, color=True)
    except BrokenPipeError:
        raise _ReaderGone from None


def _raw_csv() -> bool:
    return bool(click.get_current_context().meta.get("raw_csv"))


def _colour_wanted() -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _table_width() -> int | None:
    """Fit tables to the terminal; when piped, only if $COLUMNS asks for a width."""
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return None


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
    except (BrokenPipeError, _ReaderGone):
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
    if os.environ.get("SESSIONS_TIMING") and _TIMINGS:
        phases = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in _TIMINGS.items())
        click.echo(f"sessions: timing: {phases}", err=True)
    sys.exit(int(code or 0))
