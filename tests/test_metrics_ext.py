"""The extended metrics agree with scikit-learn on fixed inputs; the bootstrap is seeded and reproducible."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, recall_score

from mentor.metrics import UNPARSEABLE, bootstrap_ci, bootstrap_mean_ci, classification_report, ordinal_metrics

LABELS = ["critical", "major", "minor", "trivial"]


def _fixed(n: int = 120, seed: int = 3) -> tuple[list[str], list[str | None]]:
    rng = random.Random(seed)
    truths = [rng.choice(LABELS) for _ in range(n)]
    preds = [t if rng.random() < 0.55 else rng.choice(LABELS + [None]) for t in truths]
    return truths, preds


def test_report_keeps_its_keys_and_matches_sklearn():
    truths, preds = _fixed()
    report = classification_report(LABELS, truths, preds)
    assert {"accuracy", "macro_f1", "per_class", "confusion", "n", "unparseable"} <= set(report)
    scored = [p if p in LABELS else UNPARSEABLE for p in preds]
    assert report["accuracy"] == pytest.approx(accuracy_score(truths, scored))
    assert report["macro_f1"] == pytest.approx(f1_score(truths, scored, labels=LABELS, average="macro", zero_division=0))
    assert report["critical_recall"] == pytest.approx(recall_score(truths, scored, labels=["critical"], average="macro"))
    assert report["unparseable"] == preds.count(None) > 0


def test_qwk_and_within_one_without_unparseable_answers_match_sklearn():
    truths, preds = _fixed()
    preds = [p or "trivial" for p in preds]
    got = ordinal_metrics(LABELS, truths, preds)
    t = [LABELS.index(x) for x in truths]
    p = [LABELS.index(x) for x in preds]
    assert got["qwk"] == pytest.approx(cohen_kappa_score(t, p, weights="quadratic"))
    assert got["within_one"] == pytest.approx(np.mean(np.abs(np.array(t) - np.array(p)) <= 1))


def test_unparseable_answers_count_as_farthest_level():
    truths = ["critical", "trivial", "major", "minor"]
    got = ordinal_metrics(LABELS, truths, [None, None, "major", "minor"])
    farthest = [3, 0, 1, 2]
    assert got["qwk"] == pytest.approx(cohen_kappa_score([0, 3, 1, 2], farthest, weights="quadratic"))
    assert got["within_one"] == 0.5  # an unparseable answer is never "within one level"
    assert got["critical_recall"] == 0.0


def test_ordinal_figures_on_a_hand_checked_case():
    got = ordinal_metrics(LABELS, ["critical", "critical", "major", "trivial"], ["critical", "minor", "minor", "trivial"])
    assert got["critical_recall"] == 0.5
    assert got["within_one"] == 0.75  # critical -> minor is two levels off
    assert ordinal_metrics(LABELS, ["major"], ["major"])["critical_recall"] is None  # no critical items: undefined


def test_each_bootstrap_resample_equals_sklearn_on_that_resample():
    truths, preds = _fixed(60)
    scored = [p if p in LABELS else UNPARSEABLE for p in preds]
    resamples, seed = 25, 11
    ci = bootstrap_ci(LABELS, truths, scored, resamples=resamples, seed=seed)
    draws = np.random.default_rng(seed).integers(0, len(truths), size=(resamples, len(truths)))
    accs = [accuracy_score([truths[i] for i in d], [scored[i] for i in d]) for d in draws]
    f1s = [f1_score([truths[i] for i in d], [scored[i] for i in d], labels=LABELS, average="macro", zero_division=0)
           for d in draws]
    assert ci["accuracy"] == pytest.approx(list(np.percentile(accs, [2.5, 97.5])))
    assert ci["macro_f1"] == pytest.approx(list(np.percentile(f1s, [2.5, 97.5])))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    truths, preds = _fixed(200)
    first = classification_report(LABELS, truths, preds)
    again = classification_report(LABELS, truths, preds)
    assert first["ci"] == again["ci"]
    other = bootstrap_ci(LABELS, truths, [p or UNPARSEABLE for p in preds], seed=1)
    assert other["accuracy"] != first["ci"]["accuracy"]
    for key in ("accuracy", "macro_f1"):
        low, high = first["ci"][key]
        assert low < first[key] < high
        assert high - low < 0.3


def test_bootstrap_mean_ci():
    values = [1] * 30 + [0] * 50 + [-1] * 20
    low, high = bootstrap_mean_ci(values, seed=0)
    assert low < 0.1 < high
    assert bootstrap_mean_ci(values, seed=0) == [low, high]
    assert bootstrap_mean_ci([]) is None


def test_empty_report():
    assert classification_report(LABELS, [], [])["ci"] is None


def test_paired_bootstrap_of_a_system_against_itself_and_a_better_one():
    from mentor.metrics import paired_bootstrap

    truths = ["critical", "major", "minor", "trivial"] * 25
    weak = ["trivial"] * 100
    same = paired_bootstrap(LABELS, truths, weak, weak, resamples=200, seed=1)
    assert same["macro_f1_diff"] == 0.0 and same["ci"] == [0.0, 0.0] and same["share_higher"] == 0.0
    better = truths[:80] + weak[:20]
    result = paired_bootstrap(LABELS, truths, weak, better, resamples=200, seed=1)
    expected = f1_score(truths, better, labels=LABELS, average="macro", zero_division=0) - \
        f1_score(truths, weak, labels=LABELS, average="macro", zero_division=0)
    assert result["macro_f1_diff"] == pytest.approx(expected)
    assert result["ci"][0] > 0 and result["share_higher"] == 1.0


def test_paired_bootstrap_draws_whole_findings_when_items_share_one():
    from mentor.metrics import paired_bootstrap

    # 40 findings, each the same review on 4 snippets: a finding is all right or all wrong together.
    rng = random.Random(5)
    finding_labels = [rng.choice(LABELS) for _ in range(40)]
    right_a = [rng.random() < 0.6 for _ in range(40)]
    right_b = [rng.random() < 0.6 for _ in range(40)]

    def answers(right: list[bool]) -> list[str]:
        return [lab if ok else LABELS[(LABELS.index(lab) + 1) % 4] for lab, ok in zip(finding_labels, right) for _ in range(4)]

    truths = [lab for lab in finding_labels for _ in range(4)]
    groups = [i for i in range(40) for _ in range(4)]
    a, b = answers(right_a), answers(right_b)
    by_item = paired_bootstrap(LABELS, truths, a, b, resamples=400, seed=2)
    by_finding = paired_bootstrap(LABELS, truths, a, b, resamples=400, seed=2, groups=groups)
    assert by_item["unit"] == "item" and by_finding["unit"] == "finding" and by_finding["groups"] == 40
    assert by_finding["macro_f1_diff"] == by_item["macro_f1_diff"]  # the point estimate does not depend on it
    width = lambda r: r["ci"][1] - r["ci"][0]  # noqa: E731
    assert width(by_finding) > 1.5 * width(by_item)  # about twice as wide: 40 independent units, not 160
    # Every item its own finding: exactly the item bootstrap.
    assert paired_bootstrap(LABELS, truths, a, b, resamples=400, seed=2, groups=list(range(160))) == by_item
    with pytest.raises(ValueError, match="3 groups for 160 items"):
        paired_bootstrap(LABELS, truths, a, b, groups=[0, 1, 2])
