"""The options of `sessions` commands, declared once, and their values checked and turned into
library values (filters, zones, fields): every usage error is click's, exit 2."""

from __future__ import annotations

import functools
from datetime import tzinfo

import click

from sessions_cli.kinds import COST_MODES, FORMATS

SORT_NAMES = ("start", "end", "cost", "tokens", "duration", "traces", "spans", "errors", "name",
              "user")  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Options, defined once


def stacked(decorators, command):
    """Apply option decorators as if written one above the other, first on top."""
    return functools.reduce(lambda f, d: d(f), reversed(decorators), command)


class PriceFile(click.ParamType):
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
    """PATHS, and how to read them."""
    return stacked([click.argument("paths", nargs=-1, metavar="[PATHS]..."), reading_options],
                   command)  # fmt: skip


def reading_options(command):
    """How to read the input: strictness, session keys, prices, cost mode."""
    return stacked([parsing_options, pricing_options], command)


def parsing_options(command):
    """How to read spans: strictness, session keys (`convert` takes only these: it writes
    spans as recorded, before any pricing)."""
    decorators = [
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
    ]
    return stacked(decorators, command)


def pricing_options(command):
    decorators = [
        click.option(
            "--prices",
            "price_file",
            type=PriceFile(),
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
    return stacked(decorators, command)


def limit_option(command):
    return click.option(
        "-n", "--limit", type=click.IntRange(min=0), metavar="N", help="Show at most N rows."
    )(command)


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
    return stacked(decorators, command)


def output_options(command):
    # Long, but a list of option declarations: data with nothing to split off.
    decorators = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default="table",
            show_default=True,
            help="table is for people; the others are for programs (raw numbers, UTC).",
        ),
        click.option("--json", "short_json", is_flag=True, help="Short for --format json."),
        click.option("--csv", "short_csv", is_flag=True, help="Short for --format csv."),
        click.option("--tsv", "short_tsv", is_flag=True, help="Short for --format tsv."),
        click.option(
            "--jsonl", "--nl", "short_jsonl", is_flag=True, help="Short for --format jsonl."
        ),
        click.option(
            "--jq",
            "jq_program",
            type=JqProgram(),
            metavar="EXPR",
            help="Filter the JSON output through a jq expression, as gh --jq does: strings are "
            "printed raw, other results as compact JSON, one per line. Implies --json.",
        ),
        click.option(
            "--no-pager",
            is_flag=True,
            expose_value=False,  # read where stdout is written: steps.out()
            callback=lambda ctx, _param, value: ctx.meta.__setitem__("pager", not value),
            help="On a terminal, print straight out instead of through $PAGER (default: "
            "less -FRX, which exits at once when the output fits the screen).",
        ),
        click.option(
            "--no-headers",
            is_flag=True,
            expose_value=False,  # read where CSV is written: steps.headers()
            callback=lambda ctx, _param, value: ctx.meta.__setitem__("no_headers", value),
            help="CSV/TSV without the header row.",
        ),
        click.option(
            "--color",
            "--colour",
            type=click.Choice(["auto", "always", "never"]),
            default="auto",
            show_default=True,
            expose_value=False,  # read where colour is decided: steps.colour_wanted()
            callback=lambda ctx, _param, value: ctx.meta.__setitem__("color", value),
            help="Colour in tables and timelines: auto is on a terminal only, unless NO_COLOR "
            "is set (FORCE_COLOR turns it on).",
        ),
        click.option(
            "--columns",
            "--fields",
            "columns",
            metavar="A,B,C",
            help="Fields to show, in this order (the field lists: docs/usage.md).",
        ),
        click.option(
            "--raw-csv",
            is_flag=True,
            expose_value=False,  # read where CSV is written: _raw_csv()
            callback=lambda ctx, _param, value: ctx.meta.__setitem__("raw_csv", value),
            help="Write CSV/TSV text exactly as it came. By default a cell starting with = + - @ "
            "tab or CR gets a leading ' so that spreadsheets do not run it as a formula.",
        ),
        tz_option,
    ]
    return stacked(decorators, _one_format(command))


