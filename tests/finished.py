"""A finished run with the shipped scripted student, for the eval, judge and report tests (seconds)."""

from __future__ import annotations

from pathlib import Path

from mentor.config import load_config
from mentor.records import Example
from mentor.runner import start_run
from tests.conftest import make_examples, write_jsonl

WHY = {"critical": "Attackers can inject SQL and read the whole database: a security hole.",
       "major": "The total is computed wrongly because the first item is skipped.",
       "minor": "It wastes time fetching settings again but the result is still right.",
       "trivial": "Only the name is unclear; behaviour does not change."}


def explained(examples: list[Example]) -> list[Example]:
    """The same examples with a reference explanation per label (what the explain task needs)."""
    return [Example(e.input, {**e.output, "explanation": WHY[e.output["issue_type"]]}, e.source) for e in examples]


def finished_run(folder: Path, rounds: int = 2) -> tuple[int, Path]:
    """Start and finish a run in the current MENTOR_HOME; returns its id and a labelled data file."""
    pool = write_jsonl(folder / "pool.jsonl", make_examples(30, "pool"))
    holdout = write_jsonl(folder / "holdout.jsonl", explained(make_examples(3, "holdout", seed=1)))
    data = write_jsonl(folder / "dev.jsonl", make_examples(6, "dev", seed=2))
    result = start_run(load_config(overrides=[
        f"data.pool={pool}", f"data.holdout={holdout}", "student.model=scripted", "teacher.exam_size=12",
        "teacher.new_examples=24", f"loop.rounds={rounds}", "loop.patience=5"]))
    return result["run_id"], data
