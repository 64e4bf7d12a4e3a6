"""SpanStore's deduplication: the first reading of each span wins, copies are counted."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from sessions_cli.read import schema
from sessions_cli.store import spans as store

IDS = st.tuples(st.sampled_from(["a" * 32, "b" * 32]), st.sampled_from(["1", "2", "3", "4"]))


@given(st.lists(st.tuples(IDS, st.sampled_from(["x", "y"])), max_size=12))
def test_first_readings_is_unique_keeping_the_first(readings):
    frame = pl.DataFrame(
        [(t, s, name) for (t, s), name in readings],
        schema={"trace_id": pl.String, "span_id": pl.String, "name": pl.String},
        orient="row",
    )
    spans = schema.compact(schema.conform(frame))
    kept, conflicts = store.first_readings(spans)
    expected = spans.unique(["trace_id", "span_id"], keep="first", maintain_order=True)
    assert kept.to_dicts() == expected.to_dicts()
    names: dict[tuple, set] = {}
    for ids, name in readings:
        names.setdefault(ids, set()).add(name)
    assert conflicts == sum(len(found) > 1 for found in names.values())
