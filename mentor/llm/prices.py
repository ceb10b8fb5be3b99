"""What a model's tokens cost: a small built-in price table, extended or overridden from the config.

Prices are USD per million tokens, input and output. The built-in figures are the public list prices
we knew of when this was written (2025) and are assumptions, not a bill: providers change them, so a
run's config can set its own with `teacher.prices = ["MODEL=IN/OUT", ...]`. A model with no known
price costs 0 and its tokens are still counted (token budgets work without a price).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from mentor.config import ConfigError


@dataclass(frozen=True)
class Price:
    input: float  # USD per million input (prompt) tokens
    output: float  # USD per million output (completion) tokens

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input + tokens_out * self.output) / 1_000_000


BUILTIN_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
}


class PriceError(ConfigError):
    """A price entry that cannot be read; the message shows the expected form."""


def parse_prices(entries: Iterable[str]) -> dict[str, Price]:
    """["gpt-4o=2.5/10", ...] -> {"gpt-4o": Price(2.5, 10.0)}."""
    table: dict[str, Price] = {}
    for entry in entries:
        model, sep, numbers = entry.partition("=")
        given, slash, taken = numbers.partition("/")
        try:
            if not (sep and slash and model.strip()):
                raise ValueError
            table[model.strip()] = Price(float(given), float(taken))
        except ValueError:
            raise PriceError(f"price {entry!r} must look like MODEL=IN/OUT (USD per million tokens), "
                             "e.g. gpt-4o=2.50/10.00") from None
    return table


def price_for(model: str, extra: dict[str, Price] | None = None) -> Price | None:
    """The price of a model: an exact entry, else the longest entry the name starts with
    (so "gpt-4o-2024-08-06" costs what "gpt-4o" costs and "gpt-4o-mini" keeps its own price)."""
    table = {**BUILTIN_PRICES, **(extra or {})}
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name)]
    return table[max(prefixes, key=len)] if prefixes else None
