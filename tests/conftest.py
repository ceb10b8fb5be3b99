"""Shared fixtures: small labelled data files written per test, and an isolated mentor home."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mentor.records import Example
from mentor.tasks import SEVERITY_LABELS

_CODE = {
    "critical": ('query = "SELECT * FROM users WHERE name = \'" + name + "\'"', "User input is concatenated into SQL: injection"),
    "major": ("for i in range(1, len(items)):\n    total += items[i]", "The loop skips the first item so totals are wrong"),
    "minor": ("for user in users:\n    db.fetch_settings()", "Settings are fetched again on every iteration, wasteful"),
    "trivial": ("def calc(x):\n    return x*2", "Please rename calc to something descriptive"),
}


def make_examples(n_per_label: int, prefix: str = "item", seed: int = 0) -> list[Example]:
    """Distinct, labelled severity examples with a clear signal per label."""
    rng = random.Random(seed)
    out = []
    for label in SEVERITY_LABELS:
        code, review = _CODE[label]
        for i in range(n_per_label):
            out.append(Example({"code": f"{code}  # {prefix}-{label}-{i}", "review": f"{review} ({prefix} {i})"},
                               {"issue_type": label}, source=prefix))
    rng.shuffle(out)
    return out


def write_jsonl(path: Path, examples: list[Example]) -> Path:
    path.write_text("".join(json.dumps(e.to_json()) + "\n" for e in examples), encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MENTOR_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@pytest.fixture
def data_files(tmp_path) -> tuple[Path, Path]:
    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(30, "pool"))
    holdout = write_jsonl(tmp_path / "holdout.jsonl", make_examples(5, "holdout", seed=1))
    return pool, holdout
