"""One result frame -> table | json | jsonl | csv | tsv | markdown text (contract §4).

Machine formats get raw numbers, ISO-8601 UTC timestamps ending in `Z`, lists as JSON arrays
(JSON text in CSV), `metadata` as an object. All of that conversion happens in `to_records`, once,
for every format. Tables are for people: humanised numbers, local times on request, long text cut
with an ellipsis to fit the terminal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import tzinfo

import polars as pl

from sessions_cli.kinds import FORMATS, Format
from sessions_cli.output import humanise, json_text, tables

# Columns a table shows when --columns is not given; machine formats show every field.
TABLE_COLUMNS = {
    "sessions": ["session_id", "session_name", "user_id", "start", "duration_ms", "trace_count",
                 "total_tokens", "cost_usd", "error_count"],
    "traces": ["trace_id", "trace_name", "user_id", "start", "duration_ms", "span_count",
               "total_tokens", "cost_usd", "status"],
    "session_traces": ["trace_id", "trace_name", "start", "duration_ms", "span_count",
                       "llm_call_count", "total_tokens", "cost_usd", "status"],
}  # fmt: skip
# Table headers for people; --columns and machine formats use the field names.
HEADERS = {
    "session_id": "SESSION", "session_name": "NAME", "user_id": "USER", "trace_id": "TRACE",
    "trace_name": "NAME", "duration_ms": "DURATION", "trace_count": "TRACES",
    "span_count": "SPANS", "llm_call_count": "LLM CALLS", "input_tokens": "IN TOKENS",
    "output_tokens": "OUT TOKENS", "total_tokens": "TOKENS", "cost_usd": "COST",
    "error_count": "ERRORS", "failed_trace_count": "FAILED", "unpriced_call_count": "UNPRICED",
    "p50_session_cost": "P50 SESSION", "p95_session_cost": "P95 SESSION",
}  # fmt: skip
_MONEY = ("cost_usd", "p50_session_cost", "p95_session_cost")
# Columns that identify a row: a table never cuts them (one cut could not be pasted into show).
KEYS = ("session_id", "trace_id")
_DURATION = ("duration_ms",)


def render(rows: pl.DataFrame, fmt: Format, **options) -> str:
    """The text to print for `rows` (already restricted to the columns to show); the options
    are `pieces`'."""
    return "".join(pieces(rows, fmt, **options))


# Machine formats are rendered this many rows at a time: as Python objects a row takes a few
# KB, and a big export has hundreds of thousands of sessions.
_SLICE = 5_000


def pieces(
    rows: pl.DataFrame,
    fmt: Format,
    *,
    tz: tzinfo | None = None,
    width: int | None = None,
    seconds: bool = False,
    raw_csv: bool = False,
    header: bool = True,
    unpriced: pl.Series | None = None,
    numbers: tuple[str, ...] = (),
    keys: tuple[str, ...] = KEYS,
    notes: list[str] | None = None,
    totals: bool = False,
) -> Iterator[str]:
    """The text to print for `rows`, in pieces to be written as they come.

    Table times show minutes, or seconds with `seconds` (rows minutes apart, such as one
    session's traces). CSV/TSV text cells that a spreadsheet would run as a formula are
    defused with a leading `'`, unless `raw_csv`; `header`: CSV/TSV column names first (not
    for rows appended to a file that has them). `unpriced`: each row's count of unpriced calls,
    so that a table marks a cost that leaves them out as a lower bound (`≥$0.0103`);
    `numbers`: text columns that hold numbers written by us (never defused: -0.25 is no
    formula). Tables never cut `keys` nor money; with `notes`, a table too wide for `width`
    leaves columns out and says so there; `totals` adds a row of sums."""
    if fmt == "table":
        yield _table(rows, tz=tz, width=width, seconds=seconds, unpriced=unpriced, keys=keys,
                     notes=notes, totals=totals)  # fmt: skip
    elif fmt == "markdown":
        yield _markdown(rows)
    elif fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    elif fmt == "json" and rows.is_empty():
        yield "[]\n"
    else:
        for offset in range(0, max(rows.height, 1), _SLICE):
            part = rows.slice(offset, _SLICE)
            if fmt in ("csv", "tsv"):
                separator = "," if fmt == "csv" else "\t"
                first = header and offset == 0
                yield _delimited(part, separator, defuse=not raw_csv, header=first, numbers=numbers)
            elif fmt == "jsonl":
                yield "".join(line + "\n" for line in json_text.objects(part, indent=None))
            else:  # the pieces of one JSON array, as json.dumps(records, indent=2) writes it
                yield ("[\n" if offset == 0 else ",\n") + ",\n".join(
                    "  " + text for text in json_text.objects(part, indent=2, level=1)
                )
        if fmt == "json":
            yield "\n]\n"


