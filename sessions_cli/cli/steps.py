"""The steps every command shares: read PATHS into a model, warn on stderr, write data to
stdout (quietly when the reader goes away), and the terminal questions (colour, width)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys

import click

from sessions_cli.cli import options
from sessions_cli.errors import ExitCode, IncompleteInput, SessionsError
from sessions_cli.output import humanise, messages
from sessions_cli.tuning import Tuning

# Sizes and worker counts for every command, from this machine's cores.
TUNING = Tuning()


class CliError(click.ClickException):
    """A library error as the user sees it: `sessions: error: ...` and the contract's code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        # click declares exit_code on the class; each error carries its own.
        self.exit_code = code  # type: ignore[misc]

    def show(self, file=None) -> None:
        # Messages quote what users and their data typed: escapes must not reach the terminal.
        click.echo(f"sessions: error: {humanise.plain(self.format_message())}", err=True)


# ---------------------------------------------------------------------------------------------
# Shared steps


def load(paths, *, strict, session_keys, price_file, cost_mode, need_spans=False, spans_again=True):
    """The model of PATHS. Spans wait in a SpanStore (on disk past a size); it is removed when
    the command ends. With `need_spans` (a budget check), reading no spans is an error: an
    empty export must not pass a CI gate. Without `spans_again`, the command never reads a
    session's spans back from the model (`spans_of`: show, timeline, report do)."""
    from sessions_cli.model import sessions as model

    prices = price_file or {}  # read and checked while the options were parsed
    store, report = store_of(
        paths, strict=strict, session_keys=session_keys, spans_again=spans_again
    )
    with timed("model"):
        built = model.build(
            store.groups(),
            cost_mode=cost_mode,
            prices=prices,
            load_spans=store.spans_of,
            spill_dir=store.directory,
            workers=TUNING.model_workers,
        )
    # A converted Parquet file is read a group at a time, as the model takes them.
    TIMINGS["read"] += store.read_seconds
    TIMINGS["model"] -= store.read_seconds
    warn_read(store, report, built.notices)
    if need_spans and store.rows == 0:
        where = ", ".join(paths) if paths else "the input"
        raise SessionsError(
            f"read no spans from {where}, so no budget was checked "
            "(pass --allow-empty to accept empty input)"
        )
    return built


# Seconds per phase, printed on stderr at exit when $SESSIONS_TIMING is set (benchmarks/).
TIMINGS: dict[str, float] = {}


@contextlib.contextmanager
def timed(phase: str):
    import time

    started = time.perf_counter()
    try:
        yield
    finally:
        TIMINGS[phase] = TIMINGS.get(phase, 0.0) + time.perf_counter() - started


def store_of(paths, *, strict, session_keys, spans_again=True):
    """The deduplicated spans of PATHS, in a SpanStore (on disk past a size) that is removed
    when the command ends, and the report of what was read (`spans_again`: `load`'s)."""
    from sessions_cli.read import keys as attributes
    from sessions_cli.store import loading

    with reading(paths) as (sources, progress), timed("read"):
        store, report = loading.read_store(
            sources,
            attributes.chains(tuple(session_keys)),
            tuning=TUNING,
            strict=strict,
            progress=progress,
            spans_again=spans_again,
        )
    # The part of reading spent writing spill files: the same for any input format.
    TIMINGS["of which spilling"] = store.spill_seconds
    ctx = click.get_current_context()
    scope = ctx.meta.get(_SCOPE)
    (scope.callback if scope is not None else ctx.call_on_close)(store.close)
    return store, report


_SCOPE = "sessions.store_scope"


@contextlib.contextmanager
def released():
    """Stores read inside are closed (their spill removed, their spans let go) at its end, not
    the command's: diff reads two exports, and the first one's need not wait for the second."""
    ctx = click.get_current_context()
    outer = ctx.meta.get(_SCOPE)
    with contextlib.ExitStack() as stack:
        ctx.meta[_SCOPE] = stack
        try:
            yield
        finally:
            ctx.meta[_SCOPE] = outer


def note_unpriced(rows) -> None:
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
    warn(
        [
            f"{humanise.count(calls, 'LLM call')} {humanise.plural(calls, 'has', 'have')} tokens "
            "but no price, so "
            f"{humanise.plural(calls, 'its', 'their')} cost is unknown (a cost shows ? or a lower "
            f"bound ≥$): {', '.join(shown)}{fix}"
        ],
        empty=False,
    )


def warn_read(store, report, notices=()) -> None:
    """What reading found, once the store's groups have been read through (re-sent spans
    with different content are counted then), with the model's notices."""
    report.conflicting_duplicates = store.conflicting_duplicates
    report.spans_without_ids = store.without_ids
    warn(messages.texts([*report.warnings(), *notices]), empty=store.rows == 0)


def error_text(error: SessionsError) -> str:
    if isinstance(error, IncompleteInput):
        return f"{error} (--strict): " + "; ".join(messages.texts(error.failures))
    return str(error)


@contextlib.contextmanager
def reading(paths):
    """The sources of PATHS, and a progress line on stderr when it is a terminal."""
    from sessions_cli.read import sources as inputs

    sources = inputs.resolve(tuple(paths), stdin_is_tty=stdin_is_tty(), env=dict(os.environ))
    progress = Progress(inputs.total_bytes(sources)) if stderr_is_tty() else None
    try:
        yield sources, progress
    finally:
        if progress is not None:
            progress.done()


