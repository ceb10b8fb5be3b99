"""The random teacher: the control every targeting teacher is measured against (`--teacher random`).

Exams and curricula are uniform draws from the same data source, with the same counts, vetting and
holdout exclusion as any teacher; the grade is written down (proficiency and feedback, as the reference
teacher reports them) but never used to choose anything. "Fine-tune on N random pool items" is what the
loop has to beat, and this is that, recorded like any run.
"""

from __future__ import annotations

import random
from typing import Sequence

from mentor.records import Example, ExamResult, Grade
from mentor.tasks import Task
from mentor.teachers.reference import assess


class RandomTeacher:
    name = "random"
    needs_labels = True  # it grades against the data source's labels, like the reference teacher
    probe_size = 0

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _rng(self, purpose: str, round_no: int) -> random.Random:
        return random.Random(f"{self.seed}:random-{purpose}:{round_no}")

    def write_exam(self, task: Task, source: list[Example], n: int, previous: Grade | None,
                   avoid: set[str], round_no: int, probed: Sequence[ExamResult] = ()) -> list[Example]:
        fresh = [e for e in source if task.key(e.input) not in avoid]
        return self._rng("exam", round_no).sample(fresh, min(n, len(fresh)))

    def grade(self, task: Task, results: list[ExamResult], source: list[Example], n_new: int,
              avoid: set[str], round_no: int, probed: Sequence[ExamResult] = ()) -> Grade:
        fresh = [e for e in source if task.key(e.input) not in avoid]
        drawn = self._rng("curriculum", round_no).sample(fresh, min(n_new, len(fresh)))
        dataset = [Example(e.input, e.output, source=f"teacher:{e.source or 'pool'}", meta=e.meta) for e in drawn]
        if not results:
            return Grade(1, "No exam questions were answered, so there is nothing to grade.", dataset, {})
        proficiency, feedback, detail = assess(task, results, source)
        detail.pop("weights")  # nothing downstream may aim by them
        return Grade(proficiency, feedback, dataset, {**detail, "targeting": {"signals": [], "random": True}})
