"""Reading alone, for the benchmark: PATH -> the deduplicated groups of spans that the model
would take, without building the model. Prints the seconds it took (imports not counted) and
the span count.

    python benchmarks/read_only.py FILE

`$SESSIONS_TIMING`'s read phase is not this for a converted Parquet file: its groups are read
while the model works on the ones before, so their wall time there includes waiting for a core.
"""

from __future__ import annotations

import sys
import time

from sessions_cli import attributes, inputs


def main() -> None:
    started = time.perf_counter()
    sources = inputs.resolve((sys.argv[1],), stdin_is_tty=True, env={})
    store, _ = inputs.read_store(sources, attributes.chains(()))
    with store:
        spans = sum(group.height for group in store.groups())
    print(f"{time.perf_counter() - started:.3f} {spans}")


if __name__ == "__main__":
    main()
