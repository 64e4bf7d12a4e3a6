"""The `sessions` command: parse options -> call the library -> render. Click only.

Heavy modules (polars and everything built on it) are imported inside commands, so that
`sessions --help` starts fast.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from datetime import tzinfo

import click

from sessions_cli import __version__
from sessions_cli.errors import ExitCode, SessionsError

# Also in render.FORMATS; repeated here so that --help does not import polars.
FORMATS = ("table", "json", "jsonl", "csv", "tsv", "markdown")
SORT_NAMES = ("start", "end", "cost", "tokens", "duration", "traces", "spans", "errors", "name",
              "user")  # fmt: skip


def _price_table() -> str:
    """Which dated price table is bundled: the installed genai-prices release."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"genai-prices {version('genai-prices')}"
    except PackageNotFoundError:  # pragma: no cover - a broken install
        return "not installed"


class CliError(click.ClickException):
    """A library error as the user sees it: `sessions: error: ...` and the contract's code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code

    def show(self, file=None) -> None:
        click.echo(f"sessions: error: {self.format_message()}", err=True)


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
@click.version_option(
    __version__,
    "-V",
    "--version",
    prog_name="sessions",
    message="%(prog)s %(version)s (price table: " + _price_table() + ")",
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
            metavar="FILE",
            help="JSON prices overriding the bundled table: "
            '{"model": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}.',
        ),
        click.option(
            "--cost-mode",
            type=click.Choice(["auto", "attribute", "calculate"]),
            default="auto",
            show_default=True,
            help="auto: cost attribute, else price table; attribute: attributes only; "
            "calculate: price table only.",
        ),
    ]
    return functools.reduce(lambda f, d: d(f), reversed(decorators), command)


def filter_options(command):
    decorators = [
        click.option(
            "--since",
            metavar="WHEN",
            help="Only sessions active at or after WHEN: a date/time, or an age such "
            "as 30m, 24h, 7d, 2w; also today, yesterday.",
        ),
        click.option("--until", metavar="WHEN", help="Only sessions active at or before WHEN."),
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
    return functools.reduce(lambda f, d: d(f), reversed(decorators), command)


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
            "--tz",
            metavar="ZONE",
            help="Time zone for table times: an IANA name or 'local' (default UTC). "
            "Machine formats are always UTC.",
        ),
    ]
    return functools.reduce(lambda f, d: d(f), reversed(decorators), command)


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
    from sessions_cli import query
    from sessions_cli.model import ORPHAN_FIELDS, SESSION_FIELDS

    zone = _zone(tz)
    filters = _filters(filter_args, zone)
    model = _load(
        paths, strict=strict, session_keys=session_keys, price_file=price_file, cost_mode=cost_mode
    )
    if orphans:
        rows = query.filter_orphans(model.orphans, filters)
        sort_column, id_column, fields, kind = (
            query.ORPHAN_SORT_KEYS[sort_name],
            "trace_id",
            ORPHAN_FIELDS,
            "traces",
        )
    else:
        rows = query.filter_sessions(model.sessions, filters)
        sort_column, id_column, fields, kind = (
            query.SORT_KEYS[sort_name],
            "session_id",
            SESSION_FIELDS,
            "sessions",
        )
    rows = query.sort_rows(
        rows, sort_column, descending=not ascending, id_column=id_column, limit=limit
    )
    _emit(
        rows,
        fields,
        kind=kind,
        fmt=fmt,
        columns=columns,
        zone=zone,
        empty_note=f"no {'traces without a session' if orphans else 'sessions'} match",
    )


# ---------------------------------------------------------------------------------------------
# Shared steps


def _load(paths, *, strict, session_keys, price_file, cost_mode):
    from sessions_cli import attributes, inputs, model, pricing

    prices = pricing.load_price_file(price_file)
    sources = inputs.resolve(tuple(paths), stdin_is_tty=_stdin_is_tty(), env=dict(os.environ))
    spans, report = inputs.read_spans(
        sources, attributes.chains(tuple(session_keys)), strict=strict
    )
    for warning in report.warnings():
        click.echo(f"sessions: warning: {warning}", err=True)
    if spans.is_empty():
        click.echo("sessions: no spans found in the input", err=True)
    return model.build(spans, cost_mode=cost_mode, prices=prices)


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _filters(args: dict, zone: tzinfo | None):
    from sessions_cli.query import Filters
    from sessions_cli.timeparse import parse_instant

    def when(name: str):
        value = args.get(name)
        if value is None:
            return None
        try:
            return parse_instant(value, zone=zone)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"--{name}") from None

    meta = []
    for item in args.get("meta", ()):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--meta")
        meta.append((key, value))
    return Filters(
        since=when("since"),
        until=when("until"),
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


def _emit(rows, fields, *, kind, fmt, columns, zone, empty_note) -> None:
    from sessions_cli import render

    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in fields]
        if unknown:
            raise click.BadParameter(
                f"unknown field {', '.join(map(repr, unknown))}; fields: {', '.join(fields)}",
                param_hint="--columns",
            )
    else:
        wanted = render.TABLE_COLUMNS[kind] if fmt == "table" else fields
    if rows.is_empty():
        click.echo(f"sessions: {empty_note}", err=True)
    width = _table_width() if fmt == "table" else None
    text = render.render(rows.select(wanted), fmt, tz=zone, width=width)
    click.echo(text, nl=False)


def _table_width() -> int | None:
    """Fit tables to the terminal; when piped, only if $COLUMNS asks for a width."""
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return None


def main() -> None:
    """Console entry point: exit codes, quiet pipes and Ctrl-C, and never a traceback."""
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
    except BrokenPipeError:
        # The reader went away (`| head`): what it wanted was printed. Silence the final flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = ExitCode.OK
    except Exception as exc:  # a bug: say so plainly, without a traceback
        if os.environ.get("SESSIONS_DEBUG"):
            raise
        click.echo(
            f"sessions: internal error: {type(exc).__name__}: {exc} "
            "(set SESSIONS_DEBUG=1 for a traceback, and please report it)",
            err=True,
        )
        code = ExitCode.ERROR
    sys.exit(int(code or 0))
