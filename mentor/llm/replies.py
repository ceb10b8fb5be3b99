"""Reading JSON out of a model's reply: bare, inside code fences, or after free-text thinking.

`json_reply` returns the outermost JSON object that carries the expected key, or raises `ReplyError`
whose message is written for the model: the teacher shows it to the model when it asks again, so it
says what was wrong and what to send instead. (Student answers, which are flat, are parsed by
`Task.parse`; a teacher's reply nests objects, so here the outermost object wins.)
"""

from __future__ import annotations

import json
import re
from typing import Any

# Where a JSON object can start: "{" followed by a key or by "}" (not a brace inside code, "{\n  return").
_OBJECT_START = re.compile(r"\{\s*[\"}]")


class ReplyError(ValueError):
    """A reply that cannot be used; the message tells the model what to fix."""


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object in the text, in order (code fences need no special case: the scan
    finds the object inside them)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    position = 0
    while (match := _OBJECT_START.search(text, position)) is not None:
        try:
            value, end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            position = match.start() + 1
            continue
        if isinstance(value, dict):
            found.append(value)
        position = end  # objects nested inside this one are not top-level
    return found


def json_reply(text: str, key: str, finish_reason: str = "") -> dict[str, Any]:
    """The last top-level object with `key`; ReplyError saying why there is none."""
    objects = json_objects(text)
    with_key = [obj for obj in objects if key in obj]
    if with_key:
        return with_key[-1]
    if finish_reason == "length":
        raise ReplyError("your reply was cut off (the token limit was reached) before the JSON object was complete; "
                         "write fewer or shorter items so that the whole object fits")
    marker = text.rfind(f'"{key}"')
    start = text.rfind("{", 0, marker) if marker >= 0 else -1
    if start < 0:
        if objects:
            raise ReplyError(f'the JSON object in your reply has no "{key}" key')
        raise ReplyError("your reply contains no JSON object")
    # The object that should carry the key is there but does not parse: say where and why.
    body = text[start:]
    try:
        json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as err:
        # A string that never closes, or an error at the very end: the reply stopped mid-object.
        if err.msg.startswith("Unterminated string") or err.pos >= len(body.rstrip().removesuffix("```").rstrip()) - 1:
            raise ReplyError("the JSON in your reply ends before it is complete (truncated)") from None
        raise ReplyError(f"the JSON in your reply is not valid: {err.msg} at line {err.lineno}, column {err.colno}") from None
    raise ReplyError(f'the JSON object in your reply has no "{key}" key at its top level')


def integer_in(value: Any, low: int, high: int) -> int | None:
    """An integer from low to high (7, 7.0 and "7" all count); None for anything else: never guessed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None
