"""Frame operations the stages share."""

from __future__ import annotations

import polars as pl


def sorted_stack(parts: list[pl.DataFrame], *, by: tuple[str, ...]) -> pl.DataFrame:
    """`parts` one under the other, sorted by `by` (nulls last), emptying `parts`.

    A sort of the stacked frame holds it twice at its peak, and gathering a list column across
    the parts' chunks cost several times the column (one trace of 1M spans, a session table of
    1M rows). Here the order comes from the keys alone, and each column is copied into it and
    then let go of in turn, so only one column is ever held twice. The caller must hold no
    other reference to the parts, or nothing is let go of."""
    keys = pl.concat([part.select(by) for part in parts], how="vertical_relaxed")
    order = keys.select(pl.arg_sort_by(by, nulls_last=True)).to_series()
    del keys
    names = parts[0].columns
    # The parts' columns held as series, each let go of once stacked: a polars `select` and
    # `drop` of every column of every part cost more than the sort itself (a session table in
    # 16 parts).
    held = [part.get_columns() for part in parts]
    parts.clear()
    columns = []
    for name in names:
        stacked = pl.concat([got.pop(0).to_frame(name) for got in held], how="vertical_relaxed")
        # One chunk first: a gather across chunks of a list column cost several times it.
        columns.append(stacked.to_series().rechunk().gather(order))
        del stacked
    return pl.DataFrame(columns)
