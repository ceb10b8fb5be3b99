"""Item-level targeting and its control: the random teacher ignores the grade; the reference teacher picks
the items the student gets wrong or is least sure of, items like its exam mistakes, and explores."""

import random
from collections import Counter

from mentor.config import load_config
from mentor.records import Answer, Example, ExamResult
from mentor.runner import open_store, start_run
from mentor.tasks import SEVERITY
from mentor.teachers import make_teacher
from mentor.teachers.random import RandomTeacher
from mentor.teachers.reference import ReferenceTeacher
from mentor.teachers.targeting import arrange, curriculum_priority, margin
from tests.conftest import make_examples, write_jsonl

LABELS = SEVERITY.labels


def _answer(question: Example, said: str, confidence: float) -> ExamResult:
    rest = (1 - confidence) / (len(LABELS) - 1)
    probs = {label: confidence if label == said else rest for label in LABELS}
    return ExamResult(question, Answer(said, {"issue_type": said}, probs), said == question.output["issue_type"])


def _wrong_label(example: Example) -> str:
    return next(label for label in LABELS if label != example.output["issue_type"])


def _skewed_pool() -> list[Example]:
    """Like real findings: half of them trivial."""
    pool = make_examples(60, "pool")
    counts: Counter = Counter()
    kept = []
    for e in pool:
        label = e.output["issue_type"]
        if label == "trivial" or counts[label] < 20:
            kept.append(e)
            counts[label] += 1
    return kept  # 60 trivial, 20 of each other label


def test_random_teacher_draws_uniformly_and_ignores_the_grade():
    pool = _skewed_pool()
    teacher = RandomTeacher(seed=3)
    exam = teacher.write_exam(SEVERITY, pool, 40, None, set(), 1)
    # Uniform over a half-trivial pool, where the reference teacher balances labels.
    assert Counter(q.output["issue_type"] for q in exam)["trivial"] > 10
    assert set(Counter(q.output["issue_type"] for q in ReferenceTeacher(seed=3).write_exam(SEVERITY, pool, 40, None, set(), 1)).values()) == {10}
    all_right = [_answer(q, q.output["issue_type"], 0.9) for q in exam]
    all_wrong = [_answer(q, _wrong_label(q), 0.9) for q in exam]
    right, wrong = teacher.grade(SEVERITY, all_right, pool, 30, set(), 1), teacher.grade(SEVERITY, all_wrong, pool, 30, set(), 1)
    assert right.dataset == wrong.dataset and len(right.dataset) == 30
    assert right.proficiency > wrong.proficiency  # the grade is recorded, just never used
    # The next exam does not depend on the grade either.
    assert teacher.write_exam(SEVERITY, pool, 20, right, set(), 2) == teacher.write_exam(SEVERITY, pool, 20, wrong, set(), 2)
    assert "weights" not in right.detail


def test_random_teacher_respects_avoid_and_is_built_by_name():
    pool = make_examples(10, "pool")
    avoid = {SEVERITY.key(e.input) for e in pool[:30]}
    teacher = make_teacher(load_config(overrides=["teacher.name=random"]).teacher, seed=0)
    grade = teacher.grade(SEVERITY, [], pool, 100, avoid, 1)
    assert len(grade.dataset) == 10 and not {SEVERITY.key(e.input) for e in grade.dataset} & avoid


def test_curriculum_picks_the_probed_items_the_student_gets_wrong_first():
    pool = make_examples(12, "pool")
    by_label = {label: [e for e in pool if e.output["issue_type"] == label] for label in LABELS}
    probed_items = [e for label in LABELS for e in by_label[label][:6]]
    wrong = {SEVERITY.key(e.input) for label in LABELS for e in by_label[label][:2]}
    probed = [_answer(e, _wrong_label(e), 0.4) if SEVERITY.key(e.input) in wrong else _answer(e, e.output["issue_type"], 0.95)
              for e in probed_items]
    exam = [e for label in LABELS for e in by_label[label][6:]]
    results = [_answer(q, q.output["issue_type"], 0.9) for q in exam]  # a perfect exam: nothing to re-teach
    teacher = ReferenceTeacher(seed=0, signals=("margin",), probe_size=24, explore=0.0)
    grade = teacher.grade(SEVERITY, results, pool, 8, set(), 1, probed)
    picked = {SEVERITY.key(e.input) for e in grade.dataset}
    assert len(picked) == 8 and picked <= wrong
    # A label-only teacher, or one that explores everything, does not single them out.
    labels_only = ReferenceTeacher(seed=0, signals=(), explore=0.0).grade(SEVERITY, results, pool, 8, set(), 1, probed)
    assert {SEVERITY.key(e.input) for e in labels_only.dataset} != picked
    assert grade.detail["targeting"] == {"signals": ["margin"], "probed": 24, "ranked": 24, "explore": 0.0,
                                           "label_quota": "weakness", "variants": 1, "inconsistent": 0}