def to_json(value) -> str:
    """Indented JSON text of a structure whose values may be frames (lists of records)."""

    def convert(item):
        if isinstance(item, pl.DataFrame):
            return to_records(item)
        if isinstance(item, dict):
            return {key: convert(v) for key, v in item.items()}
        if isinstance(item, list):
            return [convert(v) for v in item]
        return item

    return json.dumps(convert(value), ensure_ascii=False, indent=2) + "\n"


def to_records(rows: pl.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts."""
    frame = rows.with_columns(
        pl.col(c).dt.strftime(json_text.ISO)
        for c, dtype in rows.schema.items()
        if isinstance(dtype, pl.Datetime)
    )
    records = frame.to_dicts()
    if "metadata" in frame.columns or any(frame.schema[c] == pl.Float64 for c in frame.columns):
        for record in records:
            for key, value in record.items():
                if isinstance(value, float) and not math.isfinite(value):
                    record[key] = None
                elif key == "metadata" and isinstance(value, list):
                    record[key] = {kv["key"]: kv["value"] for kv in value}
    return records


def _flat_frame(rows: pl.DataFrame) -> pl.DataFrame:
    """Scalars only: datetimes as ISO text, lists and metadata as JSON text."""
    exprs = []
    for column, dtype in rows.schema.items():
        if isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(column).dt.strftime(json_text.ISO))
        elif isinstance(dtype, pl.List):
            texts = json_text.cell_texts(rows.get_column(column), indent=None, level=0)
            exprs.append(pl.when(pl.col(column).is_not_null()).then(texts).alias(column))
    return rows.with_columns(exprs) if exprs else rows


def _delimited(
    rows: pl.DataFrame,
    separator: str,
    *,
    defuse: bool = True,
    header: bool = True,
    numbers: tuple[str, ...] = (),
) -> str:
    flat = _flat_frame(rows)
    if defuse:
        flat = flat.with_columns(
            pl.when(pl.col(c).str.contains(_FORMULA))
            .then("'" + pl.col(c))
            .otherwise(pl.col(c))
            .alias(c)
            for c, dtype in flat.schema.items()
            if dtype == pl.String and c not in numbers
        )
    return flat.write_csv(separator=separator, float_precision=None, include_header=header)


# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
# Only text cells are touched: numbers stay numbers, so -1.5 is still a number.
_FORMULA = r"^[=+\-@\t\r]"


def _markdown(rows: pl.DataFrame) -> str:
    flat = _flat_frame(rows)
    if not flat.columns:
        return ""
    # Cells are made plain (no control characters, one line) and a | is escaped, since it
    # would end the cell.
    cells = [[markdown_cell(v) for v in row] for row in flat.rows()]
    return tables.github(flat.columns, cells) + "\n"


# ---------------------------------------------------------------------------------------------
# Tables for people


def markdown_cell(value) -> str:
    if value is None:
        return ""
    return humanise.plain(value).replace("|", "\\|") if isinstance(value, str) else str(value)


def _table(
    rows: pl.DataFrame,
    *,
    tz: tzinfo | None,
    width: int | None,
    seconds: bool,
    unpriced: pl.Series | None = None,
    keys: tuple[str, ...] = KEYS,
    notes: list[str] | None = None,
    totals: bool = False,
) -> str:
    """`notes`: where to say which columns were left out to fit `width`; None: none is, only
    text is cut (the columns were chosen with --columns). `totals`: a last row of the sums of
    the count, token and money columns, under a rule."""
    if rows.is_empty():
        return ""
    columns = rows.columns
    left_out = unpriced.to_list() if unpriced is not None else [0] * rows.height
    cells = [
        [
            human(column, value, tz, seconds, unpriced=n or 0)
            for column, value in zip(columns, row, strict=True)
        ]
        for row, n in zip(rows.iter_rows(), left_out, strict=True)
    ]
    if totals:
        cells.append(_totals_cells(rows, sum(n or 0 for n in left_out)))
    headers = [HEADERS.get(c, c.replace("_", " ").upper()) for c in columns]
    align: list[tables.Align] = [
        "right" if rows.schema[c].is_numeric() else "left" for c in columns
    ]
    if width:
        roles = [_role(c, rows.schema[c], keys) for c in columns]
        keep, cells = tables.fit(headers, cells, width, roles, drop=notes is not None)
        if len(keep) < len(columns) and notes is not None:
            left = [headers[i] for i in range(len(columns)) if i not in keep]
            notes.append(f"left out {', '.join(left)} to fit {width} columns (choose the "
                         "columns with --columns)")  # fmt: skip
        headers, align = [headers[i] for i in keep], [align[i] for i in keep]
    text = tables.simple(headers, cells, align)
    if totals:  # the rule under the headers, again above the totals
        lines = text.split("\n")
        text = "\n".join([*lines[:-1], lines[1], lines[-1]])
    return text + "\n"


# Columns whose sum over the rows means something: counts, tokens, money.
_SUMMED = ("trace_count", "span_count", "llm_call_count", "input_tokens", "output_tokens",
           "total_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
           "cost_usd", "unpriced_call_count", "error_count", "failed_trace_count")  # fmt: skip


def _totals_cells(rows: pl.DataFrame, unpriced: int) -> list[str]:
    """`TOTAL` in the first column, then the sums (money exactly, as a lower bound when calls
    are unpriced); other columns are blank."""
    from sessions_cli.query.stats import known_sum

    sums = rows.select(
        known_sum(pl.col(c)) if c == "cost_usd" else pl.col(c).sum()
        for c in rows.columns
        if c in _SUMMED
    ).row(0, named=True)
    cells = [human(c, sums[c], None, unpriced=unpriced) if c in sums else "" for c in rows.columns]
    cells[0] = "TOTAL"
    return cells


def _role(column: str, dtype: pl.DataType, keys: tuple[str, ...]) -> tables.Role:
    """Ids, money and a group's name are what a row is read for: never cut or left out."""
    if column in keys or column in _MONEY:
        return "key"
    return "value" if dtype.is_numeric() or dtype.is_temporal() else "text"


def human(column: str, value, tz: tzinfo | None, seconds: bool = False, unpriced: int = 0) -> str:
    if column in _MONEY:  # a null cost is unknown, not blank
        return humanise.money(value, unpriced=unpriced if column == "cost_usd" else 0)
    if value is None:
        return ""
    if column in _DURATION:
        return humanise.duration(value)
    if hasattr(value, "astimezone"):
        return humanise.instant(value, tz, seconds=seconds)
    if column == "status" and value == "error":
        return "✗ error"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return humanise.plain(", ".join(f"{kv['key']}={kv['value']}" for kv in value))
        return humanise.plain(", ".join(str(v) for v in value))
    return humanise.plain(str(value))


def summary(record: dict, *, tz: tzinfo | None) -> str:
    """One session's fields as labelled lines (`sessions show`)."""

    def text(column: str) -> str:
        return human(column, record.get(column), tz, seconds=True)

    n = record
    left_out = n["unpriced_call_count"]
    unpriced = f", {humanise.count(left_out, 'unpriced call')}" if left_out else ""
    lines = [
        ("Session", text("session_id")),
        ("Name", text("session_name")),
        ("User", text("user_id")),
        ("Users", text("users")),
        ("Start", text("start")),
        ("End", text("end")),
        ("Duration", text("duration_ms")),
        ("Traces", f"{n['trace_count']:,} ({n['failed_trace_count']:,} failed)"),
        ("Spans", f"{n['span_count']:,} ({n['error_count']:,} with errors)"),
        ("LLM calls", text("llm_call_count")),
        ("Tokens", f"{n['total_tokens']:,} ({n['input_tokens']:,} in, "
                   f"{n['output_tokens']:,} out)"),
        ("Cost", f"{humanise.money(n['cost_usd'], unpriced=n['unpriced_call_count'])} "
                 f"(source: {n['cost_source']}{unpriced})"),
        ("Models", text("models")),
        ("Tags", text("tags")),
        ("Metadata", text("metadata")),
    ]  # fmt: skip
    width = max(len(label) for label, _ in lines)
    return "".join(f"{label + ':':<{width + 1}}  {value}".rstrip() + "\n" for label, value in lines)
