"""Decision calibration: per-label score offsets fitted on labelled items the student never trained on.

A student tuned on a balanced curriculum learns the curriculum's label mix, not the data's, and its
answers lean toward the labels it drilled most. Each round the loop (when `loop.calibration` > 0) has the
new adapter score a calibration set set aside from the pool, and fits one offset per label, added to the
label's log-likelihood, that maximises the loop's macro-F1 on that set. The offsets live next to the
adapter (`calibration.json`), so `mentor eval`, `review` and `serve` apply them wherever the adapter goes.

The calibration set is split off the pool before the teacher sees it, together with every pool item that
shares an input field with a calibration item (the same review on another language's code, say): those
near-twins would otherwise reach the curriculum and make the calibration items look easier than truly
unseen findings are.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mentor.records import Example
from mentor.tasks import Task
from mentor.tasks.base import normalise_text

CALIBRATION_FILE = "calibration.json"
_GRID = np.round(np.arange(-5.0, 5.0001, 0.1), 2)  # log-odds offsets tried per label


class CalibrationError(ValueError):
    """A calibration.json that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Calibration:
    offsets: dict[str, float]  # added to each label's log-likelihood before the argmax
    items: int  # calibration items the offsets were fitted on
    macro_f1_before: float
    macro_f1_after: float


def fit_offsets(labels: list[str] | tuple[str, ...], probs: list[dict[str, float]], gold: list[str]) -> Calibration:
    """Offsets (the first label's fixed at 0) that maximise macro-F1 of argmax(log p + offset) on the items.

    Coordinate ascent over a 0.1 grid, accepting only strict improvements, so a student whose raw
    decisions are already the best it can do keeps offsets of 0.
    """
    if len(probs) != len(gold) or not gold:
        raise ValueError(f"calibration needs one answer per item and at least one item: {len(probs)} answers, {len(gold)} items")
    index = {label: k for k, label in enumerate(labels)}
    unknown = sorted(set(gold) - set(index))
    if unknown:
        raise ValueError(f"calibration items carry labels outside the task's label set: {', '.join(unknown)}")
    scores = np.log(np.array([[max(p.get(label, 0.0), 1e-12) for label in labels] for p in probs]))
    truth = np.array([index[g] for g in gold])
    offsets = np.zeros(len(labels))
    before = best = _macro_f1(truth, scores.argmax(1), len(labels))
    for _ in range(10):
        improved = False
        for k in range(1, len(labels)):
            for value in _GRID:
                trial = offsets.copy()
                trial[k] = value
                f1 = _macro_f1(truth, (scores + trial).argmax(1), len(labels))
                if f1 > best + 1e-12:
                    best, offsets, improved = f1, trial, True
        if not improved:
            break
    return Calibration({label: float(offsets[k]) for k, label in enumerate(labels)}, len(gold), before, best)


def apply_offsets(probs: dict[str, float], offsets: dict[str, float]) -> dict[str, float]:
    """The label distribution after shifting each label's log-probability by its offset."""
    logits = {label: np.log(max(p, 1e-12)) + offsets.get(label, 0.0) for label, p in probs.items()}
    top = max(logits.values())
    weights = {label: float(np.exp(v - top)) for label, v in logits.items()}
    total = sum(weights.values())
    return {label: w / total for label, w in weights.items()}


def save(adapter_dir: Path, calibration: Calibration) -> None:
    path = Path(adapter_dir) / CALIBRATION_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(calibration), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def remove(adapter_dir: Path) -> None:
    (Path(adapter_dir) / CALIBRATION_FILE).unlink(missing_ok=True)


def load(adapter_dir: Path | None) -> dict[str, float] | None:
    """The offsets saved with an adapter, or None when it has none."""
    if adapter_dir is None:
        return None
    path = Path(adapter_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: not valid JSON ({exc})") from None
    offsets = data.get("offsets") if isinstance(data, dict) else None
    if not isinstance(offsets, dict) or not offsets:
        raise CalibrationError(f"{path}: field 'offsets' must be an object mapping labels to numbers")
    for label, value in offsets.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise CalibrationError(f"{path}: offsets.{label} must be a finite number, got {value!r}")
    return {str(label): float(value) for label, value in offsets.items()}


def check_labels(offsets: dict[str, float], labels: tuple[str, ...] | list[str], where: Path | str) -> None:
    extra = sorted(set(offsets) - set(labels))
    if extra:
        raise CalibrationError(f"{Path(where) / CALIBRATION_FILE}: offsets for labels the task does not have: "
                               f"{', '.join(extra)} (task labels: {', '.join(labels)})")


def split_off(pool: list[Example], task: Task, size: int, seed: int) -> tuple[list[Example], list[Example], int]:
    """(rest of the pool, calibration set, pool items dropped as near-twins of calibration items).

    Items are grouped so that two items sharing the normalised value of any input field are in one
    group; whole groups, drawn in a seeded random order, go to the calibration set until it has `size`
    items (the last group is cut to fit, its cut items are dropped with the near-twins).
    """
    parent = list(range(len(pool)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[tuple[str, str], int] = {}
    for i, example in enumerate(pool):
        for name in task.input_fields:
            value = normalise_text(str(example.input.get(name, "")))
            if not value:
                continue
            j = first_with.setdefault((name, value), i)
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(pool)):
        groups.setdefault(find(i), []).append(i)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    chosen: list[int] = []
    taken: set[int] = set()
    for members in order:
        if len(chosen) >= size:
            break
        chosen += members[: size - len(chosen)]
        taken.update(members)
    rest = [e for i, e in enumerate(pool) if i not in taken]
    return rest, [pool[i] for i in chosen], len(taken) - len(chosen)


def _macro_f1(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Macro-F1 over the labels present in truth or prediction (sklearn's convention), without its overhead."""
    f1s = []
    for c in range(k):
        tp = int(np.sum((pred == c) & (truth == c)))
        predicted, actual = int(np.sum(pred == c)), int(np.sum(truth == c))
        if predicted == 0 and actual == 0:
            continue
        f1s.append(2 * tp / (predicted + actual))
    return float(np.mean(f1s)) if f1s else 0.0
