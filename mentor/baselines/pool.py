"""The `:all` baselines (`tfidf:all`, `embed:all`, `majority:all`): what the run's whole labelled data source
could give a classical model without any loop.

A `PoolBaseline` holds the run's data source (holdout items already removed, as for the run itself) and is
fitted only when it learns what it will be scored on (`fit_for`, which `mentor.compare` calls before timing a
system): every data-source item that shares the normalised value of an input field with an evaluated item
(the same review on other code, the same code with another review: the near-twins the calibration split
also keeps apart) is left out of the fit. It refuses to answer items it was not fitted for, so it can never
be scored on something near what it learned from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from mentor.baselines.classifier import BaselineStudent, train
from mentor.baselines.embed import CachedEncoder
from mentor.records import Answer, Example, TrainReport
from mentor.students import StudentError
from mentor.tasks import Task
from mentor.tasks.base import normalise_text


class PoolBaseline:
    can_finetune = False
    can_explain = False

    def __init__(self, kind: str, task: Task, pool: list[Example], seed: int = 0, encoder: CachedEncoder | None = None,
                 where: str = "the data source") -> None:
        if task.label_field is None:
            raise StudentError(f"task {task.name!r} has no label field: the {kind}:all baseline only predicts labels")
        self.labelled = [e for e in pool if task.label_field in e.output]
        if not self.labelled:
            raise StudentError(f"{kind}:all trains on {where}, and none of its {len(pool)} item(s) has a "
                               f"{task.label_field!r}: use {kind} (the run's curriculum) instead")
        self.name = f"{kind}:all"
        self.kind, self.task, self.seed, self.encoder, self.where = kind, task, seed, encoder, where
        self.fitted: BaselineStudent | None = None
        self._allowed: set[str] = set()
        self.training: dict[str, Any] | None = None

    def fit_for(self, task: Task, inputs: list[dict[str, str]]) -> str:
        """Fit on the data source less the near-twins of `inputs`; returns the system's label saying so."""
        kept, left_out = leave_out_near(self.labelled, task, inputs)
        self.fitted = train(self.kind, task, kept, self.seed, self.encoder)
        self._allowed = {task.key(item) for item in inputs}
        self.training = {**self.fitted.training, "source": self.where, "left_out_near_evaluated": left_out}
        return f"{self.name} ({len(kept)} ex. of {self.where}, {left_out} near evaluated items left out)"

    def answer(self, task: Task, inputs: list[dict[str, str]], progress: Callable[[int], None] | None = None,
               explain: bool = False) -> list[Answer]:  # labels only: nothing to explain with
        if self.fitted is None:
            raise StudentError(f"{self.name} is fitted for the items it is scored on: call fit_for(task, inputs) first")
        unseen = sum(1 for item in inputs if task.key(item) not in self._allowed)
        if unseen:
            raise StudentError(f"{self.name} was fitted leaving out the near-twins of other items; {unseen} of these "
                               "were not among them: fit_for these inputs first")
        return self.fitted.answer(task, inputs, progress)

    def finetune(self, task: Task, examples: list[Example], out_dir: Path,
                 progress: Callable[[int], None] | None = None) -> TrainReport:
        raise StudentError(f"the {self.name} baseline is fitted by fit_for(); it has no adapters to fine-tune")

    def use_adapter(self, adapter_dir: Path | None) -> None:
        if adapter_dir is not None:
            raise StudentError(f"the {self.name} baseline has no adapters")


def leave_out_near(examples: list[Example], task: Task, inputs: list[dict[str, str]]) -> tuple[list[Example], int]:
    """(the examples sharing no normalised input-field value with any of `inputs`, how many were left out)."""
    taken = {(name, normalise_text(str(item.get(name, "")))) for item in inputs for name in task.input_fields}
    taken = {(name, value) for name, value in taken if value}
    kept = [e for e in examples
            if not any((name, normalise_text(str(e.input.get(name, "")))) in taken for name in task.input_fields)]
    return kept, len(examples) - len(kept)
