"""The cost of each LLM call (contract §3).

`auto`: the span's cost attribute when it is a number >= 0, else the price table, else unknown.
`attribute`: only the attribute. `calculate`: only the price table.

The price table is the bundled, dated `genai-prices` data (offline), imported only when a call
needs it, with `--prices FILE` entries taking precedence. genai-prices is slow per call (about
0.25 ms), so it is asked once per distinct (model, provider) for a linear rate (fixed fee, input
and output per token), applied in columns. Only models with tiered prices (the rate depends on
the context size) are priced per distinct (model, provider, input, output) combination.
"""

from __future__ import annotations

import json
import math
import os
import threading
from functools import cache
from pathlib import Path

import polars as pl

# Prices per million tokens above this are not prices: a typo or a hostile file.
_MAX_PER_MTOK = 1_000_000.0


def load_price_file(path: str | None) -> dict[str, tuple[float, float]]:
    """`{"model": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}, ...}`, USD per million.
    Raises ValueError naming the file and what is wrong with it."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except RecursionError as exc:
        raise ValueError(f"{path}: invalid JSON (nested too deeply)") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc
    prices = {}
    for model, entry in data.items() if isinstance(data, dict) else []:
        rates = _rates(entry)
        if rates is None:
            raise ValueError(
                f"{path}: entry {model!r} needs input_per_mtok/output_per_mtok as numbers "
                f"from 0 to {_MAX_PER_MTOK:,.0f}"
            )
        prices[model.casefold()] = rates
    if not prices:
        raise ValueError(f"{path}: expected an object of model -> prices")
    return prices


def _rates(entry) -> tuple[float, float] | None:
    """(input, output) USD per million tokens, or None when either is not a usable price."""
    if not isinstance(entry, dict):
        return None
    rates = []
    for key in ("input_per_mtok", "output_per_mtok"):
        value = entry.get(key, 0)
        if isinstance(value, str):  # "0.15" is read as it always was
            try:
                value = float(value)
            except ValueError:
                return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not math.isfinite(value) or not 0 <= value <= _MAX_PER_MTOK:
            return None
        rates.append(float(value))
    return rates[0], rates[1]


def price_calls(
    calls: pl.DataFrame, mode: str, overrides: dict[str, tuple[float, float]]
) -> pl.DataFrame:
    """Add `call_cost_usd` and `call_cost_source` to a frame of LLM calls.

    Needs the columns model, provider, PRICED_TOKENS and cost_usd.
    """
    calls = calls.with_columns(pl.col("model", "provider").cast(pl.String))
    attribute = pl.col("cost_usd") if mode != "calculate" else pl.lit(None, pl.Float64)
    needs_table = (
        attribute.is_null()
        & pl.col("model").is_not_null()
        & (pl.col("input_tokens").is_not_null() | pl.col("output_tokens").is_not_null())
    )
    table = pl.lit(None, pl.Float64)
    if mode != "attribute" and calls.select(needs_table.any()).item():
        calls = calls.with_columns(_table_costs(calls, needs_table, overrides))
        table = pl.col("table_cost_usd")
    return calls.with_columns(
        pl.coalesce(attribute, table).alias("call_cost_usd"),
        pl.when(attribute.is_not_null())
        .then(pl.lit("attribute"))
        .when(table.is_not_null())
        .then(pl.lit("price_table"))
        .alias("call_cost_source"),
    ).drop("table_cost_usd", strict=False)


# Cache reads and writes are part of input_tokens, priced at their own rates where the table
# has them (genai-prices' convention too).
PRICED_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_KEYS = ["model", "provider", *PRICED_TOKENS]
# Money is computed and summed as an exact decimal (to 1e-18 USD), so that totals do not depend
# on the order spans arrive in and carry no binary float noise; floats are only for output.
EXACT = pl.Decimal(38, 18)


def exact(money: pl.Expr) -> pl.Expr:
    """A float money column as the decimal it was written as: through its shortest text, since
    polars' float -> decimal cast truncates (0.009 would become 0.008999999999999999)."""
    return money.cast(pl.String).cast(EXACT)


# The model prices two groups at once (model.build): the rate cache, written back to disk
# and shared by the process, and genai-prices are used by one thread at a time.
_LOOKUPS = threading.Lock()


