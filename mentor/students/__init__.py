"""Students: the Student protocol and the registry that turns a spec string into a backend.

A student answers questions and learns from examples. Backends say what they can do with attributes
(`can_finetune`), never by class checks. Specs: "hf:<dir or hub id>" or "bundled" (transformers + PEFT,
the only place torch is imported, loaded lazily), "scripted" (a fake that ships, for tests and dry runs),
"openai:MODEL" (a model behind an OpenAI-compatible server: answers only, see students/remote.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from mentor.config import StudentConfig
from mentor.records import Answer, Example, TrainReport
from mentor.tasks import Task


class Student(Protocol):
    name: str
    can_finetune: bool

    def answer(self, task: Task, inputs: list[dict[str, str]], progress: Callable[[int], None] | None = None,
               explain: bool = True) -> list[Answer]:
        """Answer each question (categorical labels by scoring, free text by generation).

        explain=False: the label only, no free text generated (`parsed` holds just the label field). Scoring a
        holdout, a probe or a calibration set needs no more, and generation costs far more than scoring.
        """
        ...

    def finetune(self, task: Task, examples: list[Example], out_dir: Path, progress: Callable[[int], None] | None = None) -> TrainReport:
        """LoRA-train the current adapter on the examples, save it to out_dir, keep it loaded."""
        ...

    def use_adapter(self, adapter_dir: Path | None) -> None:
        """Load a saved adapter (None: the untuned base model) for the following calls."""
        ...


class StudentError(ValueError):
    """A student spec that cannot be used."""


def make_student(config: StudentConfig, seed: int) -> Student:
    """'scripted' -> the shipped fake; anything else -> transformers + PEFT (imported only now)."""
    if config.model.startswith("openai:"):
        from mentor.students.remote import build

        return build(config.model, config.max_new_tokens)
    if config.model == "scripted":
        from mentor.students.scripted import ScriptedStudent

        return ScriptedStudent()
    from mentor.students.hf import HFStudent

    return HFStudent(config.model, config, seed)
