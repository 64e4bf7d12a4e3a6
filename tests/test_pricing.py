"""Each LLM call's cost: attribute, price table (linear and tiered models), or unknown."""

from __future__ import annotations

import polars as pl
import pytest
from genai_prices import Usage, calc_price

from sessions_cli.model import pricing

CALLS = pl.DataFrame(
    [
        ("gemini-1.5-pro", "google", 300_000, None, None),  # tiered: over 128k costs more
        ("gemini-1.5-pro", "google", 1_000, None, None),
        ("gemini-1.5-pro", "google", 1_000, None, None),  # the same combination again
        ("gpt-4o", "openai", 1_000, None, None),
        ("gpt-4o", "openai", 1_000, 500, 0.5),  # the attribute wins in auto
        ("gpt-4o", "openai", None, None, None),  # no tokens: nothing to price
        ("acme-local-7b", None, 10, 10, None),  # not in the table
        (None, None, 10, 10, None),
    ],
    schema={
        "model": pl.String,
        "provider": pl.String,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
    },
    orient="row",
).with_columns(
    cache_read_tokens=pl.lit(None, pl.Int64), cache_write_tokens=pl.lit(None, pl.Int64)
)  # fmt: skip


def library_price(model, provider, tokens_in, tokens_out):
    usage = Usage(input_tokens=tokens_in or 0, output_tokens=tokens_out or 0)
    return float(calc_price(usage, model_ref=model, provider_id=provider).total_price)


def test_auto_takes_the_attribute_else_the_table():
    priced = pricing.price_calls(CALLS, "auto", {})
    table = [library_price(*row[:4]) for row in CALLS.head(4).iter_rows()]
    assert priced.get_column("call_cost_usd").to_list() == pytest.approx(
        [*table, 0.5, None, None, None]
    )
    assert priced.get_column("call_cost_source").to_list() == [
        *["price_table"] * 4, "attribute", None, None, None,
    ]  # fmt: skip
    assert table[0] / 300 > table[1] / 1  # the tier above 128k input tokens is dearer


def test_calculate_ignores_the_attribute_and_attribute_ignores_the_table():
    calculated = pricing.price_calls(CALLS, "calculate", {}).get_column("call_cost_usd")
    assert calculated[4] == pytest.approx(library_price("gpt-4o", "openai", 1_000, 500))
    attribute = pricing.price_calls(CALLS, "attribute", {}).get_column("call_cost_usd")
    assert attribute.to_list() == [None, None, None, None, 0.5, None, None, None]


def test_a_price_file_entry_overrides_the_table():
    priced = pricing.price_calls(CALLS, "auto", {"gemini-1.5-pro": (1.0, 2.0)})
    costs = priced.get_column("call_cost_usd").to_list()
    assert costs[:2] == pytest.approx([300_000 * 1.0 / 1e6, 1_000 * 1.0 / 1e6])
    assert costs[3] == pytest.approx(library_price("gpt-4o", "openai", 1_000, None))


def test_cache_tokens_are_priced_at_their_own_rates():
    """Anthropic's list prices per million: input $3, output $15, cache reads $0.30, cache
    writes $3.75; cache tokens are part of the input count."""
    calls = pl.DataFrame(
        [("claude-3-5-sonnet-20241022", "anthropic", 10_000, 1_000, None, 6_000, 2_000)],
        schema={"model": pl.String, "provider": pl.String, "input_tokens": pl.Int64,
                "output_tokens": pl.Int64, "cost_usd": pl.Float64,
                "cache_read_tokens": pl.Int64, "cache_write_tokens": pl.Int64},
        orient="row",
    )  # fmt: skip
    [cost] = pricing.price_calls(calls, "auto", {}).get_column("call_cost_usd").to_list()
    uncached = 10_000 - 6_000 - 2_000
    assert cost == pytest.approx((uncached * 3 + 6_000 * 0.30 + 2_000 * 3.75 + 1_000 * 15) / 1e6)
