"""Classification metrics from scikit-learn, in the shape mentor stores and prints.

An unparseable answer counts as wrong: it is scored as a sentinel label outside the label set, so it
lowers recall of the true class without inventing a prediction. Macro-F1 averages over the task's labels
only (the sentinel is never a class of its own).
"""

from __future__ import annotations

from typing import Any

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

UNPARSEABLE = "(unparseable)"


def classification_report(labels: tuple[str, ...] | list[str], truths: list[str], predictions: list[str | None]) -> dict[str, Any]:
    """accuracy, macro_f1, per_class {label: precision/recall/f1/support}, confusion {true: {pred: n}}, n, unparseable."""
    if len(truths) != len(predictions):
        raise ValueError(f"{len(truths)} truths but {len(predictions)} predictions")
    labels = list(labels)
    preds = [p if p in labels else UNPARSEABLE for p in predictions]
    n = len(truths)
    if n == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0, "per_class": {}, "confusion": {}, "n": 0, "unparseable": 0}
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
    }


def exact_report(correct: list[bool], unparseable: int) -> dict[str, Any]:
    """For tasks without a label set: accuracy of exact (normalised) answers."""
    n = len(correct)
    acc = sum(correct) / n if n else 0.0
    return {"accuracy": acc, "macro_f1": acc, "per_class": {}, "confusion": {}, "n": n, "unparseable": unparseable}