def test_unsure_items_come_before_confidently_wrong_ones():
    q = make_examples(1, "q")
    unsure_right = _answer(q[0], q[0].output["issue_type"], 0.3)  # barely right
    sure_wrong = _answer(q[1], _wrong_label(q[1]), 0.95)
    sure_right = _answer(q[2], q[2].output["issue_type"], 0.95)
    unsure_wrong = _answer(q[3], _wrong_label(q[3]), 0.3)
    assert margin(sure_wrong, SEVERITY) < 0 < margin(unsure_right, SEVERITY)
    priority = curriculum_priority(SEVERITY, q, [unsure_right, sure_wrong, sure_right, unsure_wrong], [], ("margin",))
    order = sorted(priority, key=priority.get)
    keys = [SEVERITY.key(r.question.input) for r in (unsure_wrong, unsure_right, sure_wrong, sure_right)]
    assert order == keys


def test_nearest_signal_prefers_items_like_the_exam_mistakes():
    def item(review: str, i: int) -> Example:
        return Example({"code": f"x = f({i})", "review": review}, {"issue_type": "critical"})
    sql = [item(f"user input reaches the SQL query string, injection risk {i}", i) for i in range(6)]
    overflow = [item(f"buffer copied without bounds check, memory overflow {i}", 10 + i) for i in range(6)]
    mistake = item("SQL query string built from user input: injection", 99)
    exam = [_answer(mistake, "trivial", 0.9)]
    teacher = ReferenceTeacher(seed=0, signals=("nearest",), explore=0.0)
    grade = teacher.grade(SEVERITY, exam, overflow + sql, 4, set(), 1)
    reviews = [e.input["review"] for e in grade.dataset]
    assert reviews[0] == mistake.input["review"]  # the missed question is re-taught first
    assert all("injection" in r for r in reviews[1:])


def test_arrange_explores_and_never_repeats_a_review_among_targeted_picks():
    group = [Example({"code": f"c{i}", "review": "same review" if i < 5 else f"review {i}"}, {"issue_type": "minor"}) for i in range(20)]
    priority = {SEVERITY.key(e.input): i for i, e in enumerate(group)}  # lower index = more wanted
    shuffled = list(group)
    random.Random(0).shuffle(shuffled)
    arranged = list(shuffled)
    arrange(SEVERITY, arranged, priority, 0.5, random.Random(0))
    assert sorted(map(id, arranged)) == sorted(map(id, group))
    targeted = [e for i, e in enumerate(arranged[:10]) if i % 2 == 1]  # explore=0.5: random, targeted, random, ...
    ranks = [priority[SEVERITY.key(e.input)] for e in targeted]
    assert ranks == sorted(ranks) and sum(e.input["review"] == "same review" for e in targeted) <= 1
    greedy = list(shuffled)
    arrange(SEVERITY, greedy, priority, 0.0, random.Random(0))
    assert [e.input["code"] for e in greedy[:16]] == ["c0"] + [f"c{i}" for i in range(5, 20)]


def test_a_run_with_the_reference_teacher_probes_the_pool_each_round(tmp_path, home):
    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(30, "pool"))
    hold = write_jsonl(tmp_path / "hold.jsonl", make_examples(5, "hold", seed=1))
    config = load_config(overrides=[f"data.pool={pool}", f"data.holdout={hold}", "student.model=scripted",
                                    "teacher.name=reference:items", "teacher.exam_size=12", "teacher.new_examples=16",
                                    "teacher.probe=25",
                                    "loop.rounds=2", "loop.patience=5"])
    run_id = start_run(config)["run_id"]
    store = open_store()
    holdout_keys = {SEVERITY.key(e.input) for e in make_examples(5, "hold", seed=1)}
    for round_no in (1, 2):
        probed = store.probes(run_id, round_no)
        assert len(probed) == 25 and all(answer.probs for _, answer, _ in probed)
        assert not {SEVERITY.key(e.input) for e, _, _ in probed} & holdout_keys
        assert "probe" in store.done_steps(run_id, round_no)
    # Round 2 probes items the run has not examined or taught yet.
    seen = {SEVERITY.key(e.input) for e in store.curriculum(run_id, 1)} | {SEVERITY.key(q.input) for q, _, _ in store.exam(run_id, 1)}
    assert not {SEVERITY.key(e.input) for e, _, _ in store.probes(run_id, 2)} & seen
    from mentor.summary import round_table, run_overview
    table = round_table(run_overview(store, run_id))
    assert "s probe" in [c.header for c in table.columns]


