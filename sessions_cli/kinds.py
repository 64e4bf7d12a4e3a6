"""The closed sets of choices every layer shares: output formats and cost modes.

Kept free of polars so that the CLI can build its options (and `--help`) without importing it.
"""

from __future__ import annotations

from typing import Literal, get_args

Format = Literal["table", "json", "jsonl", "csv", "tsv", "markdown"]
FORMATS: tuple[Format, ...] = get_args(Format)

# auto: a span's cost attribute, else the price table; attribute: attributes only;
# calculate: the price table only.
CostMode = Literal["auto", "attribute", "calculate"]
COST_MODES: tuple[CostMode, ...] = get_args(CostMode)
