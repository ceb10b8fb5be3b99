"""Vetting what an LLM teacher writes before the loop sees it; every rejection is counted, none is fixed up.

- Shape: an item is `{"question": {...input fields...}, "answer": {...output fields...}}`; labels are
  normalised ("Major" -> "major") and everything is checked with `Task.validate_example` (fields present,
  non-empty strings, the label in the set, length limits).
- Duplicates: the exact normalised key, and near-duplicates (every input field's character 5-gram Jaccard
  similarity at or above a threshold), against `avoid` (the holdout, earlier exams and curricula: a key is
  the normalised text of the input fields, so it carries what near-duplicate detection needs) and against
  what was already accepted.
- Label balance: the most balanced selection of N items, and a test for an exam that is badly skewed.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, Iterable

from mentor.data import label_counts
from mentor.records import Example
from mentor.tasks import Task

SHINGLE = 5


def to_example(task: Task, item: Any, source: str) -> tuple[Example | None, str | None]:
    """An Example from one teacher item, or the reason it is unusable."""
    if not isinstance(item, dict) or not isinstance(item.get("question"), dict) or not isinstance(item.get("answer"), dict):
        return None, 'not an object with "question" and "answer" objects'
    output = dict(item["answer"])
    if task.label_field is not None:
        output[task.label_field] = task.normalise_label(output.get(task.label_field)) or output.get(task.label_field)
    example = Example(input=item["question"], output=output, source=source)
    problem = task.validate_example(example)
    if problem:
        return None, problem
    return Example({k: example.input[k] for k in task.input_fields}, {k: output[k] for k in task.output_fields},
                   source=source), None


class Vetter:
    """Admits teacher items one at a time; `counts` says what happened to each, `problems` why items were invalid."""

    def __init__(self, task: Task, avoid: Iterable[str], near_threshold: float) -> None:
        self.task = task
        self.seen: set[str] = set(avoid)
        self.near = NearIndex(near_threshold, self.seen)
        self.counts: Counter = Counter()
        self.problems: Counter = Counter()

    def admit(self, item: Any, source: str) -> Example | None:
        example, problem = to_example(self.task, item, source)
        if example is None:
            self.counts["invalid"] += 1
            self.problems[problem] += 1
            return None
        key = self.task.key(example.input)
        if key in self.seen:
            self.counts["duplicate"] += 1
            return None
        if self.near.matches(key):
            self.counts["near_duplicate"] += 1
            return None
        self.seen.add(key)
        self.near.add(key)
        self.counts["kept"] += 1
        return example

    def report(self) -> dict[str, Any]:
        return {**{k: self.counts.get(k, 0) for k in ("kept", "invalid", "duplicate", "near_duplicate")},
                "problems": dict(self.problems.most_common(5))}


class NearIndex:
    """Near-duplicate lookup by character shingles with prefix filtering: exact for the threshold, but
    compares a new key only with keys that share one of its rarest shingles."""

    def __init__(self, threshold: float, keys: Iterable[str] = ()) -> None:
        self.threshold = threshold if 0 < threshold <= 1 else 0.0
        self.items: list[tuple[list[frozenset[int]], int]] = []
        self.postings: dict[int, list[int]] = defaultdict(list)
        keys = list(keys) if self.threshold else []
        sets = [_shingle_sets(key) for key in keys]
        # Rare shingles first: prefixes then hold few common ones, so few candidates share them. The order
        # is fixed here, once, as prefix filtering needs (shingles never seen here sort first).
        self.frequency: Counter = Counter(h for fields in sets for h in frozenset().union(*fields))
        for fields in sets:
            self._add(fields)

    def add(self, key: str) -> None:
        if self.threshold:
            self._add(_shingle_sets(key))

    def _add(self, fields: list[frozenset[int]]) -> None:
        union, prefix = self._prefix(fields)
        for h in prefix:
            self.postings[h].append(len(self.items))
        self.items.append((fields, len(union)))

    def matches(self, key: str) -> bool:
        if not self.threshold:
            return False
        fields = _shingle_sets(key)
        union, prefix = self._prefix(fields)
        low, high = self.threshold * len(union), len(union) / self.threshold
        for i in {i for h in prefix for i in self.postings.get(h, ())}:
            other, size = self.items[i]
            # Jaccard >= t is impossible when one set is much larger than the other.
            if low <= size <= high and len(other) == len(fields) and all(
                    _jaccard(a, b) >= self.threshold for a, b in zip(fields, other)):
                return True
        return False

    def _prefix(self, fields: list[frozenset[int]]) -> tuple[list[int], list[int]]:
        # If every field is at least t-similar, so is the union of the field-tagged sets; two sets with
        # Jaccard >= t share an element within their first |S| - ceil(t|S|) + 1 elements in any fixed order.
        union = sorted(frozenset().union(*fields), key=lambda h: (self.frequency.get(h, 0), h))
        return union, union[: len(union) - math.ceil(self.threshold * len(union)) + 1]


def _shingle_sets(key: str) -> list[frozenset[int]]:
    out = []
    for index, text in enumerate(key.split("\x1f")):
        grams = {text[i:i + SHINGLE] for i in range(max(1, len(text) - SHINGLE + 1))}
        out.append(frozenset(hash((index, g)) for g in grams))
    return out


def _jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


# ---- label balance ----------------------------------------------------------------------------------

def balanced(task: Task, items: list[Example], n: int) -> list[Example]:
    """The n items with the most even label spread (taking labels in turn), in their original order."""
    if task.label_field is None or len(items) <= n:
        return items[:n]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[item.output[task.label_field]].append(i)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n:
        for label in task.labels:
            if depth < len(groups[label]) and len(chosen) < n:
                chosen.append(groups[label][depth])
        depth += 1
    return [items[i] for i in sorted(chosen)]


def skew(task: Task, items: list[Example], max_ratio: float) -> dict[str, int] | None:
    """The label counts when some label has more than max_ratio times its fair share, or less than
    1/max_ratio of it; None when the spread is acceptable (or there are no labels to balance)."""
    if task.label_field is None or not items or max_ratio <= 1:
        return None
    counts = label_counts(items, task)
    fair = len(items) / len(task.labels)
    if any(c > fair * max_ratio or c < fair / max_ratio for c in counts.values()):
        return counts
    return None


def deficits(task: Task, items: list[Example], n: int) -> dict[str, int]:
    """How many more items of each label an exam of n needs to give every label its fair share."""
    fair = math.ceil(n / len(task.labels))
    counts = label_counts(items, task)
    return {label: fair - counts[label] for label in task.labels if counts[label] < fair}
