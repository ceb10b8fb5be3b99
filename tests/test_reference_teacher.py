"""The reference teacher: exams exclude the holdout and earlier items, aim at weaknesses, grade readably."""

from collections import Counter

from mentor.records import Answer, ExamResult
from mentor.tasks import SEVERITY
from mentor.teachers.reference import ReferenceTeacher
from tests.conftest import make_examples


def _results(questions, say):
    out = []
    for q in questions:
        label = say(q)
        out.append(ExamResult(q, Answer(label or "???", {"issue_type": label} if label else None), label == q.output["issue_type"]))
    return out


def test_exam_excludes_avoided_items_and_is_balanced_and_deterministic():
    pool = make_examples(20, "pool")
    avoid = {SEVERITY.key(e.input) for e in pool[:30]}
    teacher = ReferenceTeacher(seed=1)
    exam = teacher.write_exam(SEVERITY, pool, 40, None, avoid, round_no=1)
    assert len(exam) == 40 and not {SEVERITY.key(q.input) for q in exam} & avoid
    assert set(Counter(q.output["issue_type"] for q in exam).values()) == {10}
    assert exam == ReferenceTeacher(seed=1).write_exam(SEVERITY, pool, 40, None, avoid, round_no=1)
    assert exam != ReferenceTeacher(seed=2).write_exam(SEVERITY, pool, 40, None, avoid, round_no=1)


def test_grade_names_confusions_and_aims_the_curriculum_and_next_exam():
    pool = make_examples(40, "pool")
    teacher = ReferenceTeacher(seed=0)
    exam = teacher.write_exam(SEVERITY, pool, 40, None, set(), 1)
    # The student calls every major "minor" and gets the rest right.
    results = _results(exam, lambda q: "minor" if q.output["issue_type"] == "major" else q.output["issue_type"])
    grade = teacher.grade(SEVERITY, results, pool, 40, set(), 1)
    assert 1 <= grade.proficiency <= 10 and grade.proficiency == 1 + round(9 * 0.75)
    assert "Confuses major with minor" in grade.feedback and "Weak on major (0/10)" in grade.feedback
    labels = Counter(e.output["issue_type"] for e in grade.dataset)
    assert labels["major"] > labels["critical"] and labels["major"] > labels["trivial"]
    # every missed question is re-taught
    missed = {SEVERITY.key(r.question.input) for r in results if not r.correct}
    assert missed <= {SEVERITY.key(e.input) for e in grade.dataset}
    nxt = teacher.write_exam(SEVERITY, pool, 40, grade, {SEVERITY.key(q.input) for q in exam}, 2)
    counts = Counter(q.output["issue_type"] for q in nxt)
    assert counts["major"] > counts["trivial"]


def test_grade_counts_unparseable_answers():
    pool = make_examples(5, "pool")
    results = _results(pool, lambda q: None)
    grade = ReferenceTeacher().grade(SEVERITY, results, pool, 5, set(), 1)
    assert grade.proficiency == 1 and "20 answer(s) could not be parsed" in grade.feedback


def test_curriculum_avoids_holdout_keys():
    pool = make_examples(10, "pool")
    avoid = {SEVERITY.key(e.input) for e in pool[5:]}
    exam = pool[:4]
    grade = ReferenceTeacher().grade(SEVERITY, _results(exam, lambda q: "trivial"), pool, 30, avoid, 1)
    assert not {SEVERITY.key(e.input) for e in grade.dataset} & avoid


def _findings_pool() -> list:
    """40 findings per label, each review on three different snippets (the same rule in three languages)."""
    pool = []
    for e in make_examples(40, "finding"):
        pool += [type(e)({"code": f"{e.input['code']} /* lang {k} */", "review": e.input["review"]}, e.output,
                         source=e.source) for k in range(3)]
    return pool


def test_variants_teach_each_finding_in_several_contexts_and_keep_the_label_quotas():
    pool = _findings_pool()
    exam = make_examples(10, "exam")  # of other findings, so every finding of the pool has its three contexts left
    results = _results(exam, lambda q: q.output["issue_type"])  # nothing missed: the curriculum is all new items
    plain = ReferenceTeacher(seed=0).grade(SEVERITY, results, pool, 48, set(), 1)
    paired = ReferenceTeacher(seed=0, variants=2).grade(SEVERITY, results, pool, 48, set(), 1)
    triple = ReferenceTeacher(seed=0, variants=3).grade(SEVERITY, results, pool, 48, set(), 1)
    for grade in (plain, paired, triple):
        assert len(grade.dataset) == 48 and set(Counter(e.output["issue_type"] for e in grade.dataset).values()) == {12}
    findings = lambda grade: Counter(e.input["review"] for e in grade.dataset)  # noqa: E731
    assert len(findings(plain)) > 40  # drawn one by one, most findings come once
    assert sorted(findings(paired).values()) == [2] * 24 and sorted(findings(triple).values()) == [3] * 16
    assert paired.detail["targeting"]["variants"] == 2


def test_variants_leave_out_contexts_already_examined():
    pool = _findings_pool()
    exam = ReferenceTeacher(seed=0).write_exam(SEVERITY, pool, 40, None, set(), 1)
    grade = ReferenceTeacher(seed=0, variants=3).grade(SEVERITY, _results(exam, lambda q: q.output["issue_type"]),
                                                        pool, 48, set(), 1)
    assert len(grade.dataset) == 48 and max(Counter(e.input["review"] for e in grade.dataset).values()) == 3
    assert not {SEVERITY.key(q.input) for q in exam} & {SEVERITY.key(e.input) for e in grade.dataset}


def test_variants_take_the_rest_one_by_one_when_findings_have_no_other_context():
    pool = make_examples(12, "single")  # every review occurs once
    grade = ReferenceTeacher(seed=0, variants=2).grade(SEVERITY, _results(pool[:4], lambda q: q.output["issue_type"]),
                                                        pool, 20, set(), 1)
    assert len(grade.dataset) == 20 and len({e.input["review"] for e in grade.dataset}) == 20


def test_variants_must_be_at_least_one():
    import pytest

    with pytest.raises(ValueError, match="teacher.variants must be at least 1"):
        ReferenceTeacher(variants=0)
