"""Decision calibration: per-label score offsets fitted on labelled items the student never trained on.

A student tuned on a balanced curriculum learns the curriculum's label mix, not the data's, and its
answers lean toward the labels it drilled most. Each round the loop (when `loop.calibration` > 0) has the
new adapter score a calibration set set aside from the pool, and fits one offset per label, added to the
label's log-likelihood (a class-weighted log-loss on that set: see `fit_offsets`). The offsets live next to the
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
from sklearn.metrics import f1_score

from mentor.records import Example
from mentor.tasks import Task
from mentor.tasks.base import normalise_text

CALIBRATION_FILE = "calibration.json"


class CalibrationError(ValueError):
    """A calibration.json that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Calibration:
    offsets: dict[str, float]  # added to each label's (temperature-scaled) log-likelihood before the argmax
    items: int  # calibration items the offsets were fitted on
    macro_f1_before: float
    macro_f1_after: float
    temperature: float = 1.0  # log-likelihoods are multiplied by it first (fitted only when asked)


# The class weighting's exponent: 0.5 beat 0, 0.75 and 1 or came within 0.007 of them when offsets fitted on half
# of the third-party dev predictions were scored on the other half (benchmarks/calibration_weighting.py).
BALANCE = 0.5


def fit_offsets(labels: list[str] | tuple[str, ...], probs: list[dict[str, float]], gold: list[str],
                temperature: bool = False, balance: float = BALANCE) -> Calibration:
    """Offsets (the first label's fixed at 0) that minimise a class-weighted log-loss on the items.

    Each item weighs 1/(its label's share of the set) ** `balance`; at 0.5, halfway, in log space, between
    the plain log-loss (whose offsets give the data's own label mix, best for accuracy but starving rare
    labels) and the fully balanced one (every label as likely, which over-predicts rare labels on skewed data).
    Macro-F1's best decisions lie between the two. A smooth loss with as many parameters as labels
    barely moves between resamples of the set; fitting the offsets to macro-F1 itself did (a bootstrap
    spread of about 1.0 in log-odds on 1,200 items, and worse holdout scores).
    `temperature` also fits a scale for the log-likelihoods: a model whose probabilities are far too flat
    (logistic regression's, say) needs it before offsets mean anything; the student's decisions were
    better without it on third-party data (README, "Third-party data").
    """
    if len(probs) != len(gold) or not gold:
        raise ValueError(f"calibration needs one answer per item and at least one item: {len(probs)} answers, {len(gold)} items")
    index = {label: k for k, label in enumerate(labels)}
    unknown = sorted(set(gold) - set(index))
    if unknown:
        raise ValueError(f"calibration items carry labels outside the task's label set: {', '.join(unknown)}")
    scores = np.log(np.array([[max(p.get(label, 0.0), 1e-12) for label in labels] for p in probs]))
    truth = np.array([index[g] for g in gold])
    weights = class_weights(truth, len(labels), balance)
    weights = weights / weights.sum()
    onehot = np.eye(len(labels))[truth]
    offsets, log_t = np.zeros(len(labels)), 0.0
    for _ in range(6000):  # gradient descent; the gradient is a weighted difference of probabilities
        t = float(np.exp(log_t))
        z = t * scores + offsets
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        residual = weights[:, None] * (p - onehot)
        grad = residual.sum(0)
        offsets = np.clip(offsets - 2.0 * grad, -20, 20)
        offsets -= offsets[0]
        step_t = float((residual * scores).sum()) * t if temperature else 0.0
        log_t = float(np.clip(log_t - 0.5 * step_t, -3, 3))
        if np.abs(grad).max() < 1e-7 and abs(step_t) < 1e-7:
            break
    t = round(float(np.exp(log_t)), 4)
    offsets = np.round(offsets, 3)
    before = float(f1_score(truth, scores.argmax(1), average="macro", zero_division=0))
    after = float(f1_score(truth, (t * scores + offsets).argmax(1), average="macro", zero_division=0))
    return Calibration({label: float(offsets[k]) for k, label in enumerate(labels)}, len(gold), before, after, t)


def class_weights(truth: np.ndarray, n_labels: int, balance: float = BALANCE) -> np.ndarray:
    """Each item's weight in the fit: 1/(its label's share of the items) ** `balance` (see `fit_offsets`)."""
    share = np.bincount(truth, minlength=n_labels) / len(truth)
    return (np.where(share > 0, share, 1.0) ** -balance)[truth]


def apply_offsets(probs: dict[str, float], offsets: dict[str, float], temperature: float = 1.0) -> dict[str, float]:
    """The label distribution after scaling each label's log-probability and shifting it by its offset."""
    logits = {label: temperature * np.log(max(p, 1e-12)) + offsets.get(label, 0.0) for label, p in probs.items()}
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
    groups: dict[int, list[int]] = {}
    for i, group in enumerate(twin_groups(task, pool)):
        groups.setdefault(group, []).append(i)
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


def twin_groups(task: Task, examples: list[Example]) -> list[int]:
    """A group number per example: examples sharing the normalised value of any input field, directly or
    through others, share a group (how calibration items are split off, and the folds of the baselines)."""
    parent = list(range(len(examples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[tuple[str, str], int] = {}
    for i, example in enumerate(examples):
        for name in task.input_fields:
            value = normalise_text(str(example.input.get(name, "")))
            if value:
                parent[find(i)] = find(first_with.setdefault((name, value), i))
    return [find(i) for i in range(len(examples))]
