"""The cost of each LLM call (contract §3).

`auto`: the span's cost attribute when it is a number >= 0, else the price table, else unknown.
`attribute`: only the attribute. `calculate`: only the price table.

The price table is the bundled, dated `genai-prices` data (offline), imported only when a call
needs it, with `--prices FILE` entries taking precedence. Prices can be tiered by context size,
so they are computed per distinct (model, provider, input, output) combination, never per span.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import polars as pl

from sessions_cli.errors import UsageError

COST_MODES = ("auto", "attribute", "calculate")


def load_price_file(path: str | None) -> dict[str, tuple[float, float]]:
    """`{"model": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}, ...}`, USD per million."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--prices {path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise UsageError(f"--prices {path}: invalid JSON ({exc})") from exc
    prices = {}
    for model, entry in data.items() if isinstance(data, dict) else []:
        try:
            prices[model.casefold()] = (
                float(entry.get("input_per_mtok", 0)),
                float(entry.get("output_per_mtok", 0)),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise UsageError(
                f"--prices {path}: entry {model!r} needs numeric input_per_mtok/output_per_mtok"
            ) from exc
    if not prices:
        raise UsageError(f"--prices {path}: expected an object of model -> prices")
    return prices


def price_calls(
    calls: pl.DataFrame, mode: str, overrides: dict[str, tuple[float, float]]
) -> pl.DataFrame:
    """Add `call_cost_usd` and `call_cost_source` to a frame of LLM calls.

    Needs the columns model, provider, input_tokens, output_tokens, cost_usd.
    """
    attribute = pl.col("cost_usd") if mode != "calculate" else pl.lit(None, pl.Float64)
    needs_table = calls.filter(
        attribute.is_null()
        & pl.col("model").is_not_null()
        & (pl.col("input_tokens").is_not_null() | pl.col("output_tokens").is_not_null())
    )
    if mode == "attribute" or needs_table.is_empty():
        table = pl.lit(None, pl.Float64)
    else:
        keys = ["model", "provider", "input_tokens", "output_tokens"]
        combos = needs_table.select(keys).unique()
        combos = combos.with_columns(
            pl.Series(
                "table_cost_usd",
                [_table_price(*row, overrides=overrides) for row in combos.iter_rows()],
                dtype=pl.Float64,
            )
        )
        calls = calls.join(combos, on=keys, how="left", nulls_equal=True, maintain_order="left")
        table = pl.col("table_cost_usd")
    return calls.with_columns(
        pl.coalesce(attribute, table).alias("call_cost_usd"),
        pl.when(attribute.is_not_null())
        .then(pl.lit("attribute"))
        .when(table.is_not_null())
        .then(pl.lit("price_table"))
        .alias("call_cost_source"),
    ).drop("table_cost_usd", strict=False)


def _table_price(model, provider, input_tokens, output_tokens, *, overrides) -> float | None:
    inp, out = input_tokens or 0, output_tokens or 0
    override = overrides.get(model.casefold())
    if override is not None:
        return (inp * override[0] + out * override[1]) / 1_000_000
    return _genai_price(model, provider, inp, out)


@lru_cache(maxsize=65536)
def _genai_price(model: str, provider: str | None, inp: int, out: int) -> float | None:
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=inp, output_tokens=out)
    for provider_id in [provider, None] if provider else [None]:
        try:
            return float(calc_price(usage, model_ref=model, provider_id=provider_id).total_price)
        except LookupError:
            continue
    return None
