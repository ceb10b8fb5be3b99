"""Starting and resuming runs: everything is read and checked before the store gets a row.

`start_run` resolves the config, loads the task, the pool and the holdout (a bad file stops here with
every problem listed, and nothing is written), removes holdout items from the pool (counted), records the
run with its resolved config, and hands over to the loop. `resume_run` rebuilds the same inputs from the
config saved with the run, so a resumed run is the run that started.
"""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

from mentor import console, feedback
from mentor.calibration import split_off
from mentor.config import (AUTO_MIN_POOL, AUTO_RECIPE, DEMO_RECIPE, DEMO_TASK, ConfigError, RunConfig, load_config,
                           stored_config, to_dict)
from mentor.data import bundled_path, dedupe, load_examples, split_against
from mentor.evaluate import stratified_sample
from mentor.llm.storage import StoreCalls
from mentor.loop import RunInputs, run_loop
from mentor.store import Store, StoreError
from mentor.students import make_student
from mentor.tasks import Task, get_task
from mentor.teachers import make_teacher, teacher_needs_labels


# The holdout sample does not depend on the run's seed: runs with different seeds are scored on the same items,
# so a study can pair them item by item.
HOLDOUT_SEED = 0


def home_dir(home: str | Path | None = None) -> Path:
    """--home, else $MENTOR_HOME, else ./.mentor."""
    return Path(home or os.environ.get("MENTOR_HOME") or ".mentor")


def open_store(home: str | Path | None = None, create: bool = False) -> Store:
    """The store under `home`. Only commands that record something create it (`create=True`): a command that
    only reads, pointed at the wrong folder, says so instead of leaving an empty store behind."""
    path = home_dir(home) / "mentor.db"
    if not create and not path.is_file():
        raise StoreError(f"no mentor store at {path}: nothing has run here yet. Start with `mentor run`, or point "
                         f"--home (or MENTOR_HOME) at the folder that holds mentor.db")
    return Store(path)


def configure(path: str | Path | None, overrides: list[str], home: str | Path | None = None) -> RunConfig:
    """`load_config`, with recipe=auto settled by the data source's size (the run records what was chosen)."""
    config = load_config(path, overrides)
    if config.recipe != "auto":
        return config
    pool, _, _ = _load_data(config, get_task(config.task), home)
    if len(pool) >= AUTO_MIN_POOL:
        chosen = AUTO_RECIPE
    elif not config.data.pool and config.task == DEMO_TASK:
        chosen = DEMO_RECIPE  # the bundled seed data, as `make demo` trains on it
    else:
        chosen = "none"
    if chosen != "none":
        source = "the bundled seed data" if chosen == DEMO_RECIPE else f"data source of {len(pool)} items"
        console.log(f"{source}: recipe {chosen} (mentor/recipes/{chosen}.toml) under your settings; recipe=none "
                    f"keeps the plain defaults")
    return load_config(path, [*overrides, f"recipe={chosen}"])


def start_run(config: RunConfig, home: str | Path | None = None,
              on_create: Callable[[Store, int], None] | None = None) -> dict[str, Any]:
    """`on_create(store, run_id)` writes in the transaction that records the run (a study tags its runs so)."""
    task = get_task(config.task)
    pool, holdout, stats = _load_data(config, task, home)
    pool, calibration_set, calibration_stats = _calibration_split(config, task, pool)
    store = open_store(home, create=True)
    try:
        with store.transaction():
            run_id = store.create_run(task.name, to_dict(config))
            if on_create:
                on_create(store, run_id)
            store.update_round(run_id, 0, stats={"pool": len(pool), "holdout": len(holdout),
                                                 "pool_excluded_as_holdout": stats["pool_in_holdout"], **calibration_stats})
        console.log(f"run {run_id}: task {task.name}, pool {len(pool)} items "
                    f"({stats['pool_in_holdout']} excluded as holdout duplicates), holdout {len(holdout)}, "
                    f"teacher {config.teacher.name}, student {config.student.model}")
        if calibration_stats:
            twins = calibration_stats["pool_excluded_as_calibration_twins"]
            console.log(f"  calibration set: {len(calibration_set)} pool items set aside, items sharing a code or review "
                        f"kept together" + (f" ({twins} more withheld to fit the size)" if twins else ""))
        return _go(store, run_id, config, task, pool, holdout, home, calibration_set)
    finally:
        store.close()


