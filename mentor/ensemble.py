"""A system made of several: `mentor eval --models best+embed` averages their label probabilities.

The student and a classical baseline err differently (the baseline trained on the student's own curriculum
may still rate unseen findings better), so their average can beat both. It is always a separately named
system in `--models`, never part of the student's own figures: `best` stays the student alone.

Each member answers the same questions in turn (a member that shares the loaded model with another
switches its adapter first); the label is the argmax of the mean of the members' probabilities (a member
that gives no probabilities counts as certain of its label), and an item's time is the members' sum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from mentor.records import Answer, Example, TrainReport
from mentor.students import StudentError
from mentor.tasks import Task


class Ensemble:
    can_finetune = False
    can_explain = False  # it combines labels; `mentor judge` refuses it

    def __init__(self, members: list[Any]) -> None:  # mentor.targets.Target, each with a labelled task
        if len(members) < 2:
            raise StudentError("a combined system needs at least two members, e.g. best+embed")
        self.members = members
        self.name = "+".join(m.label for m in members)
        fits = [m for m in members if getattr(m.student, "fit_for", None) is not None]
        if fits:  # `:all` baselines must learn which items they are scored on before answering (mentor.compare)
            self.fit_for = lambda task, inputs: " + ".join(
                m.student.fit_for(task, inputs) if m in fits else m.label for m in members)

    def answer(self, task: Task, inputs: list[dict[str, str]], progress: Callable[[int], None] | None = None,
               explain: bool = False) -> list[Answer]:  # labels only: nothing to explain with
        if not task.label_field:
            raise StudentError(f"a combined system averages label probabilities; task {task.name!r} has no label field")
        per_member = []
        for member in self.members:
            member.prepare()
            per_member.append(member.student.answer(task, inputs, explain=False))
        answers = []
        for row in zip(*per_member):
            mean = {label: sum(_probs(task, a).get(label, 0.0) for a in row) / len(row) for label in task.labels}
            label = max(mean, key=mean.get)
            answers.append(Answer(raw=label, parsed={task.label_field: label}, probs=mean,
                                  seconds=sum(a.seconds or 0.0 for a in row)))
        if progress:
            progress(len(inputs))
        return answers

    def finetune(self, task: Task, examples: list[Example], out_dir: Path,
                 progress: Callable[[int], None] | None = None) -> TrainReport:
        raise StudentError(f"{self.name} combines trained systems; it has nothing of its own to fine-tune")

    def use_adapter(self, adapter_dir: Path | None) -> None:
        if adapter_dir is not None:
            raise StudentError(f"{self.name} combines systems; name the adapter as one of its members instead")


def _probs(task: Task, answer: Answer) -> dict[str, float]:
    if answer.probs:
        return answer.probs
    label = (answer.parsed or {}).get(task.label_field)
    return {label: 1.0} if label else {}  # unparseable: no vote
