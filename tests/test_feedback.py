"""The flywheel: verdicts are checked, stored, exported, weighted up when corrected, and trained on."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mentor import feedback
from mentor.config import load_config
from mentor.data import DataError, load_examples
from mentor.feedback import Feedback
from mentor.records import Example
from mentor.review import ReviewError
from mentor.runner import open_store, start_run
from mentor.tasks import EXPLAIN, SEVERITY
from mentor.teachers.reference import ReferenceTeacher
from tests.conftest import make_examples, write_jsonl
from tests.test_review import run_cli


def give(store, n_per_label: int = 2, corrected: int = 1) -> list[Feedback]:
    """Verdicts on distinct findings: the first `corrected` disagree with the model, the rest agree."""
    items = []
    for i, example in enumerate(make_examples(n_per_label, "fb")):
        truth = example.output["issue_type"]
        wrong = "trivial" if truth != "trivial" else "major"
        item = (Feedback(example.input["code"], example.input["review"], truth, predicted=wrong, comment=f"because {i}")
                if i < corrected else Feedback(example.input["code"], example.input["review"], "agree", predicted=truth,
                                               explanation="the model's reason"))
        feedback.add(store, item)
        items.append(item)
    return items


@pytest.mark.parametrize("item, message", [
    (Feedback("x = 1", "", "major"), "'review' must be a non-empty string"),
    (Feedback("x = 1", "r", "blocker"), "verdict 'blocker'"),
    (Feedback("x = 1", "r", "agree"), "'agree' needs the severity the model gave"),
    (Feedback("x = 1", "r", "major", predicted="bad"), "predicted 'bad'"),
])
def test_bad_feedback_is_refused_with_the_reason(item, message):
    with pytest.raises(ReviewError, match=message):
        feedback.check(item)


def test_stored_feedback_becomes_weighted_examples(home):
    store = open_store(create=True)
    give(store, n_per_label=1, corrected=1)
    items = feedback.examples(store, EXPLAIN)
    assert len(items) == 4
    corrected = [e for e in items if e.meta["weight"] > 1]
    assert len(corrected) == 1 and corrected[0].meta["weight"] == feedback.CORRECTED_WEIGHT
    assert corrected[0].output["explanation"] == "because 0"  # the developer's comment explains the correction
    agreed = [e for e in items if e.meta["weight"] == 1.0]
    assert all(e.output["explanation"] == "the model's reason" for e in agreed)
    assert set(feedback.examples(store, SEVERITY)[0].output) == {"issue_type"}


def test_a_later_verdict_on_the_same_finding_wins(home):
    store = open_store(create=True)
    feedback.add(store, Feedback("x = 1", "rename x", "minor", predicted="trivial"))
    feedback.add(store, Feedback("x = 1", "rename x", "agree", predicted="trivial"))
    items = feedback.examples(store, SEVERITY)
    assert [e.output["issue_type"] for e in items] == ["trivial"]


def test_export_round_trips_through_the_data_loader(home, tmp_path):
    store = open_store(create=True)
    give(store, n_per_label=1, corrected=2)
    text, count = feedback.export_jsonl(store)
    path = tmp_path / "fb.jsonl"
    path.write_text(text, encoding="utf-8")
    loaded = load_examples(path, EXPLAIN)
    assert count == len(loaded) == 4
    assert sorted(e.meta["weight"] for e in loaded) == [1.0, 1.0, 3.0, 3.0]
    assert all(e.meta["meta"]["feedback_id"] for e in loaded)


def test_cli_add_from_a_review_report_and_export(home, tmp_path, monkeypatch, capsys):
    report = {"model": "run 1", "findings": [{"id": "abc123def456", "path": "app.py", "line": 6, "code": "q = 'a' + b",
                                              "review": "SQL injection", "severity": "minor", "explanation": "meh"}]}
    (tmp_path / "r.json").write_text(json.dumps(report), encoding="utf-8")
    status, out, err = run_cli(monkeypatch, capsys, "feedback", "add", "--from", str(tmp_path / "r.json"), "--id", "abc123",
                               "--verdict", "critical", "--comment", "user input reaches the query")
    assert status == 0 and "minor -> critical" in out, err
    (tmp_path / "code.py").write_text("def f(): pass\n", encoding="utf-8")
    status, out, err = run_cli(monkeypatch, capsys, "feedback", "add", "--code", f"@{tmp_path / 'code.py'}",
                               "--review", "docstring missing", "--verdict", "agree", "--predicted", "trivial")
    assert status == 0, err
    status, _, err = run_cli(monkeypatch, capsys, "feedback", "add", "--from", str(tmp_path / "r.json"), "--id", "zzz",
                             "--verdict", "major")
    assert status == 2 and "no finding with id 'zzz'" in err
    status, out, _ = run_cli(monkeypatch, capsys, "feedback", "export", "-")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["output"]["issue_type"], r["weight"]) for r in lines] == [("critical", 3.0), ("trivial", 1.0)]
    assert lines[0]["meta"]["path"] == "app.py" and lines[0]["output"]["explanation"] == "user input reaches the query"


def test_reference_teacher_examines_corrected_items_first():
    plain = make_examples(10, "plain")
    heavy = [Example(e.input, e.output, "feedback", {"weight": feedback.CORRECTED_WEIGHT}) for e in make_examples(2, "heavy")]
    pool = plain + heavy
    drawn: dict[str, int] = {"heavy": 0, "plain": 0}
    for seed in range(30):
        exam = ReferenceTeacher(seed).write_exam(SEVERITY, random.Random(seed).sample(pool, len(pool)), 8, None, set(), 1)
        for q in exam:
            drawn["heavy" if "heavy" in q.input["review"] else "plain"] += 1
    rate_heavy, rate_plain = drawn["heavy"] / (30 * len(heavy)), drawn["plain"] / (30 * len(plain))
    assert rate_heavy > 2 * rate_plain, (rate_heavy, rate_plain)


def test_unweighted_exams_are_unchanged_by_the_weighting_hook():
    pool = make_examples(5, "p")
    first = ReferenceTeacher(3).write_exam(SEVERITY, pool, 8, None, set(), 1)
    again = ReferenceTeacher(3).write_exam(SEVERITY, [Example(e.input, e.output, e.source, {"weight": 1}) for e in pool], 8, None, set(), 1)
    assert [q.input for q in first] == [q.input for q in again]


def overrides(holdout: Path, data: str) -> list[str]:
    return [f"data.pool={data}", f"data.holdout={holdout}", "student.model=scripted", "loop.rounds=1",
            "teacher.exam_size=4", "teacher.new_examples=40"]


def test_run_trains_on_feedback(home, data_files):
    _, holdout = data_files
    store = open_store(create=True)
    items = give(store, n_per_label=2, corrected=1)
    result = start_run(load_config(None, overrides(holdout, "feedback")))
    run_id, fixed = result["run_id"], items[0]
    key = SEVERITY.key({"code": fixed.code, "review": fixed.review})
    exam = {SEVERITY.key(q.input): (q, bool(c)) for q, _, c in store.exam(run_id, 1)}
    taught = {SEVERITY.key(e.input): e for e in store.curriculum(run_id, 1)}
    assert exam or taught
    assert key in exam or key in taught
    if key in exam and not exam[key][1]:
        assert key in taught  # got wrong in the exam: re-taught
    for source in (exam.get(key, (None,))[0], taught.get(key)):
        if source is not None:
            assert source.output["issue_type"] == fixed.verdict  # the developer's severity, not the model's


def test_run_merges_feedback_with_a_file(home, data_files, tmp_path):
    _, holdout = data_files
    give(open_store(create=True), n_per_label=1, corrected=0)
    more = write_jsonl(tmp_path / "more.jsonl", make_examples(3, "more"))
    result = start_run(load_config(None, overrides(holdout, f"feedback+{more}")))
    stats = open_store().rounds(result["run_id"])[0]["stats"]
    assert stats["pool"] == 4 + 12


def test_run_on_empty_feedback_says_how_to_give_some(home, data_files):
    with pytest.raises(DataError, match="no feedback stored yet"):
        start_run(load_config(None, overrides(data_files[1], "feedback")))