def test_natural_single_signal_variants_keep_the_source_mix_with_one_signal():
    for name, signals, probes in (("reference:natural-margin", ("margin",), True),
                                  ("reference:natural-nearest", ("nearest",), False)):
        teacher = make_teacher(load_config(overrides=[f"teacher.name={name}"]).teacher, seed=0)
        assert (teacher.label_quota, tuple(teacher.signals), teacher.probe_size > 0) == ("source", signals, probes)


def test_natural_label_quota_follows_the_data_source():
    pool = _skewed_pool()  # half trivial
    teacher = make_teacher(load_config(overrides=["teacher.name=reference:natural"]).teacher, seed=0)
    assert teacher.label_quota == "source" and teacher.probe_size > 0
    exam = teacher.write_exam(SEVERITY, pool, 40, None, set(), 1)
    counts = Counter(q.output["issue_type"] for q in exam)
    assert abs(counts["trivial"] - 20) <= 1 and all(abs(counts[label] - 40 / 6) <= 1 for label in ("critical", "major", "minor"))
    results = [_answer(q, _wrong_label(q) if q.output["issue_type"] == "major" else q.output["issue_type"], 0.9) for q in exam]
    grade = teacher.grade(SEVERITY, results, pool, 30, set(), 1)
    new = [e for e in grade.dataset if SEVERITY.key(e.input) not in {SEVERITY.key(q.input) for q in exam}]
    labels = Counter(e.output["issue_type"] for e in new)
    assert labels["trivial"] >= max(labels["critical"], labels["minor"], labels["major"])  # not tilted toward "major"


def test_each_teacher_names_the_settings_it_never_reads():
    from mentor.teachers import unused_settings

    assert unused_settings("random") == {"probe", "explore", "variants"} == unused_settings("openai:gpt-4o-mini")
    assert unused_settings("reference") == {"probe", "explore"}  # it reads teacher.variants
    assert unused_settings("reference:natural") == set() and unused_settings("reference:natural-nearest") == {"probe"}


def test_tempered_label_quota_splits_by_the_square_root_of_the_source_counts():
    pool = _skewed_pool()  # trivial three times as common as each other label
    teacher = make_teacher(load_config(overrides=["teacher.name=reference:tempered"]).teacher, seed=0)
    assert teacher.label_quota == "tempered" and teacher.probe_size > 0
    exam = teacher.write_exam(SEVERITY, pool, 40, None, set(), 1)
    counts = Counter(q.output["issue_type"] for q in exam)
    # sqrt(3) : 1 : 1 : 1, so trivial gets 40 x 1.732 / 4.732 = 14.6 where the source mix gives it 20
    assert abs(counts["trivial"] - 14.6) <= 1 and all(abs(counts[label] - 8.5) <= 1 for label in ("critical", "major", "minor"))


def _typical_pool() -> tuple[list[Example], list[Example], list[Example]]:
    """One label's findings: a large cluster (SQL injection), a smaller one (buffer overflow), and outliers."""
    def item(review: str, i: int) -> Example:
        return Example({"code": f"f({i})", "review": review}, {"issue_type": "critical"})
    sql = [item(f"user input reaches the SQL query string without escaping, injection risk case{i}", i) for i in range(8)]
    overflow = [item(f"buffer copied without a bounds check, memory overflow case{i}", 10 + i) for i in range(5)]
    odd = [item("deprecated locale API", 20), item("thread started in a constructor", 21)]
    return sql, overflow, odd