def _table_costs(calls: pl.DataFrame, needs_table: pl.Expr, overrides) -> pl.Series:
    """table_cost_usd of each call that needs the table (null for the others): a linear rate
    per (model, provider) joined on, applied in columns; tiered models priced per distinct
    (model, provider, input, output)."""
    pairs = calls.filter(needs_table).select("model", "provider").unique()
    with _LOOKUPS, _RateCache() as cache:
        found = [(m, p, *_rate(m, p, overrides, cache)) for m, p in pairs.iter_rows()]
    rates = pl.DataFrame(
        found,
        schema={"model": pl.String, "provider": pl.String, "tiered": pl.Boolean,
                "fixed": pl.Float64, "per_input": pl.Float64, "per_output": pl.Float64,
                "per_cache_read": pl.Float64, "per_cache_write": pl.Float64},
        orient="row",
    )  # fmt: skip
    # Rates as exact decimals once per (model, provider), before they are joined to the calls.
    rate_columns = ("fixed", "per_input", "per_output", "per_cache_read", "per_cache_write")
    priced = calls.select(*_KEYS, needs_table.alias("needs_table")).join(
        rates.with_columns(exact(pl.col(c)) for c in rate_columns),
        on=["model", "provider"],
        how="left",
        nulls_equal=True,
        maintain_order="left",
    )
    read, write = (
        pl.col("cache_read_tokens").fill_null(0),
        pl.col("cache_write_tokens").fill_null(0),
    )
    uncached = (pl.col("input_tokens").fill_null(0) - read - write).clip(lower_bound=0)
    tokens_out = pl.col("output_tokens").fill_null(0)
    # In exact decimals: float arithmetic would leave noise (0.010326000000000002) that the
    # exact sums then carry into every total and every JSON number.
    linear = (
        pl.col("fixed")
        + uncached.cast(EXACT) * pl.col("per_input")
        + read.cast(EXACT) * pl.col("per_cache_read")
        + write.cast(EXACT) * pl.col("per_cache_write")
        + tokens_out.cast(EXACT) * pl.col("per_output")
    ).cast(pl.Float64)
    cost: pl.Expr = pl.when(pl.col("needs_table") & ~pl.col("tiered")).then(linear)
    if rates.get_column("tiered").any():
        combos = priced.filter(pl.col("needs_table") & pl.col("tiered")).select(_KEYS).unique()
        with _LOOKUPS:
            tiered = [_genai_price(m, p, *(n or 0 for n in tokens))
                      for m, p, *tokens in combos.iter_rows()]  # fmt: skip
        combos = combos.with_columns(pl.Series("tiered_cost_usd", tiered, dtype=pl.Float64))
        priced = priced.join(combos, on=_KEYS, how="left", nulls_equal=True, maintain_order="left")
        cost = pl.coalesce(cost, pl.when(pl.col("needs_table")).then("tiered_cost_usd"))
    return priced.select(cost.alias("table_cost_usd")).to_series()


# (tiered, fixed fee, USD per input, output, cache-read and cache-write token); None where
# unknown.
Rate = tuple[bool, float | None, float | None, float | None, float | None, float | None]


def _rate(model: str, provider: str | None, overrides, cache) -> Rate:
    """The Rate of one model. A --prices override has no cache rates: cache tokens are input."""
    override = overrides.get(model.casefold())
    if override is not None:
        per_input = override[0] / 1_000_000
        return False, 0.0, per_input, override[1] / 1_000_000, per_input, per_input
    key = f"{model}\t{provider or ''}"
    if key not in cache.rates:
        cache.rates[key] = list(_genai_rate(model, provider))
        cache.changed = True
    return tuple(cache.rates[key])


class _RateCache:
    """Rates already looked up, on disk per genai-prices release, so that a run whose models
    are all known does not import genai-prices (0.16 s of a small run's 0.4 s). The file is
    read once per process (`_stored_rates`) and written back when a lookup added to it. Best
    effort: a cache that cannot be read or written is simply not used. $SESSIONS_CACHE_DIR
    moves it."""

    def __enter__(self) -> _RateCache:
        self.path = _cache_file()
        self.rates = _stored_rates(self.path)
        self.changed = False
        return self

    def __exit__(self, *exc) -> None:
        if not self.changed or self.path is None or exc[0] is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self.rates), encoding="utf-8")
            os.replace(temporary, self.path)  # atomic: concurrent runs never see half a file
        except OSError:
            pass


@cache
def _stored_rates(path: Path | None) -> dict[str, list]:
    """The cache file's rates (one dict per file and process, shared and added to)."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {k: v for k, v in loaded.items() if isinstance(v, list) and len(v) == 6}


def _cache_file() -> Path | None:
    release = _release()
    if release is None:
        return None
    base = os.environ.get("SESSIONS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sessions"
    )
    return Path(base) / f"rates-v{_LOOKUP_VERSION}-genai-prices-{release}.json"


# Bumped when the way a model name is looked up changes, so that rates cached by an earlier
# lookup (a name it could not price, say) are not reused.
_LOOKUP_VERSION = 3


@cache
def _release() -> str | None:
    """genai-prices' version: looked up once, not per group of spans (2-3 ms each)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genai-prices")
    except PackageNotFoundError:
        return None


def _genai_rate(model: str, provider: str | None) -> Rate:
    probe = _calculation(model, provider, 0, 0)
    if probe is None:
        return False, None, None, None, None, None
    from genai_prices.types import TieredPrices

    if any(isinstance(v, TieredPrices) for v in vars(probe.model_price).values()):
        return True, None, None, None, None, None
    fixed = probe.total_price
    million = 1_000_000

    def per_token(*usage: int) -> float:
        return float(_calculation(model, provider, *usage).total_price - fixed) / million

    # Cache tokens are part of the input: a million of them costs a million input tokens'
    # worth less the input rate, plus the cache rate.
    per_input = per_token(million, 0)
    per_read = per_token(million, 0, million, 0)
    per_write = per_token(million, 0, 0, million)
    return (False, float(fixed), per_input, per_token(0, million), per_read, per_write)


def _genai_price(
    model: str, provider: str | None, inp: int, out: int, read: int = 0, write: int = 0
) -> float | None:
    calculation = _calculation(model, provider, inp, out, read, write)
    return None if calculation is None else float(calculation.total_price)


def _calculation(model: str, provider: str | None, inp: int, out: int, read=0, write=0):
    """genai-prices' price of one call: by model and provider, then by model alone; a gateway
    name such as `openai/gpt-4o` (LiteLLM, OpenRouter, the Vercel AI gateway) is then tried
    as provider `openai`, model `gpt-4o`."""
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=read,
                  cache_write_tokens=write)  # fmt: skip
    tries = [(model, provider), (model, None)] if provider else [(model, None)]
    prefix, _, rest = model.partition("/")
    if prefix and rest:
        tries += [(rest, prefix), (rest, provider), (rest, None)]
    for model_ref, provider_id in dict.fromkeys(tries):
        try:
            return calc_price(usage, model_ref=model_ref, provider_id=provider_id)
        except LookupError:
            continue
    return None
