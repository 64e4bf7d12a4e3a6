"""JSON text of result rows, made a column at a time.

`json.dumps` with `indent` runs Python's pure-Python encoder, one call per value: `--json`
of 31k sessions took 1.1 s of a 4 s command. Here each column becomes the JSON text of its
cells in one go (polars for integers and times, `repr` for floats, the json module's C string
escaper for text: once per distinct text inside lists), and polars joins the cells of each
row, and the items of each list. The text is what
`json.dumps(record, ensure_ascii=False, indent=...)` writes, byte for byte (tests hold it to
that), so `--json`, `jsonl`, and the JSON in CSV cells read the same as before.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring  # the escaper json.dumps uses (C when available)

import polars as pl

ISO = "%Y-%m-%dT%H:%M:%S%.9fZ"  # nanoseconds, UTC


def objects(rows: pl.DataFrame, *, indent: int | None, level: int = 0) -> list[str]:
    """Each row as the text of a JSON object: compact (`indent=None`, as one JSON line), or
    indented and nested `level` deep (1: an item of a top-level array)."""
    cells = [
        (name, cell_texts(series, indent=indent, level=level + 1))
        for name, series in zip(rows.columns, rows.get_columns(), strict=True)
    ]
    if not cells:
        return ["{}"] * rows.height
    if indent is None:
        opening, between, closing = "{", ", ", "}"
    else:
        inner = "\n" + " " * (indent * (level + 1))
        opening, between, closing = "{" + inner, "," + inner, "\n" + " " * (indent * level) + "}"
    parts = []
    for i, (name, text) in enumerate(cells):
        parts += [pl.lit((opening if i == 0 else between) + encode_basestring(name) + ": "), text]
    parts.append(pl.lit(closing))
    return pl.select(pl.concat_str(parts)).to_series().to_list()


def cell_texts(series: pl.Series, *, indent: int | None, level: int) -> pl.Series:
    """The JSON text of each cell (a JSON null for a missing value), for a value `level` deep."""
    dtype = series.dtype
    if dtype.is_integer():
        return series.cast(pl.String).fill_null("null")
    if dtype == pl.Boolean:
        return pl.select(
            pl.when(series).then(pl.lit("true")).when(~series).then(pl.lit("false"))
        ).to_series().fill_null("null")  # fmt: skip
    if isinstance(dtype, pl.Datetime):
        return ('"' + series.dt.strftime(ISO) + '"').fill_null("null")
    if dtype == pl.Float64:
        return _floats(series)
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return _strings(series.cast(pl.String))
    if dtype == pl.List(pl.String):
        item = _escaped(pl.element(), series.explode())
        return _containers(series, item, "[", "]", indent, level)
    if dtype == pl.List(pl.Struct({"key": pl.String, "value": pl.String})):  # metadata
        return _objects(series, indent, level)
    # Any other type (none of the result frames has one): a json.dumps call per cell.
    margin = "\n" + " " * ((indent or 0) * level)
    return pl.Series(
        [json.dumps(v, ensure_ascii=False, indent=indent).replace("\n", margin)
         for v in series.to_list()],
        dtype=pl.String,
    )  # fmt: skip


def _floats(series: pl.Series) -> pl.Series:
    """Python's repr of each float, as json.dumps writes it (null: missing or not finite).
    Polars writes the same text (the shortest digits that read back, 1e+16 on), except below
    1e-4, where repr turns to an exponent (1e-05) and polars does not (0.00001): those few are
    made by repr, the rest in polars."""
    finite = series.is_finite() & ((series == 0) | (series.abs() >= 1e-4))
    plain = finite.fill_null(False)
    texts = pl.select(pl.when(plain).then(series.cast(pl.String)).otherwise(pl.lit("null")))
    return _patched(texts.to_series(), ~plain & series.is_not_null(), series, _number)


# What json.dumps escapes in a string (with ensure_ascii=False): quote, backslash, controls.
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'


def _strings(series: pl.Series) -> pl.Series:
    """The JSON text of each string (null: missing), as json.dumps writes it: quoted, in
    polars, unless it has something to escape; those few go through the json module."""
    escape = series.str.contains(_NEEDS_ESCAPE).fill_null(False)
    quoted = pl.select(pl.lit('"') + series + pl.lit('"')).to_series().fill_null("null")
    return _patched(quoted, escape, series, _string)


def _patched(texts: pl.Series, where: pl.Series, values: pl.Series, make) -> pl.Series:
    """`texts`, with those `where` is true replaced by `make` of their value."""
    rows = where.arg_true()
    if rows.is_empty():
        return texts
    return texts.scatter(rows, [make(v) for v in values.gather(rows).to_list()])


def _escaped(texts: pl.Expr, values: pl.Series) -> pl.Expr:
    """The JSON text of each of `texts` (a JSON null for a missing one), all of which are
    among `values`: each distinct value is escaped once, as a result's lists repeat a few
    names many times, and the texts are looked up in polars."""
    distinct = values.drop_nulls().unique()
    escaped = pl.Series([encode_basestring(v) for v in distinct.to_list()], dtype=pl.String)
    return texts.replace_strict(distinct, escaped, default=None).fill_null("null")


def _containers(
    series: pl.Series, item: pl.Expr, opening: str, closing: str, indent: int | None, level: int
) -> pl.Series:
    """The JSON text of each list as an array or object of `item`s (the text of an element),
    laid out as `_container` lays it out."""
    if indent is None:
        first, between, last = opening, ", ", closing
    else:
        inner = "\n" + " " * (indent * (level + 1))
        first, between, last = opening + inner, "," + inner, "\n" + " " * (indent * level) + closing
    lists = pl.col("cells")
    texts = (
        pl.when(lists.is_null())
        .then(pl.lit("null"))
        .when(lists.list.len() == 0)
        .then(pl.lit(opening + closing))
        .otherwise(pl.lit(first) + lists.list.eval(item).list.join(between) + pl.lit(last))
    )
    return series.to_frame("cells").select(texts).to_series()


def _objects(series: pl.Series, indent: int | None, level: int) -> pl.Series:
    """Metadata lists as objects. A list naming a key twice keeps its last value where the key
    first came, as a dict does: those few are made one by one."""
    key, value = pl.element().struct.field("key"), pl.element().struct.field("value")
    keys = series.list.eval(key.fill_null("null"))
    values = series.explode().struct.field("value")
    pair = _escaped(key.fill_null("null"), keys.explode()) + pl.lit(": ") + _escaped(value, values)
    texts = _containers(series, pair, "{", "}", indent, level)
    repeated = (series.list.eval(key).list.n_unique() < series.list.len()).fill_null(False)
    if not repeated.any():
        return texts
    one_by_one = [_pairs(v, indent, level) if r else None
                  for v, r in zip(series.to_list(), repeated.to_list(), strict=True)]  # fmt: skip
    return pl.select(
        pl.when(repeated).then(pl.Series(one_by_one, dtype=pl.String)).otherwise(texts)
    ).to_series()


def _number(value: float | None) -> str:
    return "null" if value is None or not math.isfinite(value) else float.__repr__(value)


def _string(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _pairs(pairs: list | None, indent: int | None, level: int) -> str:
    """Key-value pairs as an object (a key given twice keeps its last value, as in a dict)."""
    if pairs is None:
        return "null"
    merged = {kv["key"]: kv["value"] for kv in pairs}
    keys = (encode_basestring("null" if k is None else k) for k in merged)  # as json.dumps
    items = [f"{key}: {_string(v)}" for key, v in zip(keys, merged.values(), strict=True)]
    return _container("{", items, "}", indent, level)


def _container(opening: str, items: list[str], closing: str, indent: int | None, level: int):
    if not items:
        return opening + closing
    if indent is None:
        return opening + ", ".join(items) + closing
    inner = "\n" + " " * (indent * (level + 1))
    return opening + inner + ("," + inner).join(items) + "\n" + " " * (indent * level) + closing
