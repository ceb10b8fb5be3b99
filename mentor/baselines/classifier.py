"""The three classical baselines, fitted on labelled examples and answering like a Student.

- `tfidf`: TF-IDF of the raw input fields (word 1-2 grams, sublinear tf) + class-balanced logistic regression;
- `embed`: all-MiniLM-L6-v2 sentence embeddings of each input field as the student's prompt shows it (clipped
  to `task.max_input_chars`, head and tail kept), side by side, + class-balanced logistic regression;
- `majority`: the label most frequent among the training examples, with their label shares as probabilities.

The regularisation strength C of both regressions is chosen by cross-validation (macro-F1, the metric mentor
reports) on the training examples alone: the smallest C whose mean score is within one standard error of the
best (the usual one-standard-error rule: on 4,913 severity items the best few Cs differ by less than the noise
between fold draws, and the largest overfits); the model is then refitted on all of them with that C. The folds are
stratified by label and keep near-twins together (items sharing the normalised value of an input field, such as
one review rule on many snippets of code): split across folds, they make weak regularisation look better than
it is on unseen findings.
Whatever a baseline is later scored on is never part of its fit. A baseline predicts the label field only:
it cannot explain (`can_explain = False`) or fine-tune.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mentor import calibration
from mentor.calibration import twin_groups
from mentor.baselines.embed import CachedEncoder
from mentor.records import Answer, Example, TrainReport
from mentor.students import StudentError
from mentor.tasks import Task

KINDS = ("tfidf", "embed", "majority")
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)  # regularisation strengths tried by cross-validation
FOLDS = 5  # at most; fewer when the rarest label has fewer examples

Features = Callable[[list[dict[str, str]]], Any]


class BaselineStudent:
    """A fitted scikit-learn classifier behind the Student protocol (answers only)."""

    can_finetune = False
    can_explain = False  # predicts the label, writes no explanation (mentor judge refuses it)

    def __init__(self, kind: str, task: Task, features: Features, model: Any, training: dict[str, Any]) -> None:
        self.name = kind
        self.task = task
        self.features = features
        self.model = model  # fitted: predict_proba and classes_
        self.training = training  # what it learned from: {"kind", "items", "C", "cv_folds", ...}; shown by mentor eval
        self.trained_on = training["items"]
        self.offsets: dict[str, float] | None = None  # per-label decision offsets (mentor.calibration)
        self.temperature = 1.0

    def answer(self, task: Task, inputs: list[dict[str, str]], progress: Callable[[int], None] | None = None,
               explain: bool = False) -> list[Answer]:  # labels only: nothing to explain with
        if task.label_field != self.task.label_field or set(task.labels) != set(self.task.labels):
            raise StudentError(f"the {self.name} baseline was trained for task {self.task.name!r}, not {task.name!r}")
        if not inputs:
            return []
        started = time.perf_counter()
        probs = self.model.predict_proba(self.features(inputs))
        seconds = (time.perf_counter() - started) / len(inputs)  # features included: encoding is part of answering
        classes = list(self.model.classes_)
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
        raise StudentError(f"the {self.name} baseline is fitted once (mentor.baselines.train); it has no adapters to fine-tune")

    def use_adapter(self, adapter_dir: Path | None) -> None:
        if adapter_dir is not None:
            raise StudentError(f"the {self.name} baseline has no adapters")


def train(kind: str, task: Task, examples: list[Example], seed: int = 0,
          encoder: CachedEncoder | None = None) -> BaselineStudent:
    """Fit one baseline kind (tfidf, embed, majority) on labelled examples."""
    if kind == "tfidf":
        return train_tfidf(task, examples, seed)
    if kind == "embed":
        return train_embed(task, examples, seed, encoder)
    if kind == "majority":
        return train_majority(task, examples)
    raise StudentError(f"unknown baseline {kind!r}: use one of {', '.join(KINDS)}")


def train_tfidf(task: Task, examples: list[Example], seed: int = 0) -> BaselineStudent:
    """TF-IDF (word 1-2 grams, sublinear tf) + class-balanced logistic regression, C cross-validated."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    labels = _labels(task, examples, "tfidf")
    # Code identifiers matter as much as words, so the token pattern keeps snake_case and dotted names whole.
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=50_000,
                                 token_pattern=r"(?u)\b[\w.]+\b")
    # The vocabulary and idf come from the training texts only; folds share them (no labels are involved).
    matrix = vectorizer.fit_transform([raw_text(task, e.input) for e in examples])
    regression, chosen = fit_logistic(matrix, labels, seed, twin_groups(task, examples))
    features: Features = lambda inputs: [raw_text(task, item) for item in inputs]  # noqa: E731
    return BaselineStudent("tfidf", task, features, make_pipeline(vectorizer, regression),
                           {"kind": "tfidf", "items": len(examples), **chosen})


