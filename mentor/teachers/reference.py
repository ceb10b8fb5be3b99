"""The reference teacher: offline, deterministic for a seed, using the data source's labels as truth.

It plays the teacher's part without an LLM so the whole loop runs on a laptop with no network:
- exams sample pool items the student has not been examined on, balanced across labels at first, then
  weighted toward the labels the student got wrong last time;
- grading compares answers exactly, turns the confusion matrix into a proficiency (1 + 9 x balanced
  accuracy) and feedback a person can read, naming the confusions and what the confused items are about;
- the curriculum re-teaches the questions the student got wrong and adds new pool items, allocated across
  labels by the same weakness weights (missed labels and the labels wrongly predicted in their place);
- with item-level signals (the variants "reference:items" and others, mentor.teachers.targeting), items
  within each label are chosen by the student's margin on probed pool items (the exam, too, asks where it
  is least sure) and by nearness to the exam's mistakes, with a share of random exploration; with "typical"
  ("reference:natural-typical") the first round's new items are the most typical of their label instead;
- `label_quota="source"` ("reference:natural") splits exams and curricula across labels in the data
  source's own proportions instead of by weakness, so the student's label prior stays that of real data;
  `label_quota="tempered"` ("reference:tempered") in proportion to the square root of each label's count,
  between the two: rare labels get more examples than real data gives them, without the weakness weights'
  swing toward them;
- `variants` > 1 teaches each new pool item the curriculum picks together with other pool items of the same
  finding (items sharing an input field with it, as `mentor.calibration.twin_groups` groups them: the same
  review on other code), so the student sees a finding more than once in other contexts instead of once.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from typing import Callable, Sequence

from mentor.calibration import twin_groups
from mentor.records import Example, ExamResult, Grade
from mentor.tasks import Task
from mentor.teachers import targeting

UNPARSEABLE = "(unparseable)"
LABEL_QUOTAS = ("weakness", "source", "tempered")
_STOP = set("""a an the and or of to in on for with is are be this that it as by at from not no should
be can could would will into than then there their its if else when while use used using does do was were
may might must which what why how you your we our they them these those has have had been being also
only just more most very so such any all each per via one two code value values method function""".split())


class ReferenceTeacher:
    needs_labels = True

    def __init__(self, seed: int = 0, signals: Sequence[str] = (), probe_size: int = 0, explore: float = 0.25,
                 label_quota: str = "weakness", name: str = "reference", variants: int = 1):
        unknown = set(signals) - set(targeting.SIGNALS)
        if unknown:
            raise ValueError(f"unknown targeting signal(s) {sorted(unknown)}; known: {', '.join(targeting.SIGNALS)}")
        if label_quota not in LABEL_QUOTAS:
            raise ValueError(f"label_quota must be one of {', '.join(LABEL_QUOTAS)}, got {label_quota!r}")
        self.label_quota = label_quota
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"teacher.explore must be between 0 and 1, got {explore}")
        if variants < 1:
            raise ValueError(f"teacher.variants must be at least 1, got {variants}")
        self.seed, self.signals, self.explore, self.name, self.variants = seed, tuple(signals), explore, name, variants
        self.probe_size = probe_size if "margin" in self.signals else 0

    def _rng(self, purpose: str, round_no: int) -> random.Random:
        return random.Random(f"{self.seed}:{purpose}:{round_no}")

    # ---- step 1: the exam ------------------------------------------------------------------

    def write_exam(self, task: Task, source: list[Example], n: int, previous: Grade | None,
                   avoid: set[str], round_no: int, probed: Sequence[ExamResult] = ()) -> list[Example]:
        fresh = [e for e in source if task.key(e.input) not in avoid]
        weights = self._label_weights(task, source, (previous.detail.get("weights") if previous else None) or {})
        unsure = targeting.uncertainty(probed, task) if "margin" in self.signals else {}
        return _sample_by_label(task, fresh, n, weights, self._rng("exam", round_no), self._arranger(task, unsure))

    def _label_weights(self, task: Task, source: list[Example], weakness: dict[str, float]) -> dict[str, float]:
        """How exams and curricula split across labels: by weakness, as the data source does, or tempered."""
        if self.label_quota == "weakness" or not task.label_field:
            return weakness
        counts = Counter(e.output.get(task.label_field) for e in source)
        power = 0.5 if self.label_quota == "tempered" else 1.0
        return {label: float(counts[label]) ** power for label in task.labels if counts[label]}

    def _arranger(self, task: Task, priority: dict[str, float],
                  finding: dict[str, int] | None = None) -> Callable[[list[Example], random.Random], None]:
        def arrange(group: list[Example], rng: random.Random) -> None:
            _heavier_first(group, rng)
            targeting.arrange(task, group, priority, self.explore, rng)
            if finding is not None:
                _variants_together(task, group, finding, self.variants)
        return arrange

    # ---- steps 3 and 4: grade and write the curriculum -----------------------------------------

    def grade(self, task: Task, results: list[ExamResult], source: list[Example], n_new: int,
              avoid: set[str], round_no: int, probed: Sequence[ExamResult] = ()) -> Grade:
        if not results:
            return Grade(1, "No exam questions were answered, so there is nothing to grade.", [], {})
        proficiency, feedback, detail = assess(task, results, source)

        # Re-teach the missed questions first (the student has seen them, the holdout never), then new items.
        rng = self._rng("curriculum", round_no)
        missed = [r.question for r in results if not r.correct]
        rng.shuffle(missed)
        agreement: dict[str, float] = {}
        if "consistent" in self.signals:  # one neighbourhood look-up for the exam's mistakes and the probed items
            checked = missed + [p.question for p in probed]
            agreement = dict(zip((task.key(e.input) for e in checked), targeting.label_agreement(task, checked, source)))

        def consistent(key: str) -> bool:  # an item whose neighbours' labels disagree is neither taught nor re-taught
            return agreement.get(key, 1.0) >= targeting.MIN_AGREEMENT

        dataset = [e for e in missed if consistent(task.key(e.input))]
        inconsistent = len(missed) - len(dataset)
        dataset = dataset[:n_new]
        taken = avoid | {task.key(e.input) for e in dataset} | {task.key(r.question.input) for r in results}
        extra = [e for e in source if task.key(e.input) not in taken]
        if "typical" in self.signals and round_no == 1:  # the untuned student: a cold start by typicality
            priority = targeting.typical_priority(task, extra, clusters=n_new, seed=self.seed)
        else:
            priority = targeting.curriculum_priority(task, extra, [p for p in probed if task.key(p.question.input) not in taken],
                                                     missed, self.signals)
        kept = {key: value for key, value in priority.items() if consistent(key)}
        inconsistent, priority = inconsistent + len(priority) - len(kept), kept
        weights = self._label_weights(task, source, detail["weights"])
        finding = None
        if self.variants > 1:
            finding = {task.key(e.input): g for e, g in zip(extra, twin_groups(task, extra))}
        dataset += _sample_by_label(task, extra, n_new - len(dataset), weights, rng,
                                    self._arranger(task, priority, finding))
        dataset = [Example(e.input, e.output, source=f"teacher:{e.source or 'pool'}", meta=e.meta) for e in dataset]
        detail["targeting"] = {"signals": list(self.signals), "probed": len(probed), "ranked": len(priority),
                               "explore": self.explore, "label_quota": self.label_quota, "variants": self.variants,
                               "inconsistent": inconsistent}
        return Grade(proficiency, feedback, dataset, detail)


def assess(task: Task, results: list[ExamResult], source: list[Example]) -> tuple[int, str, dict]:
    """(proficiency 1-10, feedback, detail) for graded exam results: what every offline teacher reports.
    Proficiency is 1 + 9 x balanced accuracy; detail holds the confusion, recall and weakness weights."""
    confusion: dict[str, Counter] = defaultdict(Counter)
    wrong_by_pair: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for result in results:
        truth = _label(task, result.question.output)
        said = _label(task, result.answer.parsed) if result.answer.parsed else UNPARSEABLE
        if not task.label_field:
            said = truth if result.correct else "wrong"
        confusion[truth][said] += 1
        if not result.correct:
            wrong_by_pair[(truth, said)].append(result.question)
    labels = list(task.labels) or sorted(confusion)
    recall = {lab: confusion[lab][lab] / sum(confusion[lab].values()) for lab in labels if confusion[lab]}
    balanced = sum(recall.values()) / len(recall)
    proficiency = max(1, min(10, 1 + round(9 * balanced)))
    correct = sum(r.correct for r in results)
    weights = _weakness_weights(labels, confusion)
    feedback = _feedback(task, results, source, correct, recall, confusion, wrong_by_pair, proficiency)
    detail = {"confusion": {t: dict(c) for t, c in confusion.items()}, "recall": recall, "weights": weights,
              "correct": correct, "n": len(results)}
    return proficiency, feedback, detail


def _label(task: Task, output: dict[str, str] | None) -> str:
    if not output:
        return UNPARSEABLE
    if task.label_field:
        return output.get(task.label_field, UNPARSEABLE)
    return "answer"


def _weakness_weights(labels: list[str], confusion: dict[str, Counter]) -> dict[str, float]:
    """Per label: a floor, plus its miss rate, plus half the rate at which it was wrongly predicted."""
    total = sum(sum(c.values()) for c in confusion.values()) or 1
    weights = {}
    for lab in labels:
        seen = sum(confusion[lab].values())
        miss = (seen - confusion[lab][lab]) / seen if seen else 0.5
        false_pos = sum(c[lab] for t, c in confusion.items() if t != lab) / total
        weights[lab] = round(0.25 + miss + 0.5 * false_pos * len(labels), 4)
    return weights


def _sample_by_label(task: Task, items: list[Example], n: int, weights: dict[str, float], rng: random.Random,
                     arrange: Callable[[list[Example], random.Random], None] | None = None) -> list[Example]:
    """n items, spread across labels in proportion to `weights` (equal when empty), topped up from the rest.
    Within a label the first items of its shuffled group are taken; `arrange` reorders a group first
    (default: items carrying a feedback weight tend to come first)."""
    if n <= 0 or not items:
        return []
    arrange = arrange or _heavier_first
    if not task.label_field:
        group = list(items)
        rng.shuffle(group)
        arrange(group, rng)
        return group[:n]
    by_label: dict[str, list[Example]] = defaultdict(list)
    for item in items:
        by_label[item.output[task.label_field]].append(item)
    for group in by_label.values():
        rng.shuffle(group)
        arrange(group, rng)
    weight = {lab: weights.get(lab, 1.0) for lab in task.labels if by_label[lab]}
    total = sum(weight.values())
    quota = {lab: int(n * w / total) for lab, w in weight.items()}
    # Hand out the rounding remainder to the heaviest labels first.
    for lab in sorted(weight, key=lambda k: -weight[k])[: n - sum(quota.values())]:
        quota[lab] += 1
    chosen: list[Example] = []
    for lab, k in quota.items():
        chosen += by_label[lab][:k]
        del by_label[lab][:k]
    leftovers = [e for lab in task.labels for e in by_label[lab]]
    rng.shuffle(leftovers)
    _heavier_first(leftovers, rng)
    chosen += leftovers[: n - len(chosen)]
    rng.shuffle(chosen)
    return chosen


def _variants_together(task: Task, group: list[Example], finding: dict[str, int], variants: int) -> None:
    """Reorder one label's arranged items in place so that each finding's first item is followed by up to
    `variants` - 1 more of the same finding; the finding's items beyond that go to the end. Taking the first k
    items then teaches about k / variants findings, each in up to `variants` contexts."""
    members: dict[int, list[Example]] = defaultdict(list)
    for item in group:
        members[finding[task.key(item.input)]].append(item)
    together: list[Example] = []
    later: list[Example] = []
    for item in group:
        same = members.pop(finding[task.key(item.input)], None)
        if same is not None:
            together += same[:variants]
            later += same[variants:]
    group[:] = together + later


def _heavier_first(items: list[Example], rng: random.Random) -> None:
    """Reorder in place so items whose record carries a `weight` above 1 (a developer's corrected feedback)
    tend to come first: weighted sampling without replacement (Efraimidis-Spirakis keys u ** (1 / w)).
    Leaves the order alone when no item has a weight, so unweighted data samples exactly as before."""
    weights = [_item_weight(e) for e in items]
    if all(w == 1.0 for w in weights):
        return
    keys = [rng.random() ** (1.0 / w) for w in weights]
    items[:] = [e for _, e in sorted(zip(keys, items), key=lambda pair: -pair[0])]


def _item_weight(item: Example) -> float:
    value = item.meta.get("weight", 1.0)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 1.0


def _feedback(task: Task, results: list[ExamResult], source: list[Example], correct: int, recall: dict[str, float],
              confusion: dict[str, Counter], wrong_by_pair: dict[tuple[str, str], list[Example]], proficiency: int) -> str:
    n = len(results)
    parts = [f"Proficiency {proficiency}/10: {correct} of {n} correct ({100 * correct / n:.0f}%)."]
    if task.label_field:
        strong = [f"{lab} ({confusion[lab][lab]}/{sum(confusion[lab].values())})" for lab, r in recall.items() if r >= 0.75]
        weak = [f"{lab} ({confusion[lab][lab]}/{sum(confusion[lab].values())})" for lab, r in recall.items() if r < 0.5]
        if strong:
            parts.append("Strong on " + ", ".join(strong) + ".")
        if weak:
            parts.append("Weak on " + ", ".join(weak) + ".")
    pairs = sorted(wrong_by_pair.items(), key=lambda kv: -len(kv[1]))[:3]
    for (truth, said), items in pairs:
        about = _themes(task, items, source)
        where = f" on {about}" if about else ""
        if said == UNPARSEABLE:
            parts.append(f"Gave no usable answer on {len(items)} {truth} item(s){where}.")
        elif task.label_field:
            parts.append(f"Confuses {truth} with {said}{where} ({len(items)} item(s)).")
        else:
            parts.append(f"Wrong on {len(items)} item(s){where}.")
    unparseable = sum(1 for r in results if r.answer.parsed is None)
    if unparseable:
        parts.append(f"{unparseable} answer(s) could not be parsed.")
    return " ".join(parts)


def _themes(task: Task, items: list[Example], source: list[Example], k: int = 3) -> str:
    """What the confused items are about: their topics when the data names them, else their most
    distinctive words (frequent in these items, rare in the data source)."""
    by_key = {task.key(e.input): e for e in source}
    metas = [(by_key.get(task.key(e.input)) or e).meta.get("meta") for e in items]
    topics = Counter(str(m.get("topic", "")) for m in metas if isinstance(m, dict))
    topics.pop("", None)
    if topics:
        return ", ".join(t for t, _ in topics.most_common(k))
    field = task.input_fields[-1]  # the last input field is the most descriptive in our tasks (the review)

    def words(example: Example) -> set[str]:
        return {w for w in re.findall(r"[a-z][a-z\-]{2,}", example.input.get(field, "").lower()) if w not in _STOP}

    here = Counter(w for e in items for w in words(e))
    everywhere = Counter(w for e in source for w in words(e))
    lift = {w: (c / len(items)) / ((everywhere[w] + 1) / (len(source) + 1)) for w, c in here.items() if c >= 2 or len(items) == 1}
    return ", ".join(f"'{w}'" for w in sorted(lift, key=lambda w: (-lift[w], w))[:k])
