"""List prices of Claude models, for the cost metric (an estimate, not a bill)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPrice:
    input_per_million: float
    output_per_million: float

    @property
    def cache_write_per_million(self) -> float:
        return self.input_per_million * 1.25

    @property
    def cache_read_per_million(self) -> float:
        return self.input_per_million * 0.1


PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-5": ModelPrice(5.0, 25.0),
    "claude-opus-4-1": ModelPrice(15.0, 75.0),
    "claude-opus-4-0": ModelPrice(15.0, 75.0),
    "claude-opus-4-2025": ModelPrice(15.0, 75.0),
    "claude-sonnet-4": ModelPrice(3.0, 15.0),
    "claude-3-7-sonnet": ModelPrice(3.0, 15.0),
    "claude-haiku-4-5": ModelPrice(1.0, 5.0),
    "claude-3-5-haiku": ModelPrice(0.8, 4.0),
}
"""USD per million tokens, keyed by model-name prefix (the longest matching prefix wins,
so dated versions such as `claude-sonnet-4-5-20250929` find their family). A model with
no entry gets no cost figure rather than a guessed one."""


def price_for(model: str) -> ModelPrice | None:
    matches = [prefix for prefix in PRICES if model.startswith(prefix)]
    return PRICES[max(matches, key=len)] if matches else None


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_creation_tokens: int = 0,
    cache_read_tokens: int = 0,
) -> float | None:
    """Estimated cost of one call; None for a model without a known price."""
    price = price_for(model)
    if price is None:
        return None
    return (
        input_tokens * price.input_per_million
        + output_tokens * price.output_per_million
        + cache_creation_tokens * price.cache_write_per_million
        + cache_read_tokens * price.cache_read_per_million
    ) / 1_000_000
