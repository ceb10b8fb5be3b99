"""Teachers: the Teacher protocol and the registry that builds one from a spec string.

A teacher writes exams and grades them (steps 1 and 3 of the loop). It never sees the holdout: the loop removes
holdout items from the data source before the teacher gets it and passes `avoid`, the normalised keys
(see `Task.key`) that must not come back in an exam or a curriculum. The loop checks the teacher's output
against the same keys again, so a teacher that ignores `avoid` still cannot contaminate a run.

A teacher that wants to see more of the student than its exam sets `probe_size`: before each exam the loop
scores that many unseen pool items with the current student (the `probe` step) and passes the results to
`write_exam` and `grade` as `probed`, so the teacher can aim at the items the student gets wrong or is
least sure of.

Specs: "reference" (offline, deterministic, uses the data source's labels as ground truth, aims at the
labels the student misses), its item-level variants (mentor.teachers.targeting): "reference:items" (the
student's margin on probed items and nearness to the exam's mistakes), "reference:margin" and
"reference:nearest" (one signal each), "reference:natural" (both signals, labels in the data source's own
proportions), "reference:natural-margin" and "reference:natural-nearest" (one signal each, natural
proportions), "reference:tempered" (both signals, labels in proportion to the square root of the data source's
counts), "reference:natural-typical" (as natural, but the first round's new items are the most typical
of their label, a cold start for the untuned student), "reference:natural-consistent" (as natural, but items
whose nearest pool items mostly carry another label are not targeted); "random" (the control: uniform draws, ignores the grade); "openai:MODEL" (an LLM behind any
OpenAI-compatible server; `record` keeps its raw calls, `cache=` reuses its replies).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

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
    # Unseen pool items the loop scores with the current student before each exam (0 = none).
    probe_size: int

    def write_exam(self, task: Task, source: list[Example], n: int, previous: Grade | None,
                   avoid: set[str], round_no: int, probed: Sequence[ExamResult] = ()) -> list[Example]:
        """N questions with their correct answers, aimed by the previous grade when there is one."""
        ...

    def grade(self, task: Task, results: list[ExamResult], source: list[Example], n_new: int,
              avoid: set[str], round_no: int, probed: Sequence[ExamResult] = ()) -> Grade:
        """Proficiency 1-10, written feedback, and n_new training examples aimed at the weaknesses."""
        ...


class TeacherError(ValueError):
    """A teacher spec that cannot be used."""


REFERENCE_VARIANTS = {  # name -> (the item-level signals it uses, how it splits exams and curricula across labels)
    "reference": ((), "weakness"),
    "reference:items": (("margin", "nearest"), "weakness"),
    "reference:margin": (("margin",), "weakness"),
    "reference:nearest": (("nearest",), "weakness"),
    "reference:natural": (("margin", "nearest"), "source"),
    "reference:natural-margin": (("margin",), "source"),
    "reference:natural-nearest": (("nearest",), "source"),
    "reference:tempered": (("margin", "nearest"), "tempered"),
    "reference:natural-typical": (("margin", "nearest", "typical"), "source"),
    "reference:natural-consistent": (("margin", "nearest", "consistent"), "source"),
}
OFFLINE = (*REFERENCE_VARIANTS, "random")


def _unknown(name: str) -> TeacherError:
    return TeacherError(f"unknown teacher {name!r} (teacher.name, --teacher): use {', '.join(OFFLINE)} or 'openai:MODEL'")


def teacher_needs_labels(config: TeacherConfig) -> bool:
    """Whether the teacher's data source must be labelled (read off the class, before any is built)."""
    if config.name in OFFLINE:
        return True
    if config.name.startswith("openai:"):
        from mentor.teachers.openai import OpenAITeacher

        return OpenAITeacher.needs_labels
    raise _unknown(config.name)


def unused_settings(name: str) -> set[str]:
    """The `teacher.*` settings (probe, explore, variants) that the named teacher never reads, so that two runs
    differing only in them did the same thing (a study's random control with `teacher.probe` overridden, say)."""
    if name in REFERENCE_VARIANTS:
        signals = REFERENCE_VARIANTS[name][0]
        return ({"probe"} if "margin" not in signals else set()) | ({"explore"} if not signals else set())
    return {"probe", "explore", "variants"} if name == "random" or name.startswith("openai:") else set()


def make_teacher(config: TeacherConfig, seed: int, record: CallRecorder | None = None, **options: Any) -> Teacher:
    name = config.name
    if name in REFERENCE_VARIANTS:
        from mentor.teachers.reference import ReferenceTeacher

        signals, label_quota = REFERENCE_VARIANTS[name]
        return ReferenceTeacher(seed=seed, signals=signals, probe_size=config.probe if "margin" in signals else 0,
                                explore=config.explore, label_quota=label_quota, name=name, variants=config.variants)
    if name == "random":
        from mentor.teachers.random import RandomTeacher

        return RandomTeacher(seed=seed)
    if name.startswith("openai:"):
        from mentor.teachers.openai import build

        return build(config, seed, record=record, cache=options.get("cache"))
    raise _unknown(name)