def resume_run(run_id: int | None = None, home: str | Path | None = None) -> dict[str, Any]:
    store = open_store(home)
    try:
        run_id = run_id or store.latest_run_id()
        row = store.run(run_id)
        if row["status"] == "finished":
            raise StoreError(f"run {run_id} already finished ({row['stop_reason']}); nothing to resume")
        config = stored_config(row["config"], where=f"run {run_id}'s saved config")
        task = get_task(config.task)
        pool, holdout, _ = _load_data(config, task, home, until=row["created"])
        pool, calibration_set, _ = _calibration_split(config, task, pool)
        console.log(f"run {run_id}: resuming after the last completed step")
        return _go(store, run_id, config, task, pool, holdout, home, calibration_set)
    finally:
        store.close()


def _go(store: Store, run_id: int, config: RunConfig, task: Task, pool: list, holdout: list, home: str | Path | None,
        calibration_set: list) -> dict[str, Any]:
    calls = StoreCalls(store, run_id)  # a hosted teacher's raw calls, and its reply cache, live in the store
    teacher = make_teacher(config.teacher, config.seed, record=calls.record, cache=calls)
    student = make_student(config.student, config.seed)
    inputs = RunInputs(run_id=run_id, config=config, task=task, pool=pool,
                       holdout=stratified_sample(task, holdout, config.data.holdout_limit, HOLDOUT_SEED),
                       holdout_keys={task.key(e.input) for e in holdout + calibration_set}, teacher=teacher,
                       student=student, home=home_dir(home).resolve(), calibration=calibration_set)
    return run_loop(store, inputs)


def holdout_of(config: RunConfig, task: Task, home: str | Path | None = None, until: str | None = None) -> list:
    """The holdout items a run with this config scores each round, in the order of its stored predictions."""
    _, holdout, _ = _load_data(config, task, home, until)
    return stratified_sample(task, holdout, config.data.holdout_limit, HOLDOUT_SEED)


def pool_of(config: RunConfig, task: Task, home: str | Path | None = None, until: str | None = None) -> list:
    """The data source of a run with this config, holdout duplicates removed (calibration set still in)."""
    return _load_data(config, task, home, until)[0]


def calibration_set(config: RunConfig, task: Task, home: str | Path | None = None, until: str | None = None) -> list:
    """The calibration items of a run with this config (rebuilt exactly as the run split them)."""
    pool, _, _ = _load_data(config, task, home, until)
    return _calibration_split(config, task, pool)[1]


def _calibration_split(config: RunConfig, task: Task, pool: list) -> tuple[list, list, dict[str, int]]:
    """(the teacher's pool, the calibration set, stats): see mentor.calibration. Same config, same split."""
    size = config.loop.calibration
    if size == 0:
        return pool, [], {}
    if size < 0:
        raise ConfigError(f"loop.calibration must be 0 (off) or a number of pool items, got {size}")
    if task.label_field is None:
        raise ConfigError(f"loop.calibration: task {task.name!r} has no label field, so there are no decisions to calibrate")
    unlabelled = sum(1 for e in pool if task.label_field not in e.output)
    if unlabelled:
        raise ConfigError(f"loop.calibration needs a labelled data source: {unlabelled} pool item(s) have no "
                          f"{task.label_field!r} (set loop.calibration=0, or label the pool)")
    if size > len(pool) // 2:
        raise ConfigError(f"loop.calibration={size} would take more than half of the {len(pool)}-item pool; "
                          f"use at most {len(pool) // 2}")
    rest, chosen, twins = split_off(pool, task, size, config.seed)
    return rest, chosen, {"calibration": len(chosen), "pool_excluded_as_calibration_twins": twins}


def _load_data(config: RunConfig, task: Task, home: str | Path | None = None,
               until: str | None = None) -> tuple[list, list, dict[str, int]]:
    pool_path = Path(config.data.pool) if config.data.pool else bundled_path(task, "pool")
    holdout_path = Path(config.data.holdout) if config.data.holdout else bundled_path(task, "holdout")
    if feedback.is_pool_spec(config.data.pool):  # "feedback[+file.jsonl]": developers' verdicts from the store
        with closing(open_store(home, create=True)) as store:  # a run records itself in this store anyway
            pool = feedback.load_pool(config.data.pool, task, store, until)
    else:
        pool = load_examples(pool_path, task, source="pool", labelled=teacher_needs_labels(config.teacher))
    holdout = dedupe(load_examples(holdout_path, task, source="holdout"), task)
    # Contamination check: no pool item whose normalised input equals a holdout item's ever reaches the teacher.
    pool, excluded = split_against(dedupe(pool, task), task, {task.key(e.input) for e in holdout})
    return pool, holdout, {"pool_in_holdout": excluded}
