"""Classification metrics from scikit-learn, in the shape mentor stores and prints.

An unparseable answer counts as wrong: it is scored as a sentinel label outside the label set, so it
lowers recall of the true class without inventing a prediction. Macro-F1 averages over the task's labels
only (the sentinel is never a class of its own).

The task's label order is read as an ordinal scale (the built-ins list severity from critical down to
trivial), which gives quadratic-weighted kappa, within-one-level accuracy and the recall of the first,
most severe label ("critical recall"). Bootstrap 95% intervals on accuracy and macro-F1 are seeded, so
the same inputs always give the same interval.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.metrics import (accuracy_score, cohen_kappa_score, confusion_matrix, f1_score, precision_recall_fscore_support,
                             recall_score)

UNPARSEABLE = "(unparseable)"
BOOTSTRAP_RESAMPLES = 1000


def classification_report(labels: tuple[str, ...] | list[str], truths: list[str], predictions: list[str | None]) -> dict[str, Any]:
    """accuracy, macro_f1, per_class {label: precision/recall/f1/support}, confusion {true: {pred: n}}, n, unparseable,
    plus qwk, critical_recall, within_one and ci {accuracy: [low, high], macro_f1: [low, high], resamples, seed}."""
    if len(truths) != len(predictions):
        raise ValueError(f"{len(truths)} truths but {len(predictions)} predictions")
    labels = list(labels)
    preds = [p if p in labels else UNPARSEABLE for p in predictions]
    n = len(truths)
    if n == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0, "per_class": {}, "confusion": {}, "n": 0, "unparseable": 0,
                "qwk": None, "critical_recall": None, "within_one": None, "ci": None}
    precision, recall, f1, support = precision_recall_fscore_support(truths, preds, labels=labels, zero_division=0)
    columns = labels + [UNPARSEABLE]
    matrix = confusion_matrix(truths, preds, labels=columns)
    return {
        "accuracy": float(accuracy_score(truths, preds)),
        "macro_f1": float(f1_score(truths, preds, labels=labels, average="macro", zero_division=0)),
        "per_class": {lab: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for lab, p, r, f, s in zip(labels, precision, recall, f1, support)},
        "confusion": {t: {p: int(matrix[i][j]) for j, p in enumerate(columns) if matrix[i][j]} for i, t in enumerate(labels)},
        "n": n,
        "unparseable": sum(1 for p in preds if p == UNPARSEABLE),
        **ordinal_metrics(labels, truths, preds),
        "ci": bootstrap_ci(labels, truths, preds),
    }


def ordinal_metrics(labels: list[str], truths: list[str], predictions: list[str | None]) -> dict[str, float | None]:
    """qwk, critical_recall (recall of labels[0]) and within_one, reading the label order as a scale.

    An unparseable answer has no place on the scale, so it is scored as the level farthest from the
    truth: it costs kappa the most and is never within one level.
    """
    labels = list(labels)
    predictions = [p if p in labels else UNPARSEABLE for p in predictions]
    truth_idx = [labels.index(t) for t in truths]
    last = len(labels) - 1
    pred_idx = [labels.index(p) if p in labels else (0 if t * 2 > last else last) for p, t in zip(predictions, truth_idx)]
    parsed = [p in labels for p in predictions]
    kappa = None  # undefined when every truth and every answer is the same one level
    if len(set(truth_idx) | set(pred_idx)) > 1:
        kappa = float(cohen_kappa_score(truth_idx, pred_idx, labels=list(range(len(labels))), weights="quadratic"))
    critical = recall_score(truths, predictions, labels=[labels[0]], average="macro", zero_division=0)
    return {
        "qwk": kappa,
        "critical_recall": float(critical) if labels[0] in truths else None,
        "within_one": sum(ok and abs(t - p) <= 1 for ok, t, p in zip(parsed, truth_idx, pred_idx)) / len(truths),
    }


def bootstrap_ci(labels: list[str], truths: list[str], predictions: list[str | None], resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> dict[str, Any]:
    """Percentile 95% intervals of accuracy and macro-F1 over `resamples` seeded resamples of the items.

    Each resample's figures follow sklearn's accuracy_score and f1_score(average="macro", zero_division=0)
    exactly (the tests check it), computed from resampled confusion counts because a thousand sklearn
    calls per system would cost seconds.
    """
    t, draws = resample_indices(labels, truths, resamples, seed)
    accuracy, f1 = resampled_scores(labels, t, predictions, draws)
    return {"accuracy": percentile_interval(accuracy), "macro_f1": percentile_interval(f1), "resamples": resamples, "seed": seed}


def paired_bootstrap(labels: list[str], truths: list[str], first: list[str | None], other: list[str | None],
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                     groups: list[int] | None = None) -> dict[str, Any]:
    """Macro-F1 of `other` minus `first` on the same items: the difference, its percentile 95% interval over
    seeded resamples drawn once for both (paired, so item difficulty cancels), and the share of resamples
    in which `other` scores higher. With `groups`, the resamples draw whole groups (`resampler`); "unit" says
    which was resampled, "groups" how many there were."""
    t = np.array([list(labels).index(x) for x in truths])
    whole = np.arange(len(t))[None, :]
    point = float(resampled_scores(labels, t, other, whole)[1][0] - resampled_scores(labels, t, first, whole)[1][0])
    score, unit, n_groups = resampler(labels, truths, resamples, seed, groups)
    diff = score(other) - score(first)
    return {"macro_f1_diff": point, "ci": percentile_interval(diff), "share_higher": float(np.mean(diff > 0)),
            "resamples": resamples, "seed": seed, "unit": unit, "groups": n_groups}


def resampler(labels: list[str], truths: list[str], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
              groups: list[int] | None = None) -> tuple[Callable[[list[str | None]], np.ndarray], str, int]:
    """(score, unit, number of units): `score(predictions)` is the macro-F1 on each of `resamples` seeded
    bootstrap resamples of the items, the same resamples for every call (so differences are paired).

    `groups` (a group number per item, e.g. `mentor.calibration.twin_groups`: items sharing a review) makes each
    resample draw whole groups: items of one finding are not independent (a holdout may hold the same review on
    sixteen snippets, all right or all wrong together), and drawing them one by one gives intervals too narrow.
    With no group of two or more items, this is the item bootstrap exactly.
    """
    found = np.unique(np.asarray(groups), return_inverse=True)[1] if groups is not None else None
    if found is not None and len(found) != len(truths):
        raise ValueError(f"{len(found)} groups for {len(truths)} items")
    if found is None or found.max() + 1 == len(truths):
        t, draws = resample_indices(labels, truths, resamples, seed)
        return (lambda predictions: resampled_scores(labels, t, predictions, draws)[1]), "item", len(t)
    t = np.array([list(labels).index(x) for x in truths])
    n_groups = int(found.max()) + 1
    picks = np.random.default_rng(seed).integers(0, n_groups, size=(resamples, n_groups))
    counts = np.zeros((resamples, n_groups))
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1)
    weights = counts[:, found]  # how often each item is in each resample: its group's draws
    k = len(labels) + 1
    cells = np.arange(resamples)[:, None] * (k * k) + t[None, :] * k  # each resample's truth row, before the answer

    def score(predictions: list[str | None]) -> np.ndarray:
        filled = (cells + _answer_columns(labels, predictions)[None, :]).ravel()
        confusion = np.bincount(filled, weights=weights.ravel(), minlength=resamples * k * k).reshape(resamples, k, k)
        return _scores(confusion, len(labels))[1]
    return score, "finding", n_groups


def resample_indices(labels: list[str], truths: list[str], resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([list(labels).index(x) for x in truths])
    return t, np.random.default_rng(seed).integers(0, len(t), size=(resamples, len(t)))


def resampled_scores(labels: list[str], t: np.ndarray, predictions: list[str | None], draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, macro-F1) for each row of item indices in `draws`."""
    p = _answer_columns(labels, predictions)
    k, resamples = len(labels) + 1, draws.shape[0]
    cells = t[draws] * k + p[draws]
    cells += np.arange(resamples)[:, None] * (k * k)  # one bincount counts every resample's confusion at once
    confusion = np.bincount(cells.ravel(), minlength=resamples * k * k).reshape(resamples, k, k)
    return _scores(confusion, len(labels))


