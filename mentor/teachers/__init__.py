"""Teachers: the Teacher protocol and the registry that builds one from a spec string.

A teacher writes exams and grades them (SPEC steps 1 and 3). It never sees the holdout: the loop removes
holdout items from the data source before the teacher gets it and passes `avoid`, the normalised keys
(see `Task.key`) that must not come back in an exam or a curriculum. The loop checks the teacher's output
against the same keys again, so a teacher that ignores `avoid` still cannot contaminate a run.

Specs: "reference" (offline, deterministic, uses the data source's labels as ground truth), "openai:MODEL"
(an LLM behind any OpenAI-compatible server; `record` keeps its raw calls, `cache=` reuses its replies).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from mentor.config import TeacherConfig
from mentor.records import Example, ExamResult, Grade
from mentor.tasks import Task

# Called by teachers that talk to a model, once per request: (purpose, model, request, reply, outcome,
# usage fields). The loop binds it to the store so every raw call is kept.
CallRecorder = Callable[..., None]


class Teacher(Protocol):
    name: str
    # Whether grade() needs labelled data (the reference teacher) or can judge answers itself (an LLM).
    needs_labels: bool

    def write_exam(self, task: Task, source: list[Example], n: int, previous: Grade | None,
                   avoid: set[str], round_no: int) -> list[Example]:
        """N questions with their correct answers, aimed by the previous grade when there is one."""
        ...

    def grade(self, task: Task, results: list[ExamResult], source: list[Example], n_new: int,
              avoid: set[str], round_no: int) -> Grade:
        """Proficiency 1-10, written feedback, and n_new training examples aimed at the weaknesses."""
        ...


class TeacherError(ValueError):
    """A teacher spec that cannot be used."""


def teacher_needs_labels(config: TeacherConfig) -> bool:
    """Whether the teacher's data source must be labelled (read off the class, before any is built)."""
    if config.name == "reference":
        from mentor.teachers.reference import ReferenceTeacher

        return ReferenceTeacher.needs_labels
    if config.name.startswith("openai:"):
        from mentor.teachers.openai import OpenAITeacher

        return OpenAITeacher.needs_labels
    raise TeacherError(f"unknown teacher {config.name!r}: use 'reference' or 'openai:MODEL'")


def make_teacher(config: TeacherConfig, seed: int, record: CallRecorder | None = None, **options: Any) -> Teacher:
    name = config.name
    if name == "reference":
        from mentor.teachers.reference import ReferenceTeacher

        return ReferenceTeacher(seed=seed)
    if name.startswith("openai:"):
        from mentor.teachers.openai import build

        return build(config, seed, record=record, cache=options.get("cache"))
    raise TeacherError(f"unknown teacher {name!r}: use 'reference' or 'openai:MODEL'")
