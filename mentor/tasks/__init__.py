"""Tasks: the registry of built-ins and the loader for tasks defined in a TOML file.

`get_task("severity")` returns a built-in; `get_task("path/to/task.toml")` reads a user's task, whose keys
are the fields of `Task` (name, description, input_fields, output_fields, student_prompt, and optionally
label_field, labels, max_input_chars, context_fields). Unknown keys are errors, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from mentor.tasks.base import Task, normalise_text
from mentor.tasks.severity import EXPLAIN, SEVERITY, SEVERITY_LABELS

TASKS: dict[str, Task] = {}


def register_task(task: Task) -> None:
    TASKS[task.name] = task


register_task(SEVERITY)
register_task(EXPLAIN)


class TaskError(ValueError):
    """A task name or task file that cannot be used; the message says how to fix it."""


def get_task(name_or_path: str) -> Task:
    if name_or_path in TASKS:
        return TASKS[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_task_file(path)
    raise TaskError(f"unknown task {name_or_path!r}: use one of {', '.join(sorted(TASKS))} or a .toml task file")


def load_task_file(path: Path) -> Task:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskError(f"{path}: task file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise TaskError(f"{path}: not valid TOML: {err}") from None
    allowed = {f.name for f in dataclasses.fields(Task)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise TaskError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    missing = [k for k in ("name", "description", "input_fields", "output_fields", "student_prompt") if k not in data]
    if missing:
        raise TaskError(f"{path}: missing key(s) {', '.join(missing)}")
    for key in ("input_fields", "output_fields", "labels", "context_fields"):
        if key in data:
            if not isinstance(data[key], list) or not all(isinstance(v, str) and v for v in data[key]):
                raise TaskError(f"{path}: '{key}' must be a list of non-empty strings")
            data[key] = tuple(data[key])
    try:
        return Task(**data)
    except (TypeError, ValueError) as err:
        raise TaskError(f"{path}: {err}") from None


__all__ = ["Task", "TaskError", "TASKS", "get_task", "load_task_file", "register_task", "normalise_text",
           "SEVERITY", "EXPLAIN", "SEVERITY_LABELS"]
