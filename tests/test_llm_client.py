"""The chat client against a real local HTTP server: retries, timeouts, structured output, cache, keys."""

from __future__ import annotations

import pytest

from mentor.llm import ChatClient, LLMError, MemoryCache, client_from_spec, parse_prices, price_for
from mentor.llm.prices import Price, PriceError
from mentor.llm.replies import ReplyError, integer_in, json_reply
from tests.fake_openai_server import FakeOpenAI

KEY = "sk-test-DO-NOT-LEAK-1234567890"
HI = [{"role": "user", "content": "hi"}]


def client(server: FakeOpenAI, **kw) -> tuple[ChatClient, list[dict], list[float]]:
    calls: list[dict] = []
    sleeps: list[float] = []
    options = {"api_key": KEY, "sleep": sleeps.append, "backoff": 0.01, "recorder": lambda **f: calls.append(f), **kw}
    return ChatClient("gpt-4o-mini", base_url=server.url, **options), calls, sleeps


def test_a_reply_with_usage_cost_and_a_raw_record():
    with FakeOpenAI([{"content": "hello", "usage": {"prompt_tokens": 1000, "completion_tokens": 2000}}]) as server:
        c, calls, _ = client(server)
        reply = c.complete(HI, purpose="test", temperature=0.3, max_tokens=50, round_no=2)
    assert reply.text == "hello" and not reply.cached
    assert (reply.tokens_in, reply.tokens_out) == (1000, 2000)
    assert reply.cost == pytest.approx((1000 * 0.15 + 2000 * 0.60) / 1e6)  # the built-in gpt-4o-mini price
    sent = server.requests[0]
    assert sent["model"] == "gpt-4o-mini" and sent["messages"] == HI and sent["temperature"] == 0.3 and sent["max_tokens"] == 50
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"
    [call] = calls
    assert call["outcome"] == "ok" and call["round_no"] == 2 and call["purpose"] == "test" and call["cache_key"]
    assert '"hello"' in call["reply"] and call["request"]["body"]["messages"] == HI


def test_429_honours_retry_after_and_500_backs_off():
    script = [{"status": 429, "headers": {"Retry-After": "3"}, "body": {"error": "rate"}},
              {"status": 500, "body": "boom"}, {"status": 503, "body": "busy"}, "done"]
    with FakeOpenAI(script) as server:
        c, calls, sleeps = client(server)
        assert c.complete(HI, purpose="t").text == "done"
    assert [call["outcome"] for call in calls] == ["http 429", "http 500", "http 503", "ok"]
    assert sleeps[0] == 3.0
    # exponential backoff with jitter: retry n waits between half and all of 0.01 * 2**(n-1)
    assert 0.01 <= sleeps[1] <= 0.02 and 0.02 <= sleeps[2] <= 0.04


def test_a_reply_slower_than_the_timeout_is_retried():
    with FakeOpenAI([{"delay": 1.5, "content": "too late"}, "in time"]) as server:
        c, calls, _ = client(server, timeout=0.3)
        assert c.complete(HI, purpose="t").text == "in time"
    assert calls[0]["outcome"].startswith("timeout") and calls[1]["outcome"] == "ok"


def test_retries_run_out_with_a_message_and_every_attempt_recorded():
    with FakeOpenAI(default={"status": 502, "body": "bad gateway"}) as server:
        c, calls, sleeps = client(server, max_retries=2)
        with pytest.raises(LLMError, match="no reply after 3 tries"):
            c.complete(HI, purpose="t")
    assert len(server.requests) == 3 and len(calls) == 3 and len(sleeps) == 2


def test_connection_refused_is_retried_then_reported():
    with FakeOpenAI() as server:
        url = server.url
    c = ChatClient("m", base_url=url, max_retries=1, sleep=lambda s: None, backoff=0.0)
    with pytest.raises(LLMError, match="connection error"):
        c.complete(HI, purpose="t")


def test_a_rejected_key_fails_at_once_without_showing_the_key():
    body = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    with FakeOpenAI([{"status": 401, "body": body}]) as server:
        c, calls, _ = client(server)
        with pytest.raises(LLMError) as err:
            c.complete(HI, purpose="t")
    assert "401" in str(err.value) and "MENTOR_OPENAI_API_KEY" in str(err.value)
    assert KEY not in str(err.value) and KEY not in repr(c) and KEY not in repr(calls)
    assert len(server.requests) == 1


