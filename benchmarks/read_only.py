"""Reading alone, for the benchmark: PATH -> the deduplicated groups of spans that the model
would take, without building the model. Prints the seconds it took (imports not counted) and
the span count.

    python benchmarks/read_only.py FILE
    python benchmarks/read_only.py FILE --decode-only

`$SESSIONS_TIMING`'s read phase is not this for a converted Parquet file: its groups are read
on threads while the model works on the ones before, and the phase is only the time the model
waited for them.

`--decode-only` is the floor under OTLP JSON reading on the active path: the same reader
(blocks, line splitting, both threads), but each batch is only turned into the rows that path
starts from, and nothing is made of them (no spans, no dedupe, no spill). With the native
reader that is its extractor (span rows and chosen attributes, as Arrow arrays); with
SESSIONS_NATIVE=0, polars' `json_decode` for scalar values only.
"""

from __future__ import annotations

import sys
import time

from sessions_cli.read import keys as attributes
from sessions_cli.read import native, otlp
from sessions_cli.read import sources as inputs
from sessions_cli.read.schema import empty_spans
from sessions_cli.store import loading


def main() -> None:
    if "--decode-only" in sys.argv[2:]:
        otlp.spans_from_blocks = _extract_only
        otlp.spans_from_lines = _decode_only
    started = time.perf_counter()
    sources = inputs.resolve((sys.argv[1],), stdin_is_tty=True, env={})
    store, _ = loading.read_store(sources, attributes.chains(()))
    with store:
        spans = sum(group.height for group in store.groups())
    print(f"{time.perf_counter() - started:.3f} {spans}")


def _extract_only(blocks, chains, problems):
    """What `otlp.spans_from_blocks` costs at the least: the native extractor's rows."""
    if not native.active():
        return None
    found = native.rows(blocks, otlp.wanted_keys(chains), chains)
    return None if found is None else empty_spans()


def _decode_only(lines, chains, problems=None, *, trust_nul=False):
    """What `otlp.spans_from_lines` costs at the least: the decode, for scalar values only."""
    otlp._decoded(lines, otlp._document(otlp._INNER))
    return empty_spans()


if __name__ == "__main__":
    main()
