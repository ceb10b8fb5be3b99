"""The loop teaches: a tiny real model improves on its own round 0, and a round that scores worse is rolled
back so the next round trains from the best adapter. (Plumbing alone is shown elsewhere with fakes.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rich.console import Console

import mentor.runner as runner
from mentor.config import load_config
from mentor.runner import open_store, start_run
from mentor.students.scripted import ScriptedStudent
from mentor.summary import round_table, run_overview
from mentor.tasks import SEVERITY
from tests.conftest import make_examples, write_jsonl
from tests.tiny_model import save_tiny_model

TINY = ["student.dtype=float32", "student.learning_rate=0.02", "student.epochs=3", "student.batch_size=4",
        "student.micro_batch_size=4", "student.threads=1", "student.lora.rank=8", "student.lora.alpha=16"]


@pytest.mark.parametrize("teacher", ["reference:items", "random"])
def test_a_tiny_model_learns_a_learnable_task_and_beats_its_round_0(tmp_path, home, teacher):
    model = save_tiny_model(tmp_path / "tiny")
    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(20, "pool"))
    hold = write_jsonl(tmp_path / "hold.jsonl", make_examples(6, "hold", seed=1))
    config = load_config(overrides=[f"data.pool={pool}", f"data.holdout={hold}", f"student.model={model}",
                                    f"teacher.name={teacher}", "teacher.exam_size=8", "teacher.new_examples=24",
                                    "teacher.probe=16", "loop.rounds=2", "loop.patience=2", *TINY])
    result = start_run(config)
    rounds = open_store().rounds(result["run_id"])
    base, best = rounds[0]["metrics"]["macro_f1"], rounds[result["best_round"]]["metrics"]["macro_f1"]
    assert result["best_round"] > 0
    assert best >= base + 0.3 and best >= 0.6, [r["metrics"]["macro_f1"] for r in rounds]
    # every round records what its figures were computed with, and `mentor show` says it under the table
    isa = torch.backends.cpu.get_cpu_capability()
    assert {r["metrics"]["compute"] for r in rounds} == {f"float32 on cpu ({isa}, {torch.get_num_threads()} threads)"}
    console = Console(record=True, width=300)
    console.print(round_table(run_overview(open_store(), result["run_id"])))
    assert f"the student computed in float32 on cpu ({isa}," in console.export_text()


class _ScheduledStudent:
    """The shipped scripted student, except that on the holdout it is right after rounds 1 and 3 and wrong
    after round 2 (read off the adapter loaded); it records which adapter each fine-tuning started from."""

    name, can_finetune = "scheduled", True

    def __init__(self, holdout_truth: dict[str, str]) -> None:
        self.inner = ScriptedStudent(default="trivial")
        self.truth = holdout_truth
        self.loaded: Path | None = None
        self.started_from: list[str | None] = []
        self.asked_with: list[str | None] = []  # the adapter loaded for each probe or exam

    def use_adapter(self, path):  # noqa: ANN001
        self.loaded = Path(path) if path else None
        self.inner.use_adapter(path)

    def answer(self, task, inputs, progress=None, explain=True):  # noqa: ANN001
        answers = self.inner.answer(task, inputs, progress, explain)
        if not inputs or SEVERITY.key(inputs[0]) not in self.truth:
            self.asked_with.append(self.loaded.name if self.loaded else None)
            return answers
        good = self.loaded is not None and self.loaded.name in ("round-1", "round-3")
        wrong = {label: next(x for x in SEVERITY.labels if x != label) for label in SEVERITY.labels}
        said = [self.truth[SEVERITY.key(i)] if good else wrong[self.truth[SEVERITY.key(i)]] for i in inputs]
        return [type(a)(s, {"issue_type": s}, a.probs) for a, s in zip(answers, said)]

    def finetune(self, task, examples, out_dir, progress=None):  # noqa: ANN001
        self.started_from.append(self.loaded.name if self.loaded else None)
        report = self.inner.finetune(task, examples, out_dir, progress)
        self.loaded = Path(out_dir)
        return report


def _scheduled_run(tmp_path, monkeypatch, pool_size: int, *overrides: str) -> tuple[dict, _ScheduledStudent]:  # noqa: ANN001
    """Three rounds with the scheduled student (round 2 worse than round 1) on a fresh pool."""
    holdout = make_examples(4, "hold", seed=1)
    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(pool_size, "pool"))
    hold = write_jsonl(tmp_path / "hold.jsonl", holdout)
    student = _ScheduledStudent({SEVERITY.key(e.input): e.output["issue_type"] for e in holdout})
    monkeypatch.setattr(runner, "make_student", lambda config, seed: student)
    config = load_config(overrides=[f"data.pool={pool}", f"data.holdout={hold}", "loop.rounds=3", "loop.patience=3",
                                    *overrides])
    return start_run(config), student


def test_a_worse_round_is_rolled_back_and_the_next_round_starts_from_the_best_adapter(tmp_path, home, monkeypatch):
    result, student = _scheduled_run(tmp_path, monkeypatch, 20, "teacher.exam_size=8", "teacher.new_examples=8",
                                     "teacher.probe=8")
    scores = [r["metrics"]["macro_f1"] for r in open_store().rounds(result["run_id"])]
    assert scores[1] == 1.0 and scores[2] == 0.0  # round 2 is worse than round 1...
    assert student.started_from == [None, "round-1", "round-1"]  # ...so round 3 trains from round 1's adapter
    assert result["best_round"] == 1  # round 3 only ties round 1


def test_without_warm_start_each_round_trains_a_fresh_adapter_on_the_whole_curriculum(tmp_path, home, monkeypatch):
    result, student = _scheduled_run(tmp_path, monkeypatch, 40, "teacher.exam_size=4", "teacher.new_examples=6",
                                     "loop.replay=0.5", "loop.warm_start=false")
    store = open_store()
    assert student.started_from == [None, None, None]
    trained = [{SEVERITY.key(e.input) for e in examples} for examples in student.inner.trained]
    so_far = [{SEVERITY.key(e.input) for e in store.curriculum(result["run_id"]) if e.meta["round"] <= n} for n in (1, 2, 3)]
    assert trained == so_far and len(so_far[2]) > len(so_far[1]) > len(so_far[0]) > 0  # replay is ignored: everything
    # The teacher still examined the best student: round 3's exam was taken with round 1's adapter (round 2 was worse).
    assert student.asked_with[-1] == "round-1" and result["best_round"] == 1
