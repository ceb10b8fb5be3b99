"""A student served behind an OpenAI-compatible API (`openai:MODEL`): answers through `ChatClient`.

Use it to measure any hosted model on a task (`mentor eval --student openai:gpt-4o-mini --base`), or a
mentor-trained adapter served by vLLM or NIM (`vllm serve BASE --enable-lora --lora-modules mine=DIR`, then
`--student openai:mine`). It reads the task definition and the student prompt, and is asked for the output
fields as JSON (schema-constrained where the server supports it, so a label is always one of the set); the
reply is parsed by `Task.parse`, and an unparseable one is counted like any student's. It cannot be
fine-tuned here: mentor's adapters are trained by the hf student and then served.

Its address and key: $MENTOR_STUDENT_BASE_URL / $MENTOR_STUDENT_API_KEY when the student lives on another
server than the teacher, else the teacher's variables (see `mentor.llm.client.client_from_spec`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

from mentor.llm import ChatClient, client_from_spec
from mentor.records import Answer, Example, TrainReport, Usage
from mentor.tasks import Task


class RemoteStudent:
    can_finetune = False

    def __init__(self, client: ChatClient, max_tokens: int = 256) -> None:
        self.client, self.max_tokens = client, max_tokens
        self.name = f"openai:{client.model}"
        self.usage = Usage()  # what its calls have cost so far (`mentor eval` reports cost per 1,000 items)
        self._lock = threading.Lock()

    def answer(self, task: Task, inputs: list[dict[str, str]], progress: Callable[[int], None] | None = None,
               explain: bool = True) -> list[Answer]:
        # explain is ignored: a hosted model answers every field in one JSON reply, whose cost the server sets.
        system = (task.description + "\nReply with one JSON object with the fields: "
                  + ", ".join(f"{f} (one of {', '.join(task.labels)})" if f == task.label_field else f
                              for f in task.output_fields) + ".")
        schema = _schema(task)

        def ask(item: dict[str, str]) -> Answer:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": task.prompt(item)}]
            reply = self.client.complete(messages, purpose="student", json_schema=schema, temperature=0.0,
                                         max_tokens=self.max_tokens)
            with self._lock:
                u = self.usage
                self.usage = Usage(u.tokens_in + reply.tokens_in, u.tokens_out + reply.tokens_out, u.cost + reply.cost,
                                   u.seconds + reply.seconds)
            if progress:
                progress(1)
            return Answer(raw=reply.text, parsed=task.parse(reply.text), seconds=reply.seconds)

        return self.client.map(ask, inputs)

    def finetune(self, task: Task, examples: list[Example], out_dir: Path, progress: Callable[[int], None] | None = None) -> TrainReport:
        from mentor.students import StudentError

        raise StudentError(f"{self.name} answers through a server and cannot be fine-tuned by mentor; train with an "
                           "hf student (student.model=bundled or a model dir), serve the adapter, then measure it "
                           "with `mentor eval --student openai:NAME --base`")

    def use_adapter(self, adapter_dir: Path | None) -> None:
        if adapter_dir is not None:
            from mentor.students import StudentError

            raise StudentError(f"{self.name} cannot load {adapter_dir}: serve it with your server instead "
                               "(vLLM: --enable-lora --lora-modules NAME=DIR) and use --student openai:NAME --base")


def build(spec: str, max_new_tokens: int) -> RemoteStudent:
    own_server = os.environ.get("MENTOR_STUDENT_BASE_URL")
    # A student on its own server gets only its own key: the teacher's key never goes to another host.
    where = {"base_url": own_server, "api_key": os.environ.get("MENTOR_STUDENT_API_KEY", "")} if own_server else {}
    client = client_from_spec(spec, **where)
    return RemoteStudent(client, max_tokens=max(256, 2 * max_new_tokens))


def _schema(task: Task) -> dict[str, Any]:
    properties = {f: ({"type": "string", "enum": list(task.labels)} if f == task.label_field else {"type": "string"})
                  for f in task.output_fields}
    return {"type": "object", "properties": properties, "required": list(task.output_fields)}