def test_typical_priority_takes_each_clusters_most_typical_item_largest_cluster_first():
    from mentor.teachers.targeting import typical_priority

    sql, overflow, odd = _typical_pool()
    priority = typical_priority(SEVERITY, odd + overflow + sql, clusters=2, seed=0)
    order = sorted(priority, key=priority.get)
    by_key = {SEVERITY.key(e.input): e for e in sql + overflow + odd}
    assert "SQL" in by_key[order[0]].input["review"] and "overflow" in by_key[order[1]].input["review"]
    assert {SEVERITY.key(e.input) for e in odd} == set(order[-2:])  # outliers are least typical


def test_typical_signal_aims_only_the_first_curriculum_and_ignores_the_untuned_margins():
    sql, overflow, odd = _typical_pool()
    pool = sql + overflow + odd
    exam_item = Example({"code": "g()", "review": "SQL injection through string concatenation"}, {"issue_type": "critical"})
    results = [_answer(exam_item, "critical", 0.9)]  # right: nothing to re-teach
    probed = [_answer(e, "trivial", 0.3) for e in odd]  # the untuned student is least sure of the outliers
    teacher = make_teacher(load_config(overrides=["teacher.name=reference:natural-typical", "teacher.explore=0"]).teacher, seed=0)
    assert teacher.signals == ("margin", "nearest", "typical") and teacher.label_quota == "source"
    first = teacher.grade(SEVERITY, results, pool, 2, set(), 1, probed)
    reviews = [e.input["review"] for e in first.dataset]
    assert sorted("SQL" in r for r in reviews) == [False, True] and any("overflow" in r for r in reviews)
    later = teacher.grade(SEVERITY, results, pool, 2, set(), 2, probed)  # round 2: the margins again
    assert {SEVERITY.key(e.input) for e in later.dataset} == {SEVERITY.key(e.input) for e in odd}


def _mixed_pool() -> tuple[list[Example], list[Example], Example]:
    """Critical SQL-injection findings, trivial naming ones, and one SQL-injection finding labelled trivial."""
    sql = [Example({"code": f"q({i})", "review": f"user input concatenated into the SQL query, injection risk {i}"},
                   {"issue_type": "critical"}) for i in range(12)]
    naming = [Example({"code": f"n({i})", "review": f"variable name does not follow the naming convention {i}"},
                      {"issue_type": "trivial"}) for i in range(12)]
    odd = Example({"code": "q(99)", "review": "user input concatenated into the SQL query, injection risk 99"},
                  {"issue_type": "trivial"})
    return sql, naming, odd


def test_label_agreement_is_low_where_the_neighbours_carry_another_label_and_skips_the_same_review():
    from mentor.teachers.targeting import label_agreement

    sql, naming, odd = _mixed_pool()
    twin = Example({"code": "other(1)", "review": odd.input["review"]}, {"issue_type": "trivial"})  # same finding
    agreement = label_agreement(SEVERITY, [sql[0], naming[0], odd], sql + naming + [odd, twin])
    assert agreement[0] >= 0.8 and agreement[1] >= 0.8
    assert agreement[2] <= 0.1  # its twin shares its label but is the same finding, so it does not count


def test_consistent_signal_neither_targets_nor_reteaches_items_whose_neighbours_disagree():
    sql, naming, odd = _mixed_pool()
    missed = Example({"code": "q(98)", "review": "user input concatenated into the SQL query, injection risk 98"},
                     {"issue_type": "trivial"})
    pool = sql + naming + [odd, missed]
    results = [_answer(missed, "critical", 0.6), _answer(naming[0], "trivial", 0.9)]
    probed = [_answer(odd, "critical", 0.4)] + [_answer(e, "trivial", 0.5) for e in naming[1:6]]

    def picks(name: str):
        teacher = make_teacher(load_config(overrides=[f"teacher.name={name}", "teacher.explore=0"]).teacher, seed=0)
        grade = teacher.grade(SEVERITY, results, pool, 4, set(), 2, probed)
        return {SEVERITY.key(e.input) for e in grade.dataset}, grade.detail["targeting"]

    plain, _ = picks("reference:natural")
    assert {SEVERITY.key(odd.input), SEVERITY.key(missed.input)} <= plain  # unsure, wrong and missed: picked first
    consistent, detail = picks("reference:natural-consistent")
    assert not {SEVERITY.key(odd.input), SEVERITY.key(missed.input)} & consistent and len(consistent) == 4
    assert detail["inconsistent"] == 2 and detail["signals"] == ["margin", "nearest", "consistent"]