def test_structured_output_is_used_and_dropped_when_the_server_refuses_it():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    with FakeOpenAI(default='{"a": "x"}') as server:
        c, _, _ = client(server)
        c.complete(HI, purpose="exam", json_schema=schema)
    assert server.requests[0]["response_format"]["json_schema"]["schema"] == schema and c.supports_json_schema
    with FakeOpenAI(default='{"a": "x"}', json_schema=False) as server:
        c, calls, _ = client(server)
        assert c.complete(HI, purpose="exam", json_schema=schema).text == '{"a": "x"}'
        c.complete(HI + HI, purpose="exam", json_schema=schema)
    assert c.supports_json_schema is False
    assert ["response_format" in r for r in server.requests] == [True, False, False]
    assert "refused" in calls[0]["outcome"]


def test_the_cache_answers_a_repeated_request_without_sending_it():
    with FakeOpenAI(["first", "second"]) as server:
        c, calls, _ = client(server, cache=MemoryCache())
        a = c.complete(HI, purpose="t")
        b = c.complete(HI, purpose="t")
        other = c.complete(HI, purpose="t", temperature=0.5)  # other parameters: another request
    assert (a.text, b.text, other.text) == ("first", "first", "second")
    assert b.cached and b.cost == 0 and len(server.requests) == 2
    assert [call["outcome"] for call in calls] == ["ok", "cached", "ok"]


def test_map_keeps_to_the_concurrency_limit_and_the_order():
    with FakeOpenAI(default=lambda body: {"delay": 0.15, "content": body["messages"][0]["content"]}) as server:
        c, _, _ = client(server, concurrency=2)
        texts = c.map(lambda i: c.complete([{"role": "user", "content": str(i)}], purpose="t").text, range(6))
    assert texts == [str(i) for i in range(6)]
    assert server.peak == 2


def test_client_from_spec_reads_the_environment_and_keeps_keys_to_their_server(monkeypatch):
    for name in ("MENTOR_OPENAI_BASE_URL", "MENTOR_OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(LLMError, match="needs an API key"):
        client_from_spec("openai:gpt-4o")
    with pytest.raises(LLMError, match="openai:MODEL"):
        client_from_spec("gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert client_from_spec("openai:gpt-4o")._key == "sk-openai"
    monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    local = client_from_spec("openai:llama")
    assert local.base_url == "http://127.0.0.1:9/v1" and local._key == ""  # the OpenAI key stays with OpenAI
    monkeypatch.setenv("MENTOR_OPENAI_API_KEY", "nvapi-x")
    assert client_from_spec("openai:llama")._key == "nvapi-x"
    assert client_from_spec("openai:llama", base_url="http://h/v1", api_key="")._key == ""


def test_prices_parse_and_match_by_longest_prefix():
    table = parse_prices(["my-model=1/2", "gpt-4o=3.0/12"])
    assert table["my-model"] == Price(1.0, 2.0)
    assert price_for("gpt-4o-2024-08-06", table) == Price(3.0, 12.0)
    assert price_for("gpt-4o-mini-2024-07-18") == Price(0.15, 0.60)
    assert price_for("llama3.1:8b") is None
    with pytest.raises(PriceError, match="MODEL=IN/OUT"):
        parse_prices(["gpt-4o:2.5"])


def test_json_replies_after_prose_in_fences_malformed_and_truncated():
    assert json_reply('{"exam": []}', "exam") == {"exam": []}
    prose = 'I will think first. Options: {"a": 1}.\nFinal answer:\n{"exam": [{"question": {"x": "if (a) { b(); }"}}]}'
    assert json_reply(prose, "exam")["exam"][0]["question"]["x"] == "if (a) { b(); }"
    assert json_reply('Here:\n```json\n{"feedback": "ok", "proficiency": 5}\n```', "proficiency")["proficiency"] == 5
    with pytest.raises(ReplyError, match="not valid"):
        json_reply('```json\n{"exam": [1, 2,, 3]}\n```', "exam")
    with pytest.raises(ReplyError, match="truncated"):
        json_reply('Sure: {"exam": [{"question": {"code": "x"', "exam")
    with pytest.raises(ReplyError, match="cut off"):
        json_reply('{"exam": [', "exam", finish_reason="length")
    with pytest.raises(ReplyError, match="no JSON object"):
        json_reply("I cannot do that.", "exam")
    with pytest.raises(ReplyError, match='no "exam" key'):
        json_reply('{"questions": []}', "exam")


def test_integers_are_read_never_guessed():
    assert [integer_in(v, 1, 10) for v in (7, 7.0, " 7 ", 1, 10)] == [7, 7, 7, 1, 10]
    assert [integer_in(v, 1, 10) for v in (0, 11, 7.5, "7/10", "seven", None, True)] == [None] * 7