def train_embed(task: Task, examples: list[Example], seed: int = 0, encoder: CachedEncoder | None = None) -> BaselineStudent:
    """all-MiniLM-L6-v2 embeddings of each input field (as the student reads it) + class-balanced logistic
    regression, C cross-validated. `encoder` caches vectors (pass one that holds the store)."""
    labels = _labels(task, examples, "embed")
    encoder = encoder or CachedEncoder()
    features: Features = lambda inputs: embed_inputs(task, inputs, encoder)  # noqa: E731
    regression, chosen = fit_logistic(features([e.input for e in examples]), labels, seed, twin_groups(task, examples))
    return BaselineStudent("embed", task, features, regression,
                           {"kind": "embed", "items": len(examples), "encoder": encoder.model, **chosen})


def train_majority(task: Task, examples: list[Example]) -> BaselineStudent:
    """The most frequent training label for every item (ties: the label first in alphabetical order, as
    scikit-learn's DummyClassifier breaks them); probabilities are the training label shares."""
    from sklearn.dummy import DummyClassifier

    labels = _labels(task, examples, "majority", distinct=1)
    model = DummyClassifier(strategy="prior").fit(np.zeros((len(labels), 1)), labels)
    features: Features = lambda inputs: np.zeros((len(inputs), 1))  # noqa: E731
    majority = str(model.classes_[int(np.argmax(model.class_prior_))])
    return BaselineStudent("majority", task, features, model, {"kind": "majority", "items": len(examples), "label": majority})


def fit_logistic(features: Any, labels: list[str], seed: int, groups: list[int] | None = None) -> tuple[Any, dict[str, Any]]:
    """Class-balanced logistic regression with C chosen by k-fold cross-validation on macro-F1 (the smallest C
    within one standard error of the best mean: the stronger regularisation), refitted on every example. The
    folds are stratified by label and, given `groups` with at least as many groups as folds, never split a group."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    def regression(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)

    folds = min(FOLDS, min(Counter(labels).values()))
    if folds < 2:  # a label with a single example leaves nothing to validate on: scikit-learn's default C
        return regression(1.0).fit(features, labels), {"C": 1.0, "cv_folds": 0}
    search = GridSearchCV(regression(1.0), {"C": list(C_GRID)}, scoring="f1_macro", cv=cv_folds(folds, seed, groups),
                          refit=lambda results: one_standard_error(results, folds))
    search.fit(features, labels, groups=groups)
    return search.best_estimator_, {"C": float(search.best_params_["C"]), "cv_folds": folds,
                                    "cv_macro_f1": float(search.cv_results_["mean_test_score"][search.best_index_])}


def one_standard_error(results: dict[str, Any], folds: int) -> int:
    """Index of the smallest C (C_GRID ascends) whose mean CV score is within one standard error of the best."""
    means, sds = np.asarray(results["mean_test_score"]), np.asarray(results["std_test_score"])
    best = int(np.nanargmax(means))
    bar = means[best] - sds[best] / np.sqrt(folds)
    return int(np.flatnonzero(means >= bar)[0])


def cv_folds(folds: int, seed: int, groups: list[int] | None) -> Any:
    """The cross-validation splitter: stratified, and grouped when there are groups enough to fill the folds."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is not None and len(set(groups)) >= folds:
        return StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    return StratifiedKFold(folds, shuffle=True, random_state=seed)


def embed_inputs(task: Task, inputs: list[dict[str, str]], encoder: CachedEncoder) -> np.ndarray:
    """One row per item: the embedding of each input field, in the task's field order, side by side.
    Each field is embedded alone so the long code cannot crowd the review out of the model's 256 word pieces."""
    blocks = [encoder(student_view(task, name, inputs)) for name in task.input_fields]
    return np.hstack(blocks) if inputs else np.zeros((0, 0), dtype=np.float32)


def student_view(task: Task, name: str, inputs: list[dict[str, str]]) -> list[str]:
    """Input field `name` of each item exactly as the student's prompt shows it (Task.prompt clips it to
    max_input_chars, head and tail kept): a one-field prompt of the same task yields just that."""
    alone = replace(task, input_fields=(name,), student_prompt="{" + name + "}", context_fields=())
    return [alone.prompt(item) for item in inputs]


def raw_text(task: Task, inputs: dict[str, str]) -> str:
    """The input fields unclipped, one per line (what the TF-IDF baseline reads)."""
    return "\n".join(str(inputs.get(name, "")) for name in task.input_fields)


def _labels(task: Task, examples: list[Example], kind: str, distinct: int = 2) -> list[str]:
    if task.label_field is None:
        raise StudentError(f"task {task.name!r} has no label field: the {kind} baseline only predicts labels")
    labels = [e.output[task.label_field] for e in examples]
    if len(Counter(labels)) < distinct:
        need = "examples of at least two labels" if distinct == 2 else "at least one labelled example"
        raise StudentError(f"the {kind} baseline needs {need}, got {len(examples)} example(s) of "
                           f"{len(Counter(labels))} (the curriculum for {kind}, the data source less the evaluated items' near-twins "
                           f"for {kind}:all)")
    return labels
