"""The chat client every hosted backend shares (teacher, remote student, judge): one HTTP endpoint.

It speaks the OpenAI chat-completions protocol, which OpenAI, the NVIDIA API catalog (NIM), vLLM, Ollama
and the llama.cpp server all serve at `<base_url>/chat/completions`. Built to run unattended:
- a timeout per request; retries with exponential backoff and jitter on 429, 5xx, timeouts and
  connection errors, honouring `Retry-After`; other statuses (401, 404...) fail at once with a message
  saying what to check;
- at most `concurrency` requests in flight (`map` runs work in that many threads);
- structured output (`json_schema`) is asked for while the server accepts it; a server that refuses it
  is remembered (`supports_json_schema = False`) and the request is sent again without it;
- every attempt goes to `recorder` raw (request, reply, outcome, tokens, latency, cost), and a reply
  cache keyed by model, messages and parameters means a repeated request is never paid for twice.
The API key only ever travels in the Authorization header: it is not part of a recorded request, an
error message or `repr(client)`.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from mentor.llm.prices import Price, price_for

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Statuses worth another try: rate limits, timeouts on the server side, and server errors.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
# Statuses with which servers refuse a request they cannot serve as sent (here: the response_format).
REFUSAL_STATUSES = frozenset({400, 404, 415, 422, 501})

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Reply:
    """What one completion returned, and what it cost. `cached` replies cost nothing this time."""

    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    seconds: float = 0.0
    cached: bool = False
    # "stop", "length" (cut off at max_tokens: the JSON is likely truncated), ... as the server said.
    finish_reason: str = ""


class LLMError(RuntimeError):
    """The server gave no usable reply: a refused request, or retries used up. Says what to check."""


class ReplyCache(Protocol):
    def get(self, key: str) -> Reply | None: ...

    def put(self, key: str, reply: Reply) -> None: ...


class MemoryCache:
    """A reply cache that lives as long as the process (the run store keeps one across processes)."""

    def __init__(self) -> None:
        self._replies: dict[str, Reply] = {}

    def get(self, key: str) -> Reply | None:
        return self._replies.get(key)

    def put(self, key: str, reply: Reply) -> None:
        self._replies[key] = reply


def cache_key(model: str, messages: list[dict], params: dict[str, Any]) -> str:
    """Identity of a request: the same model, messages and parameters give the same reply to reuse.
    The base URL is left out on purpose: the same model behind another address is the same request."""
    blob = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ChatClient:
    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None, timeout: float = 60,
                 max_retries: int = 5, concurrency: int = 4, recorder: Callable[..., None] | None = None,
                 cache: ReplyCache | None = None, prices: dict[str, Price] | None = None,
                 json_schema: bool = True, backoff: float = 1.0, max_backoff: float = 60.0,
                 max_retry_after: float = 600.0, sleep: Callable[[float], None] = time.sleep) -> None:
        if not model:
            raise LLMError("no model name: use openai:MODEL, e.g. openai:gpt-4o-mini")
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.concurrency = max(1, concurrency)
        self.recorder = recorder
        self.cache = cache
        self.price = price_for(model, prices)
        self.supports_json_schema = json_schema
        self._backoff, self._max_backoff, self._max_retry_after, self._sleep = backoff, max_backoff, max_retry_after, sleep
        self._key = api_key or ""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), headers=headers)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._where = _public_url(self.base_url)

    def __repr__(self) -> str:
        return f"ChatClient({self.model!r} at {self._where})"

    def close(self) -> None:
        self._http.close()

    # ---- one request ------------------------------------------------------------------------

    def complete(self, messages: list[dict], *, purpose: str, json_schema: dict | None = None, temperature: float = 0.0,
                 max_tokens: int | None = None, round_no: int | None = None) -> Reply:
        """The model's reply to `messages`, from the cache when this exact request was answered before."""
        params = {"temperature": temperature, "max_tokens": max_tokens, "json_schema": json_schema}
        key = cache_key(self.model, messages, params)
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            reply = Reply(hit.text, hit.tokens_in, hit.tokens_out, 0.0, 0.0, True, hit.finish_reason)
            self._record(round_no, purpose, {"url": self._where, "cache_key": key}, reply.text, "cached", key=key)
            return reply
        tries, refused = 0, False
        while True:
            body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
            if max_tokens:
                body["max_tokens"] = max_tokens
            with_schema = json_schema is not None and self.supports_json_schema
            if with_schema:
                body["response_format"] = {"type": "json_schema",
                                           "json_schema": {"name": _schema_name(purpose), "schema": json_schema}}
            request = {"url": f"{self._where}/chat/completions", "body": body}
            started = time.monotonic()
            wait_hint: float | None = None
            try:
                with self._slots:
                    response = self._http.post(f"{self.base_url}/chat/completions", json=body)
            except httpx.TimeoutException:
                outcome, raw = f"timeout after {self.timeout:g}s", None
            except httpx.TransportError as err:
                outcome, raw = f"connection error: {type(err).__name__}", None
            else:
                seconds = time.monotonic() - started
                raw = self._redact(response.text)
                if response.status_code == 200:
                    reply, problem = self._reply(response, seconds)
                    if reply is not None:
                        if refused:  # the request only went through without the schema: remember that
                            self.supports_json_schema = False
                        self._record(round_no, purpose, request, raw, "ok", reply, key)
                        if self.cache is not None:
                            self.cache.put(key, reply)
                        return reply
                    outcome = f"bad response: {problem}"
                elif with_schema and response.status_code in REFUSAL_STATUSES:
                    # Many servers answer 400 to a response_format they do not know; try once without it.
                    self._record(round_no, purpose, request, raw, f"http {response.status_code}: json_schema refused?",
                                 seconds=seconds)
                    self.supports_json_schema, refused = False, True
                    continue
                elif response.status_code in RETRY_STATUSES:
                    outcome = f"http {response.status_code}"
                    wait_hint = _retry_after(response.headers.get("retry-after"))
                else:
                    if refused:  # it was not the schema after all
                        self.supports_json_schema = True
                    self._record(round_no, purpose, request, raw, f"http {response.status_code}", seconds=seconds)
                    raise LLMError(self._refusal_message(response.status_code, raw))
            self._record(round_no, purpose, request, raw, outcome, seconds=time.monotonic() - started)
            tries += 1
            if tries > self.max_retries:
                raise LLMError(f"{self.model} at {self._where} gave no reply after {tries} tries (last: {outcome}); "
                               "check that the server is up, or raise teacher.retries / teacher.timeout")
            self._sleep(self._delay(tries, wait_hint))

    def map(self, work: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`work(item)` for each item, at most `concurrency` at a time, results in order. Every item runs
        (its calls are recorded, so a retry of the step gets them from the cache); the first failure is
        then raised."""
        items = list(items)
        if self.concurrency == 1 or len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="mentor-llm") as pool:
            return list(pool.map(work, items))

    # ---- helpers ----------------------------------------------------------------------------

    def _reply(self, response: httpx.Response, seconds: float) -> tuple[Reply | None, str]:
        try:
            data = response.json()
        except ValueError:
            return None, "not JSON"
        parts = completion_parts(data)
        if parts is None:
            return None, "not a chat-completions reply"
        text, finish_reason = parts
        usage = data.get("usage") or {}
        # A server that reports no usage still spends tokens: estimate at about 4 characters per token.
        tokens_in = int(usage.get("prompt_tokens") or 0) or _estimate_tokens(response.request.content.decode("utf-8", "replace"))
        tokens_out = int(usage.get("completion_tokens") or 0) or _estimate_tokens(text)
        cost = self.price.cost(tokens_in, tokens_out) if self.price else 0.0
        return Reply(text, tokens_in, tokens_out, cost, seconds, False, finish_reason), ""

    def _record(self, round_no: int | None, purpose: str, request: dict, reply: str | None, outcome: str,
                result: Reply | None = None, key: str | None = None, seconds: float = 0.0) -> None:
        if self.recorder is None:
            return
        self.recorder(round_no=round_no, purpose=purpose, model=self.model, request=request, reply=reply,
                      outcome=outcome, tokens_in=result.tokens_in if result else 0,
                      tokens_out=result.tokens_out if result else 0, cost=result.cost if result else 0.0,
                      seconds=result.seconds if result else seconds, cache_key=key)

    def _delay(self, tries: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._max_retry_after)
        # Exponential backoff with "full jitter": clients retrying together spread out instead of colliding.
        return random.uniform(0.5, 1.0) * min(self._max_backoff, self._backoff * 2 ** (tries - 1))

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _refusal_message(self, status: int, body: str) -> str:
        hint = {401: "the server refused the API key: set MENTOR_OPENAI_API_KEY (or OPENAI_API_KEY)",
                403: "the API key may not use this model or endpoint",
                404: "no such model or URL: check the model name and the base URL (MENTOR_OPENAI_BASE_URL)"}
        detail = " ".join(body.split())[:300]
        return (f"{self.model} at {self._where}: HTTP {status}"
                + (f": {hint[status]}" if status in hint else "") + (f" (server said: {detail})" if detail else ""))


def completion_parts(data: Any) -> tuple[str, str] | None:
    """(text, finish_reason) of a chat-completions response body; None when it is not one."""
    try:
        choice = data["choices"][0]
        text = (choice.get("message") or {}).get("content") or ""
        return str(text), str(choice.get("finish_reason") or "")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def client_from_spec(spec: str, **kw: Any) -> ChatClient:
    """A client for "openai:MODEL"; other keyword arguments go to ChatClient.

    Address: `base_url=`, else $MENTOR_OPENAI_BASE_URL, else $OPENAI_BASE_URL, else OpenAI's.
    Key: `api_key=` when given (even empty: then none is sent), else the variable named by `api_key_env=`,
    else $MENTOR_OPENAI_API_KEY, else $OPENAI_API_KEY - the last only for OpenAI's own address or
    $OPENAI_BASE_URL, so an OpenAI key is never sent to a server it was not meant for."""
    kind, sep, model = spec.partition(":")
    if kind != "openai" or not sep or not model:
        raise LLMError(f"{spec!r} is not a hosted model spec: use openai:MODEL, e.g. openai:gpt-4o-mini")
    key_env = kw.pop("api_key_env", None)
    openai_url = os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    base_url = kw.pop("base_url", None) or os.environ.get("MENTOR_OPENAI_BASE_URL") or openai_url
    if "api_key" in kw:
        api_key = kw.pop("api_key")
    elif key_env:
        api_key = os.environ.get(key_env)
    else:
        api_key = os.environ.get("MENTOR_OPENAI_API_KEY")
        if not api_key and base_url.rstrip("/") == openai_url.rstrip("/"):
            api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key and urlsplit(base_url).hostname == urlsplit(DEFAULT_BASE_URL).hostname:
        raise LLMError(f"openai:{model} needs an API key: set {key_env or 'MENTOR_OPENAI_API_KEY or OPENAI_API_KEY'} "
                       "(or MENTOR_OPENAI_BASE_URL for another server)")
    return ChatClient(model, base_url=base_url, api_key=api_key, **kw)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _public_url(url: str) -> str:
    """The base URL without user:password@ or a query string, which may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _schema_name(purpose: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", purpose)[:64] or "reply"


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)
