"""`mentor eval --models best+tfidf`: a combined system averages its members' label probabilities."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import mentor.commands_eval  # noqa: F401 - registers judge on the app
from mentor.cli import app
from mentor.compare import measure
from mentor.ensemble import Ensemble
from mentor.judge import JudgeError
from mentor.records import Answer, Example
from mentor.students import StudentError
from mentor.targets import Target
from mentor.tasks import SEVERITY
from tests.finished import finished_run

ITEMS = [{"code": f"x = {i}", "review": f"review {i}"} for i in range(3)]


class _Fixed:
    """A member that gives the same answer to every item."""

    def __init__(self, probs: dict[str, float] | None, label: str, seconds: float) -> None:
        self.probs, self.label, self.seconds, self.calls = probs, label, seconds, 0

    def answer(self, task, inputs, progress=None, explain=True):
        self.calls += 1
        return [Answer(self.label, {"issue_type": self.label}, self.probs, self.seconds) for _ in inputs]


def test_the_average_decides_even_where_every_member_is_wrong():
    # Each member alone says critical or major; their average puts minor first.
    a = _Fixed({"critical": 0.5, "major": 0.1, "minor": 0.4, "trivial": 0.0}, "critical", 0.2)
    b = _Fixed({"critical": 0.1, "major": 0.5, "minor": 0.4, "trivial": 0.0}, "major", 0.3)
    prepared = []
    members = [Target("a", SEVERITY, a, prepare=lambda: prepared.append("a")),
               Target("b", SEVERITY, b, prepare=lambda: prepared.append("b"))]
    examples = [Example(item, {"issue_type": "minor"}) for item in ITEMS]
    figures = measure(Target("a + b", SEVERITY, Ensemble(members), kind="combined"), examples)
    assert figures["accuracy"] == 1.0
    assert prepared == ["a", "b"] and a.calls == b.calls == 1  # each member switched in, then asked once
    for member in (a, b):
        alone = measure(Target("x", SEVERITY, member), examples)
        assert alone["accuracy"] == 0.0
    answers = Ensemble(members).answer(SEVERITY, ITEMS)
    assert answers[0].probs == pytest.approx({"critical": 0.3, "major": 0.3, "minor": 0.4, "trivial": 0.0})
    assert answers[0].seconds == pytest.approx(0.5)  # one finding costs both members' time


def test_a_member_without_probabilities_votes_for_its_label():
    sure = _Fixed(None, "trivial", 0.0)
    unsure = _Fixed({"critical": 0.4, "major": 0.3, "minor": 0.3, "trivial": 0.0}, "critical", 0.0)
    answer = Ensemble([Target("s", SEVERITY, sure), Target("u", SEVERITY, unsure)]).answer(SEVERITY, ITEMS[:1])[0]
    assert answer.parsed == {"issue_type": "trivial"} and answer.probs["trivial"] == pytest.approx(0.5)


def test_one_member_is_not_a_combination():
    with pytest.raises(StudentError, match="at least two"):
        Ensemble([Target("a", SEVERITY, _Fixed(None, "minor", 0.0))])


def test_eval_scores_a_combined_system_beside_its_members(tmp_path, home):
    run_id, data = finished_run(tmp_path)
    result = CliRunner().invoke(app, ["eval", "--data", str(data), "--models", "best,tfidf,best+tfidf", "--json"])
    assert result.exit_code == 0, result.output
    systems = json.loads(result.stdout)["systems"]
    combined = systems[2]
    assert combined["kind"] == "combined" and combined["system"] == f"{systems[0]['system']} + {systems[1]['system']}"
    assert "vs_first" in combined and combined["n"] == systems[0]["n"]
    # The student's own figures stay the student's: `best` is scored alone.
    assert systems[0]["kind"] == "local"
    bad = CliRunner().invoke(app, ["judge", str(run_id), "--models", "best,best+tfidf"])
    assert isinstance(bad.exception, JudgeError) and "combined" in str(bad.exception)