def tz_option(command):
    return click.option(
        "--tz",
        "-z",
        "--timezone",
        "tz",
        metavar="ZONE",
        help="Time zone for table times and for dates and times typed without one "
        "(--since, --until): an IANA name or 'local' (default UTC). Machine formats are "
        "always UTC.",
    )(command)


def _one_format(command):
    """The command gets one `fmt`: --json or --csv, else --format (from the command line, a
    config file, or its default). Two that disagree on the command line are a usage error,
    never a silent pick."""

    @functools.wraps(command)
    def with_format(*args, fmt, short_json, short_csv, short_tsv, short_jsonl, jq_program,
                    **kwargs):  # fmt: skip
        ctx = click.get_current_context()
        ctx.meta["jq"] = jq_program  # applied where JSON is written: steps.jq_filtered()
        flags = [(flag, kind) for flag, kind, given in (
            ("--json", "json", short_json), ("--csv", "csv", short_csv),
            ("--tsv", "tsv", short_tsv), ("--jsonl", "jsonl", short_jsonl),
            ("--jq", "json", jq_program is not None),
        ) if given]  # fmt: skip
        kinds = {kind for _, kind in flags}
        if ctx.get_parameter_source("fmt") == click.core.ParameterSource.COMMANDLINE:
            flags.append((f"--format {fmt}", fmt))
            kinds.add(fmt)
        if len(kinds) > 1:
            named = " and ".join(flag for flag, _ in flags)
            raise click.UsageError(f"{named} ask for different formats: give one")
        return command(*args, fmt=kinds.pop() if kinds else fmt, **kwargs)

    return with_format


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
    decorators.append(warn_at_option)
    return stacked(decorators, command)


def warn_at_option(command):
    return click.option(
        "--warn-at",
        type=QueryValue("fraction", "parse_fraction"),
        metavar="FRACTION",
        help="Also warn (a ::warning annotation in GitHub Actions) when a value that holds is "
        "past this share of its limit: 80% or 0.8.",
    )(command)


class JqProgram(click.ParamType):
    """--jq EXPR, compiled as the options are parsed: a syntax error is a usage error."""

    name = "jq"

    def convert(self, value, param, ctx):
        import jq

        try:
            return jq.compile(value)
        except ValueError as exc:
            self.fail(str(exc).replace("\n", " "), param, ctx)


class QueryValue(click.ParamType):
    """An option value read by a parser of a sessions_cli.query module (stats, diff), imported
    only when used. A value from a config file may be a TOML number: it is read as its text."""

    def __init__(self, name: str, parser: str, module: str = "stats") -> None:
        self.name, self.parser, self.module = name, parser, module

    def convert(self, value, param, ctx):
        import importlib

        parse = getattr(importlib.import_module(f"sessions_cli.query.{self.module}"), self.parser)
        try:
            return parse(value if isinstance(value, str) else str(value))
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
    "max_session_duration": (QueryValue("duration", "parse_duration_ms"), "DURATION",
                             "no session may last longer than DURATION (90s, 5m, 1h; a bare "
                             "number is seconds)."),
    "max_error_rate": (QueryValue("fraction", "parse_fraction"), "FRACTION",
                       "at most this share of the sessions' traces may fail (0.05 or 5%)."),
}  # fmt: skip


def filters_from(args: dict, zone: tzinfo | None):
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


def zone_from(name: str | None) -> tzinfo | None:
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


def checked_columns(columns: str | None, fields) -> list[str] | None:
    """The fields named by --columns, checked (a usage error names the valid ones)."""
    if not columns:
        return None
    wanted = [c.strip() for c in columns.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in fields]
    if unknown:
        import difflib

        hints = []
        for name in unknown:
            # `cost` -> cost_usd: a prefix is what people type, then a near spelling
            close = [f for f in fields if f.startswith(name)] or difflib.get_close_matches(
                name, list(fields), n=1, cutoff=0.6
            )
            hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
        raise click.BadParameter(
            f"unknown field {', '.join(hints)}; fields: {', '.join(fields)}",
            param_hint="--columns",
        )
    return wanted
