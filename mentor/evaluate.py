"""Scoring a student on labelled examples: the holdout step of the loop and `mentor eval` share this.

Also draws the stratified holdout sample the loop scores each round when `data.holdout_limit` is set.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Callable

from mentor.metrics import classification_report, exact_report
from mentor.records import Answer, Example
from mentor.tasks import Task


def score(student: Any, task: Task, examples: list[Example], progress: Callable[[int], None] | None = None,
          explain: bool = False) -> tuple[list[Answer], list[bool], dict[str, Any]]:
    """The student's answers, whether each is correct, and the metrics report (labels only unless `explain`)."""
    answers = student.answer(task, [e.input for e in examples], progress, explain=explain)
    correct = [task.is_correct(a.parsed, e.output) for a, e in zip(answers, examples)]
    return answers, correct, report(task, examples, answers, correct)


def report(task: Task, examples: list[Example], answers: list[Answer], correct: list[bool]) -> dict[str, Any]:
    unparseable = sum(1 for a in answers if a.parsed is None)
    if task.label_field is None:
        return exact_report(correct, unparseable)
    truths = [e.output[task.label_field] for e in examples]
    predictions = [a.parsed.get(task.label_field) if a.parsed else None for a in answers]
    return classification_report(task.labels, truths, predictions)


def stratified_sample(task: Task, examples: list[Example], limit: int, seed: int) -> list[Example]:
    """At most `limit` examples keeping the label mix (all of them when limit is 0 or larger)."""
    if limit <= 0 or limit >= len(examples):
        return examples
    rng = random.Random(f"{seed}:holdout")
    if task.label_field is None:
        return rng.sample(examples, limit)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        groups[e.output[task.label_field]].append(i)
    chosen: list[int] = []
    for label, idx in sorted(groups.items()):
        chosen += rng.sample(idx, max(1, round(limit * len(idx) / len(examples))))
    return [examples[i] for i in sorted(chosen)[:limit]]