def warn(warnings: list[str], *, empty: bool) -> None:

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
        of = f" of {size(self.total)} ({min(done / self.total, 1):.0%})" if self.total else ""
        sys.stderr.write(f"\r\x1b[Ksessions: reading {size(done)}{of}, {elapsed:.1f} s")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def emit(rows, fields, *, kind, fmt, columns, zone, empty_note, seconds=False,
         totals=False) -> None:  # fmt: skip
    from sessions_cli.output import render

    wanted = options.checked_columns(columns, fields)
    # Columns left out to fit the terminal are named; chosen ones (--columns) are all shown.
    notes: list[str] | None = None if wanted else []
    if wanted is None:
        wanted = render.TABLE_COLUMNS[kind] if fmt == "table" else fields
    if rows.is_empty():
        click.echo(f"sessions: {empty_note}", err=True)
    width = table_width() if fmt == "table" else None
    unpriced = rows.get_column("unpriced_call_count") if "unpriced_call_count" in rows else None
    if fmt == "json" and click.get_current_context().meta.get("jq") is not None:
        out(jq_filtered(render.render(rows.select(wanted), fmt)))
        return
    for piece in render.pieces(
        rows.select(wanted),
        fmt,
        tz=zone,
        width=width,
        seconds=seconds,
        raw_csv=raw_csv(),
        header=headers(),
        unpriced=unpriced,
        notes=notes,
        totals=totals,
    ):
        out(piece)
    warn(notes or [], empty=False)


class ReaderGone(Exception):
    """stdout's reader went away (`| head`). Raised instead of BrokenPipeError, which click
    turns into exit 1 when it comes from inside a command (rows are written a slice at a
    time, so it can); `main` ends quietly with 0."""


def jq_filtered(text: str) -> str:
    """JSON text through --jq's program, when one was given: each result on a line of its
    own, strings raw and other values as compact JSON, as `gh --jq` prints them."""
    program = click.get_current_context().meta.get("jq")
    if program is None:
        return text
    import json

    try:
        results = program.input_text(text).all()
    except ValueError as exc:  # a runtime error of the program: its own message
        raise SessionsError(f"--jq: {exc}") from None
    shown = (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in results)
    return "".join(line + "\n" for line in shown)


def _paging() -> bool:
    """Through a pager: a command with output options, on a terminal, without --no-pager."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or not ctx.meta.get("pager") or not sys.stdout.isatty():
        return False
    if "paged" not in ctx.meta:
        ctx.meta["paged"] = []
        ctx.call_on_close(_page)
    return True


def _page() -> None:
    """The command's output, at its end, through $PAGER, else `less -FRX`: -F exits at once
    when it fits the screen, -R keeps colours, -X leaves it on the screen afterwards."""
    text = "".join(click.get_current_context().meta.pop("paged", []))
    if not os.environ.get("PAGER"):
        os.environ.setdefault("LESS", "-FRX")
    click.echo_via_pager(text, color=True)


def out(text: str) -> None:
    """Data to stdout exactly as rendered. (click.echo would strip escape sequences when not on
    a terminal: data must not change with where it goes; tables are made safe when rendered.)"""
    if _paging():
        click.get_current_context().meta["paged"].append(text)
        return
    try:
        click.echo(text, nl=False, color=True)
    except BrokenPipeError:
        raise ReaderGone from None


def raw_csv() -> bool:
    return bool(click.get_current_context().meta.get("raw_csv"))


def colour_wanted() -> bool:
    """--color always or never, else colour on a terminal only: never with NO_COLOR set
    (https://no-color.org), always with FORCE_COLOR (https://force-color.org)."""
    ctx = click.get_current_context(silent=True)
    asked = ctx.meta.get("color", "auto") if ctx else "auto"
    if asked != "auto":
        return asked == "always"
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or sys.stdout.isatty()


def headers() -> bool:
    """CSV/TSV header row: on, unless --no-headers."""
    return not click.get_current_context().meta.get("no_headers")


def table_width() -> int | None:
    """Fit tables to the terminal; when piped, only if $COLUMNS asks for a width."""
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return None


def gate(text: str, findings: list[tuple[str, str]], *, title: str) -> None:
    """A CI gate's ending: the report on stdout, then each finding, ("error" or "warning",
    text), on stderr, also as a GitHub Actions annotation when running in Actions; exit 3 when
    any is an error. A reader gone from stdout (`| head`) must not turn a failure into
    success."""
    from sessions_cli.output import ci

    failed = any(level == "error" for level, _ in findings)
    try:
        out(text)
    except ReaderGone:
        if not failed:
            raise
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    for level, line in findings:
        shown = humanise.plain(line)
        click.echo(shown if level == "error" else f"sessions: warning: {shown}", err=True)
        if in_actions:
            click.echo(ci.github_annotation(level, title, shown), err=True)  # type: ignore[arg-type]
    if failed:
        raise click.exceptions.Exit(ExitCode.BUDGET)


def check_id_first(session_id: str, paths: tuple[str, ...]) -> None:
    """`sessions show FILE ID`: the arguments swapped, said as such (not "ID: no such file")."""
    if paths and os.path.exists(session_id) and not os.path.exists(paths[0]):
        raise click.UsageError(
            f"{session_id!r} is a file and {paths[0]!r} is not: the session id comes first "
            f"(SESSION_ID [PATHS]...)"
        )
