"""Which model `mentor eval` scores: a run's best adapter, a given adapter directory, or the base model.

The task and the student's base model come from the run's saved config when there is a run, so an
adapter is always scored on the base model and prompt format it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mentor.config import RunConfig, StudentConfig, from_dict
from mentor.runner import open_store
from mentor.store import StoreError
from mentor.students import Student, make_student
from mentor.tasks import Task, get_task


@dataclass
class Target:
    label: str
    task: Task
    student: Student


def resolve_target(home: str | None, run_ref: str, adapter: Path | None, base: bool,
                   task: str | None = None, student: str | None = None) -> Target:
    store = open_store(home)
    config, run_id = RunConfig(), None
    try:
        run_id = store.latest_run_id() if run_ref == "latest" else int(run_ref)
        config = from_dict(RunConfig, store.run(run_id)["config"])
    except StoreError:
        if not (adapter or base):
            raise
    except ValueError:
        raise StoreError(f"--run must be a number or 'latest', got {run_ref!r}") from None
    student_config = config.student if student is None else StudentConfig(**{**config.student.__dict__, "model": student})
    chosen_task = get_task(task or config.task)
    model = make_student(student_config, config.seed)
    if adapter is not None:
        if not Path(adapter).is_dir():
            raise FileNotFoundError(f"--adapter {adapter}: no such adapter directory")
        model.use_adapter(Path(adapter))
        return Target(f"adapter {adapter}", chosen_task, model)
    if base:
        model.use_adapter(None)
        return Target(f"base {student_config.model}", chosen_task, model)
    run = store.run(run_id)
    best = run["best_round"]
    if best is None:
        raise StoreError(f"run {run_id} has no best round yet (status {run['status']}); resume it or pass --adapter")
    path = store.rounds(run_id)[best]["adapter"] if best else None
    model.use_adapter(Path(path) if path else None)
    return Target(f"run {run_id} best (round {best})", chosen_task, model)