def _answer_columns(labels: list[str], predictions: list[str | None]) -> np.ndarray:
    """Each answer's column in a confusion matrix: its label's index, or the last column when unparseable."""
    columns = list(labels) + [UNPARSEABLE]
    return np.array([columns.index(x) if x in columns else len(labels) for x in predictions])


def _scores(confusion: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, macro-F1) for each of a stack of confusion matrices (resamples x truth x answer, counts)."""
    diag = np.einsum("bii->bi", confusion)[:, :n_labels]
    true_n = confusion.sum(axis=2)[:, :n_labels]
    pred_n = confusion.sum(axis=1)[:, :n_labels]
    # F1 = 2tp / (true + predicted); a label absent from both truth and answers scores 0 (zero_division=0).
    denom = true_n + pred_n
    f1 = np.divide(2 * diag, denom, out=np.zeros(diag.shape, dtype=float), where=denom > 0)
    return diag.sum(axis=1) / confusion.sum(axis=(1, 2)), f1.mean(axis=1)


def bootstrap_mean_ci(values: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float] | None:
    """Percentile 95% interval of the mean of per-item values (the judge's +1/0/-1 preferences)."""
    if not values:
        return None
    x = np.asarray(values, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    return percentile_interval(x[draws].mean(axis=1))


def percentile_interval(samples: np.ndarray) -> list[float]:
    low, high = np.percentile(samples, [2.5, 97.5])
    return [float(low), float(high)]


def exact_report(correct: list[bool], unparseable: int) -> dict[str, Any]:
    """For tasks without a label set: accuracy of exact (normalised) answers."""
    n = len(correct)
    acc = sum(correct) / n if n else 0.0
    return {"accuracy": acc, "macro_f1": acc, "per_class": {}, "confusion": {}, "n": n, "unparseable": unparseable}
