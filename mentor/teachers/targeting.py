"""Item-level targeting: which pool items the reference teacher examines and teaches next.

Label-level targeting (more examples of the labels the student misses) cannot tell an item the student
already gets right from one it does not. Item-level signals can:
- margin: the current student's answers on probed pool items (the loop's `probe` step). An item's margin
  is p(correct label) minus the highest other label's probability: negative when the student gets it
  wrong, near zero when it is unsure. Unsure items come first, wrong ones before right ones at the same
  distance from the boundary; confidently wrong items come after the unsure ones, because in third-party
  data they are as often label noise as lessons.
- nearest: TF-IDF cosine similarity to the exam's mistakes of the same label (items like the ones the
  student just got wrong). It needs no probe.
- typical: a cold start for the first curriculum, when the student is still untuned and its margins say
  little about what it will find hard. Candidates are ranked by how typical they are of their label (the
  most typical item of each TF-IDF cluster, largest clusters first, as TypiClust does for active learning
  at small budgets): a first round that covers a label's common kinds of finding, not its outliers. Later
  rounds use the other signals.
- consistent: a filter on the others. An item whose nearest pool items (TF-IDF, other review texts) mostly
  carry another label sits where the labels are mixed: ambiguous or mislabelled, and the items a student
  is least sure of are often those. Such a probed item is not targeted (it can still be explored at
  random), nor re-taught when the student missed it in the exam.
Within each label a share `explore` of the picks is drawn at random from the whole group, and targeted
picks never share a review text (the same rule in several languages would otherwise fill a label's quota).
"""

from __future__ import annotations

import random
from typing import Sequence

from mentor.records import Example, ExamResult
from mentor.tasks import Task, normalise_text

SIGNALS = ("margin", "nearest", "typical", "consistent")
WRONG_BONUS = 0.25  # how much closer to the front a wrong answer is than a right one at the same margin
NEAREST_WEIGHT = 0.5  # how much a similarity of 1.0 to a mistake moves an item forward, against the margin
TYPICAL_NEIGHBOURS = 20  # typicality: mean cosine similarity to this many nearest items of the same label
AGREEMENT_NEIGHBOURS = 10  # consistency: the labels of this many nearest pool items with another review text
MIN_AGREEMENT = 0.3  # below this share of them sharing its label, an item is neither targeted nor re-taught


def margin(result: ExamResult, task: Task) -> float | None:
    """p(correct label) minus the best other label's p, from the answer's probabilities (None without them)."""
    probs = result.answer.probs
    truth = result.question.output.get(task.label_field or "")
    if not probs or truth not in probs or len(probs) < 2:
        return None
    return probs[truth] - max(p for label, p in probs.items() if label != truth)


def uncertainty(probed: Sequence[ExamResult], task: Task) -> dict[str, float]:
    """Exam priority (lower first) per probed item's key: how close the student is to the decision boundary."""
    out = {}
    for result in probed:
        m = margin(result, task)
        if m is not None:
            out[task.key(result.question.input)] = abs(m)
    return out


def curriculum_priority(task: Task, candidates: Sequence[Example], probed: Sequence[ExamResult],
                        mistakes: Sequence[Example], signals: Sequence[str]) -> dict[str, float]:
    """Curriculum priority (lower first) per candidate key; candidates no signal covers get none (random)."""
    out: dict[str, float] = {}
    if "margin" in signals and probed:
        for result in probed:
            m = margin(result, task)
            if m is not None:
                out[task.key(result.question.input)] = abs(m) - (WRONG_BONUS if m < 0 else 0.0)
    if "nearest" in signals and mistakes:
        # With margins, nearness re-ranks the probed items; alone, it ranks every candidate.
        ranked = [e for e in candidates if task.key(e.input) in out] if out else list(candidates)
        similarity = nearest_mistake_similarity(task, ranked, mistakes)
        for example, sim in zip(ranked, similarity):
            key = task.key(example.input)
            out[key] = out[key] - NEAREST_WEIGHT * sim if key in out else 1.0 - sim
    return out


