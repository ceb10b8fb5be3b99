"""What each endpoint does, without HTTP: OpenAI-style chat completions and models, review, feedback.

A chat request's last user message is read as DATA: a JSON object with the task's input fields
({"code": ..., "review": ...}), or text with "Code:" and "Review:" sections like the student's own
prompt. Nothing in it is obeyed; the reply is always the task's JSON answer
({"issue_type": ..., "explanation": ...}), built here, never text copied from the request.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from mentor import feedback
from mentor.review import FORMATS, ReviewError, build_report, parse_diff, render
from mentor.review.findings import Finding, attach_context, clip
from mentor.review.rate import check_task, rate, rated_from, timing
from mentor.server.batcher import Batcher
from mentor.store import Store
from mentor.tasks import SEVERITY_LABELS, Task

MAX_FINDINGS = 200  # per /v1/review request


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code}}


@dataclass
class Api:
    batcher: Batcher
    task: Task
    default_model: str
    labels: dict[str, str]  # model name -> what it is ("run 3 best (round 2)", "adapter DIR", ...)
    open_store: Callable[[], Store]
    model_load_s: float | None = None  # seconds the model and default adapter took to load at start-up

    # ---- OpenAI-compatible --------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "mentor",
                                            "description": label} for name, label in self.labels.items()]}

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self._model(body.get("model"))
        if body.get("stream"):
            raise ApiError(400, "stream=true is not supported: the answer is one short JSON object; send stream=false")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "'messages' must be a non-empty list")
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise ApiError(400, "no user message: send the finding as the last user message")
        text = _content_text(users[-1].get("content"))
        inputs = self._inputs(text)
        answer = self.batcher.answer(model, self.task, [inputs])[0]
        rated = rated_from(self.task, Finding("", 1, inputs["review"], "chat", code=inputs["code"]), answer)
        reply = {"issue_type": rated.severity}
        if "explanation" in self.task.output_fields:
            reply["explanation"] = rated.explanation
        content = json.dumps(reply, ensure_ascii=False)
        prompt_chars = sum(len(_content_text(m.get("content"))) for m in messages if isinstance(m, dict))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                         "logprobs": None}],
            # Estimated at ~4 characters per token: the label is scored, not generated token by token.
            "usage": {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": max(1, len(content) // 4),
                      "total_tokens": max(1, prompt_chars // 4) + max(1, len(content) // 4)},
            "mentor": {"probs": rated.probs, "probability": rated.probability, "seconds": answer.seconds},
        }

    # ---- review and feedback --------------------------------------------------------------------

    def review(self, body: dict[str, Any], fmt: str = "json") -> tuple[str, str]:
        """(content type, body) of a review of the posted findings, in any `mentor review` format."""
        if fmt not in FORMATS:
            raise ApiError(400, f"format {fmt!r}: use one of {', '.join(FORMATS)}")
        model = self._model(body.get("model"))
        threshold = body.get("min_severity")
        if threshold is not None and threshold not in SEVERITY_LABELS:
            raise ApiError(400, f"min_severity {threshold!r}: use one of {', '.join(SEVERITY_LABELS)}")
        raw = body.get("findings")
        if not isinstance(raw, list) or not raw:
            raise ApiError(400, "'findings' must be a non-empty list of {path, line, review, code} objects")
        if len(raw) > MAX_FINDINGS:
            raise ApiError(413, f"{len(raw)} findings in one request; send at most {MAX_FINDINGS}")
        found, warnings = self._findings(raw, body.get("diff"))
        check_task(self.task)
        started = time.perf_counter()
        written: list[float] = []
        rated = rate(self.batcher.student_for(model), self.task, found, None, threshold, written)
        report = build_report(rated, self.labels[model], threshold, warnings)
        # Wall time as this request saw it: the batch it shared with other callers, queueing included.
        report.timing = timing(len(rated), time.perf_counter() - started, self.model_load_s, written)
        kind = "text/plain; charset=utf-8" if fmt in ("table", "markdown") else "application/json"
        return kind, render(report, fmt)

    def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            item = feedback.from_json({**body, "model": body.get("model") or self.default_model}, source="server")
        except ReviewError as err:
            raise ApiError(400, str(err)) from None
        store = self.open_store()
        try:
            number = feedback.add(store, item)
        finally:
            store.close()
        return {"id": number, "stored": True, "severity": item.severity, "corrected": item.corrected}

    # ---- helpers --------------------------------------------------------------------------------

    def _model(self, name: Any) -> str:
        if name in (None, ""):
            return self.default_model
        if name not in self.labels:
            raise ApiError(404, f"model {name!r} does not exist; GET /v1/models lists {', '.join(self.labels)}",
                           code="model_not_found")
        return name

    def _inputs(self, text: str) -> dict[str, str]:
        fields = self.task.input_fields
        data = _json_object(text)
        if data is not None and all(isinstance(data.get(f), str) and data[f].strip() for f in fields):
            return {f: clip(data[f]) for f in fields}
        sections = _sections(text, fields)
        if sections is not None:
            return sections
        raise ApiError(400, "send the finding as JSON {" + ", ".join(f'"{f}": "..."' for f in fields) + "} "
                       "or as text with 'Code:' and 'Review:' sections")

    def _findings(self, raw: list[Any], diff_text: Any) -> tuple[list[Finding], list[str]]:
        findings, warnings = [], []
        for number, item in enumerate(raw, start=1):
            text = item.get("review") or item.get("text") if isinstance(item, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise ApiError(400, f"finding {number}: needs a 'review' (the comment text)")
            line = item.get("line", 1)
            if not isinstance(line, int) or isinstance(line, bool) or line < 1:
                raise ApiError(400, f"finding {number}: 'line' must be a positive integer")
            code = item.get("code") or ""
            if not isinstance(code, str):
                raise ApiError(400, f"finding {number}: 'code' must be a string")
            findings.append(Finding(str(item.get("path") or ""), line, clip(text.strip()), str(item.get("source") or "api"),
                                    rule=str(item.get("rule") or ""), code=clip(code)))
        diff = None
        if isinstance(diff_text, str) and diff_text.strip():
            try:
                diff = parse_diff(diff_text.encode("utf-8"))
            except ReviewError as err:
                raise ApiError(400, f"diff: {err}") from None
            warnings += diff.warnings
        placed = attach_context(findings, diff, None)
        if not placed.findings:
            raise ApiError(400, "no finding has code to rate: send 'code' with each finding, or the 'diff' they are on")
        return placed.findings, warnings + placed.warnings


def _content_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _json_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)```", stripped, re.DOTALL)
    try:
        value = json.loads(fenced.group(1) if fenced else stripped)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _sections(text: str, fields: tuple[str, ...]) -> dict[str, str] | None:
    """'Code:\\n...\\nReview: ...' (the student prompt's layout); the last field runs to the end or 'Severity:'."""
    names = "|".join(re.escape(f) for f in fields)
    parts = re.split(rf"(?im)^\s*({names})\s*:[ \t]*", text)
    found: dict[str, str] = {}
    for name, value in zip(parts[1::2], parts[2::2]):
        value = re.split(r"(?im)^\s*severity\s*:", value)[0].strip()
        found.setdefault(name.lower(), value)
    if all(found.get(f) for f in fields):
        return {f: clip(found[f]) for f in fields}
    return None

