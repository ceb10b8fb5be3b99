"""Explanations scored against the reference: the figure that lets the loop pick the best round of an explain run.

A task with a free-text output (the `explain` task's explanation) is judged on two things: its label (macro-F1
on the whole holdout, scored without generating anything) and what it writes. Each round the student writes
explanations for a fixed, label-stratified sample of the holdout (`loop.explain_sample` items: generation costs
far more than scoring), and each is compared with the item's reference explanation by cosine similarity of
all-MiniLM-L6-v2 sentence embeddings (the offline judge's model, cached in the store). The best round is
picked by `(1 - w) * label metric + w * mean similarity`, w = `loop.explanation_weight`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from mentor.records import Answer, Example
from mentor.tasks import Task

Encode = Callable[[list[str]], np.ndarray]  # texts -> unit-length rows


def text_of(task: Task, answer: Answer) -> str:
    """The free text a reader sees: the parsed field, else whatever followed the label line."""
    field = task.text_fields[0]
    if answer.parsed and answer.parsed.get(field):
        return answer.parsed[field].strip()
    first, _, rest = (answer.raw or "").strip().partition("\n")
    return rest.strip() if task.label_field and task.normalise_label(first) else (answer.raw or "").strip()


def similarities(encode: Encode, references: Sequence[str], texts: Sequence[str]) -> list[float]:
    """Cosine similarity of each text to its reference; an empty text scores 0 (it explains nothing)."""
    if len(references) != len(texts):
        raise ValueError(f"{len(references)} references but {len(texts)} texts")
    written = [i for i, t in enumerate(texts) if t.strip()]
    scores = [0.0] * len(texts)
    if written:
        refs = encode([references[i] for i in written])
        outs = encode([texts[i] for i in written])
        for i, value in zip(written, np.sum(refs * outs, axis=1).tolist()):
            scores[i] = float(value)
    return scores


def explanation_report(task: Task, items: Sequence[Example], answers: Sequence[Answer], encode: Encode) -> dict[str, Any]:
    """The round's explanation figures: mean similarity to the reference over the sample, and each item's."""
    field = task.text_fields[0]
    texts = [text_of(task, a) for a in answers]
    scores = similarities(encode, [e.output[field] for e in items], texts)
    return {"similarity": float(np.mean(scores)) if scores else 0.0, "items": len(scores),
            "empty": sum(1 for t in texts if not t), "per_item": [round(s, 4) for s in scores]}


def explains(task: Task, sample: int) -> bool:
    """Whether a run of this task scores explanations each round."""
    return bool(task.text_fields) and sample > 0


def selection_value(label_value: float, similarity: float, weight: float) -> float:
    return (1.0 - weight) * label_value + weight * similarity


def criterion(metric: str, weight: float, sample: int, explained: bool) -> str:
    """How the best round is picked, in words (`mentor show` prints it)."""
    name = {"macro_f1": "holdout macro-F1", "accuracy": "holdout accuracy"}.get(metric, metric)
    if not explained or weight <= 0:
        return name
    return (f"{1 - weight:g} x {name} + {weight:g} x explanation similarity to the reference "
            f"(all-MiniLM-L6-v2 cosine, {sample} holdout items)")
