"""The plain records that flow through the loop: examples, student answers, grades, training reports.

Everything here is a frozen dataclass with JSON-friendly fields, so the store can save and reload
any of them without custom code, and the teacher and student backends share one vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One labelled item of a task: the question's input fields and the correct output fields.

    `source` says where it came from ("pool", "holdout", "teacher", "feedback", a file name...);
    `meta` carries the record's extra top-level keys (such as "meta"): kept, written back, never trained on.
    """

    input: dict[str, str]
    output: dict[str, str]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, **self.meta}


@dataclass(frozen=True)
class Answer:
    """A student's answer to one question.

    `parsed` is None when the raw output could not be parsed (a recorded outcome, never an
    exception). `probs` holds the per-label probabilities when the label was chosen by scoring.
    """

    raw: str
    parsed: dict[str, str] | None
    probs: dict[str, float] | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class ExamResult:
    """A question, the correct answer and what the student said: what the teacher grades."""

    question: Example
    answer: Answer
    correct: bool


@dataclass(frozen=True)
class Grade:
    """The teacher's verdict on one exam.

    `dataset` holds the new training examples the teacher wrote for the student's weaknesses.
    `detail` is optional structured evidence (the reference teacher puts its confusion counts there,
    and uses them to aim the next exam); an LLM teacher may leave it empty.
    """

    proficiency: int
    feedback: str
    dataset: list[Example]
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainReport:
    """What one fine-tuning step produced."""

    adapter_dir: str
    examples: int
    steps: int
    final_loss: float | None
    seconds: float


@dataclass(frozen=True)
class Usage:
    """Resources a teacher spent on one call (all zero for the offline reference teacher)."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    seconds: float = 0.0
