"""A real chat-completions server on 127.0.0.1 that replies from a script: the network edge of our tests.

`FakeOpenAI(script, default=...)` serves `POST <url>/chat/completions` from a thread. Each request takes the
next step of the script, then `default` once the script runs out. A step is:
- a string: a 200 reply with that content;
- a dict: {"content": str, "status": int, "headers": {...}, "body": str or dict (sent instead of a
  completion), "delay": seconds to wait first, "finish_reason": str, "usage": {...}};
- a callable(request_body) -> a step (a fake model that reads the prompt, see `FakeTeacherModel`).
`json_schema=False` makes it refuse `response_format` with HTTP 400, like servers without structured
output. It keeps every request body (`requests`) and header set (`headers`), and the most requests it
had in flight at once (`peak`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

Step = str | dict | Callable[[dict], Any]


def completion(content: str, body: dict | None = None, finish_reason: str = "stop", usage: dict | None = None) -> dict:
    """A chat-completions response; usage is estimated at 4 characters a token unless given."""
    prompt_chars = len(json.dumps((body or {}).get("messages", [])))
    return {"id": "chatcmpl-fake", "object": "chat.completion", "model": (body or {}).get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
            "usage": usage or {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": max(1, len(content) // 4)}}


class FakeOpenAI:
    def __init__(self, script: Iterable[Step] = (), default: Step | None = None, json_schema: bool = True) -> None:
        self.script: deque = deque(script)
        self.default = default
        self.json_schema = json_schema
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a deliberately slow reply must not hold up shutdown
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, *steps: Step) -> None:
        with self.lock:
            self.script.extend(steps)

    def _next(self, body: dict, headers: dict[str, str]) -> Step | None:
        with self.lock:
            self.requests.append(body)
            self.headers.append(headers)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return self.script.popleft() if self.script else self.default


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            step = fake._next(body, {k.lower(): v for k, v in self.headers.items()})
            try:
                self._answer(body, step)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
                pass
            finally:
                with fake.lock:
                    fake.in_flight -= 1

        def _answer(self, body: dict, step: Step | None) -> None:
            if not self.path.endswith("/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            if not fake.json_schema and "response_format" in body:
                return self._send(400, {"error": {"message": "response_format is not supported by this server"}})
            if callable(step):
                step = step(body)
            if step is None:  # not retryable: a test whose script ran out fails loudly
                return self._send(418, {"error": {"message": "fake server: the script ran out"}})
            if isinstance(step, str):
                step = {"content": step}
            time.sleep(step.get("delay", 0))
            if "body" in step:
                payload = step["body"]
            else:
                payload = completion(step.get("content", ""), body, step.get("finish_reason", "stop"), step.get("usage"))
            self._send(step.get("status", 200), payload, step.get("headers", {}))

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, str(value))
            self.end_headers()
            self.wfile.write(data)

    return Handler


# ---- a fake teacher model that understands mentor's prompts ---------------------------------------

_WORDS = ("buffer index token parser cache socket handler session config payload query schema retry lock "
          "thread queue mutex cursor stream header cookie secret upload timeout counter offset matrix").split()


class FakeTeacherModel:
    """Answers mentor's exam, grading and examples prompts with plausible JSON, replies derived from the
    request (the same request gets the same reply). With `mischief`, every reply also carries items that
    must never reach the loop: a label outside the set, an empty field, a copy of a holdout item, a
    near-copy of one, and a repeat; and the first reply to each kind of prompt is prose with fenced JSON."""

    def __init__(self, labels: tuple[str, ...], holdout: list[dict] = (), mischief: bool = True) -> None:
        self.labels, self.holdout, self.mischief = labels, list(holdout), mischief

    def __call__(self, body: dict) -> dict:
        prompt = body["messages"][1]["content"]
        rng = random.Random(hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest())
        if "[PREVIOUS_EXAM_RESULTS]" in prompt:
            k = int(re.search(r"exam of exactly (\d+) questions", prompt).group(1))
            wanted = dict((label, int(n)) for n, label in re.findall(r"(\d+) (\w+)", _after(prompt, "numbers per label:")))
            reply = {"exam": self._items(rng, k, wanted)}
        elif "Grade the student" in prompt:
            results = json.loads(prompt.split("[EXAM_RESULTS]\n", 1)[1].split("\n\n[DATA_SOURCE]", 1)[0])
            right = sum(1 for r in results if r.get("model_answer") == r["answer"])
            k = int(re.search(r"exactly (\d+) new training examples", prompt).group(1))
            reply = {"feedback": f"Got {right} of {len(results)} right; confuses major with minor on caching.",
                     "proficiency": 1 + round(9 * right / max(1, len(results))), "dataset": self._items(rng, k, {})}
        else:
            k = int(re.search(r"exactly (\d+) new training examples", prompt).group(1))
            reply = {"dataset": self._items(rng, k, {})}
        text = json.dumps(reply, indent=1)
        if len(body["messages"]) == 2 and rng.random() < 0.5:
            text = f"Let me think about the student's weak spots first.\n```json\n{text}\n```"
        return {"content": text}

    def _items(self, rng: random.Random, k: int, wanted: dict[str, int]) -> list[dict]:
        labels = [label for label, n in wanted.items() for _ in range(n)] or [self.labels[i % len(self.labels)] for i in range(k)]
        items = [self._item(rng, label) for label in labels[:k]]
        if self.mischief and items:
            items.append({"question": items[0]["question"], "answer": {"issue_type": "blocker"}})
            items.append({"question": {"code": "", "review": "x"}, "answer": {"issue_type": self.labels[0]}})
            items.append(dict(items[0]))
            if self.holdout:
                copy = rng.choice(self.holdout)
                items.append(copy)
                near = {**copy["question"], "review": copy["question"]["review"] + "!"}
                items.append({"question": near, "answer": copy["answer"]})
        return items

    def _item(self, rng: random.Random, label: str) -> dict:
        words = rng.sample(_WORDS, 6)
        code = f"def {words[0]}_{words[1]}({words[2]}):\n    return {words[3]}.{words[4]}({rng.randrange(10**6)})"
        review = f"The {words[5]} handling here is {label}-level: {' '.join(rng.sample(_WORDS, 5))}"
        return {"question": {"code": code, "review": review}, "answer": {"issue_type": label}}


def _after(text: str, marker: str) -> str:
    return text.split(marker, 1)[1].split(".", 1)[0] if marker in text else ""