def _vectors(task: Task, examples: Sequence[Example]):
    """L2-normalised TF-IDF rows of the examples' input fields (so a dot product is a cosine)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["\n".join(str(e.input.get(name, "")) for name in task.input_fields) for e in examples]
    return TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b[\w.]+\b").fit_transform(texts)


def nearest_mistake_similarity(task: Task, candidates: Sequence[Example], mistakes: Sequence[Example]) -> list[float]:
    """Per candidate: the highest TF-IDF cosine similarity to a mistake with the same correct label (to any
    mistake when the task has no labels)."""
    if not candidates or not mistakes:
        return [0.0] * len(candidates)
    vectors = _vectors(task, list(candidates) + list(mistakes))
    cand, miss = vectors[:len(candidates)], vectors[len(candidates):]
    sims = (cand @ miss.T).toarray()
    label = task.label_field
    out = []
    for i, example in enumerate(candidates):
        same = [j for j, m in enumerate(mistakes) if not label or m.output.get(label) == example.output.get(label)]
        out.append(float(sims[i, same].max()) if same else 0.0)
    return out


def label_agreement(task: Task, items: Sequence[Example], source: Sequence[Example]) -> list[float]:
    """Per item: the share of its AGREEMENT_NEIGHBOURS nearest source items (TF-IDF cosine, items with the same
    review text left out: they are the same finding) whose label is the item's label."""
    import numpy as np

    if not items or not source or not task.label_field:
        return [1.0] * len(items)
    label, field = task.label_field, task.input_fields[-1]
    vectors = _vectors(task, list(items) + list(source))
    sims = (vectors[:len(items)] @ vectors[len(items):].T).toarray()
    reviews = np.array([normalise_text(str(e.input.get(field, ""))) for e in source])
    labels = np.array([str(e.output.get(label)) for e in source])
    out = []
    for i, item in enumerate(items):
        row = np.where(reviews == normalise_text(str(item.input.get(field, ""))), -np.inf, sims[i])
        nearest = np.argsort(-row, kind="stable")[:AGREEMENT_NEIGHBOURS]
        nearest = nearest[np.isfinite(row[nearest])]
        out.append(float((labels[nearest] == str(item.output.get(label))).mean()) if len(nearest) else 1.0)
    return out


def typical_priority(task: Task, candidates: Sequence[Example], clusters: int, seed: int) -> dict[str, float]:
    """Cold-start priority (lower first) per candidate key. Within each label the candidates are split into
    `clusters` TF-IDF k-means clusters; each cluster's most typical item (highest mean similarity to its
    nearest neighbours of the label) comes first, largest cluster first, then the rest by typicality."""
    import numpy as np
    from sklearn.cluster import KMeans

    groups: dict[str, list[Example]] = {}
    for example in candidates:
        groups.setdefault(str(example.output.get(task.label_field or "", "")), []).append(example)
    out: dict[str, float] = {}
    for group in groups.values():
        vectors = _vectors(task, group)
        sims = (vectors @ vectors.T).toarray()
        np.fill_diagonal(sims, -1.0)
        k = min(TYPICAL_NEIGHBOURS, len(group) - 1)
        typicality = np.sort(sims, axis=1)[:, -k:].mean(axis=1) if k > 0 else np.ones(len(group))
        n_clusters = max(1, min(clusters, len(group)))
        assignment = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(vectors)
        sizes = np.bincount(assignment, minlength=n_clusters)
        representatives = []
        for cluster in np.flatnonzero(sizes):
            members = np.flatnonzero(assignment == cluster)
            representatives.append((-sizes[cluster], members[np.argmax(typicality[members])]))
        first = {int(i) for _, i in representatives}
        for rank, (_, i) in enumerate(sorted(representatives)):  # largest cluster first
            out[task.key(group[i].input)] = float(rank)
        for i, example in enumerate(group):
            if i not in first:  # after every representative, the most typical first
                out[task.key(example.input)] = n_clusters + 1.0 - float(typicality[i])
    return out


def arrange(task: Task, group: list[Example], priority: dict[str, float], explore: float, rng: random.Random) -> None:
    """Reorder one label's items in place so that any prefix holds about (1 - explore) targeted picks (by
    priority, one per review text) and `explore` random ones (the next not yet taken in the group's order,
    which the caller has shuffled)."""
    if not priority:
        return
    targeted = sorted((e for e in group if task.key(e.input) in priority), key=lambda e: priority[task.key(e.input)])
    reviews: set[str] = set()
    distinct = []
    for example in targeted:
        review = normalise_text(str(example.input.get(task.input_fields[-1], "")))
        if review not in reviews:
            distinct.append(example)
            reviews.add(review)
    out: list[Example] = []
    taken: set[int] = set()
    explored = next_targeted = next_random = 0
    while len(out) < len(group):
        pick = None
        if explored >= explore * (len(out) + 1):
            while next_targeted < len(distinct) and id(distinct[next_targeted]) in taken:
                next_targeted += 1
            if next_targeted < len(distinct):
                pick = distinct[next_targeted]
        if pick is None:  # exploring, or no targeted item left
            while id(group[next_random]) in taken:
                next_random += 1
            pick = group[next_random]
            explored += 1
        out.append(pick)
        taken.add(id(pick))
    group[:] = out
