"""The classical baseline beside every LLM: TF-IDF features and logistic regression (scikit-learn).

`train_tfidf(task, examples)` fits it on labelled examples (`mentor eval --models tfidf` uses the run's
accepted curriculum, `store.curriculum(run_id)`, so it learns from exactly what the student learned from)
and returns an object that answers like a Student: `answer(task, inputs, progress)` gives one Answer per
question with the label's probabilities. It only predicts the label field; it cannot explain or fine-tune.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Callable

from mentor import calibration
from mentor.records import Answer, Example, TrainReport
from mentor.students import StudentError
from mentor.tasks import Task


class TfidfStudent:
    name = "tfidf"
    can_finetune = False

    def __init__(self, task: Task, pipeline, trained_on: int) -> None:  # noqa: ANN001 - a fitted sklearn Pipeline
        self.task = task
        self.pipeline = pipeline
        self.trained_on = trained_on
        self.offsets: dict[str, float] | None = None  # per-label decision offsets (mentor.calibration)
        self.temperature = 1.0

    def answer(self, task: Task, inputs: list[dict[str, str]], progress: Callable[[int], None] | None = None) -> list[Answer]:
        if task.label_field != self.task.label_field or set(task.labels) != set(self.task.labels):
            raise StudentError(f"the TF-IDF baseline was trained for task {self.task.name!r}, not {task.name!r}")
        if not inputs:
            return []
        started = time.perf_counter()
        probs = self.pipeline.predict_proba([_text(task, item) for item in inputs])
        seconds = (time.perf_counter() - started) / len(inputs)
        classes = list(self.pipeline.classes_)
        answers = []
        for row in probs:
            by_label = {label: float(row[classes.index(label)]) if label in classes else 0.0 for label in task.labels}
            if self.offsets:
                by_label = calibration.apply_offsets(by_label, self.offsets, self.temperature)
            label = max(by_label, key=by_label.get)
            answers.append(Answer(raw=label, parsed={task.label_field: label}, probs=by_label, seconds=seconds))
        if progress:
            progress(len(inputs))
        return answers

    def finetune(self, task: Task, examples: list[Example], out_dir: Path,
                 progress: Callable[[int], None] | None = None) -> TrainReport:
        raise StudentError("the TF-IDF baseline is trained once with train_tfidf(); it has no adapters to fine-tune")

    def use_adapter(self, adapter_dir: Path | None) -> None:
        if adapter_dir is not None:
            raise StudentError("the TF-IDF baseline has no adapters")


def train_tfidf(task: Task, examples: list[Example], seed: int = 0) -> TfidfStudent:
    """Fit TF-IDF (word 1-2 grams, sublinear tf) + class-balanced logistic regression on the label field."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if task.label_field is None:
        raise StudentError(f"task {task.name!r} has no label field: the TF-IDF baseline only predicts labels")
    labels = [e.output[task.label_field] for e in examples]
    if len(Counter(labels)) < 2:
        raise StudentError(f"the TF-IDF baseline needs examples of at least two labels, got {len(examples)} example(s) "
                           f"of {len(Counter(labels))}: train on a run that has accepted curriculum examples")
    pipeline = make_pipeline(
        # Code identifiers matter as much as words, so the token pattern keeps snake_case and dotted names whole.
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=50_000,
                        token_pattern=r"(?u)\b[\w.]+\b"),
        LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed),
    )
    pipeline.fit([_text(task, e.input) for e in examples], labels)
    return TfidfStudent(task, pipeline, len(examples))


def _text(task: Task, inputs: dict[str, str]) -> str:
    return "\n".join(str(inputs.get(name, "")) for name in task.input_fields)
