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
