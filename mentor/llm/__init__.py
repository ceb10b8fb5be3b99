"""Hosted models over the OpenAI-compatible chat API: the client the openai teacher, the remote student
and the judge share, its price table, and helpers that read JSON out of a model's reply."""

from mentor.llm.client import ChatClient, LLMError, MemoryCache, Reply, ReplyCache, client_from_spec
from mentor.llm.prices import Price, parse_prices, price_for

__all__ = ["ChatClient", "LLMError", "MemoryCache", "Reply", "ReplyCache", "client_from_spec", "Price",
           "parse_prices", "price_for"]
