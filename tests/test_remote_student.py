"""The `openai:MODEL` student answers through a local chat-completions server: directly, in `mentor eval`,
and as the student of a run, whose exam it answers before the run stops at fine-tuning."""

from __future__ import annotations

import json
import sys

import pytest

from mentor.cli import main
from mentor.config import StudentConfig
from mentor.llm import ChatClient
from mentor.runner import open_store
from mentor.students import StudentError, make_student
from mentor.students.remote import RemoteStudent
from mentor.tasks import SEVERITY, SEVERITY_LABELS
from tests.conftest import make_examples
from tests.fake_openai_server import FakeOpenAI


def by_review(replies: dict[str, str]):
    """A fake model that answers by a word in the review (requests arrive in any order)."""
    def reply(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        return next((text for word, text in replies.items() if word in prompt), "no idea")
    return reply


def test_answers_are_parsed_from_json_plain_text_or_not_at_all():
    items = [{"code": "x = 1", "review": f"review {word}"} for word in ("alpha", "beta", "gamma", "delta")]
    model = by_review({"alpha": '{"issue_type": "major"}', "beta": "Minor", "gamma": '```json\n{"issue_type": "critical"}\n```'})
    with FakeOpenAI(default=model) as server:
        student = RemoteStudent(ChatClient("served", base_url=server.url, concurrency=3))
        answers = student.answer(SEVERITY, items)
    assert [a.parsed for a in answers] == [{"issue_type": "major"}, {"issue_type": "minor"}, {"issue_type": "critical"}, None]
    assert answers[3].raw == "no idea" and all(a.seconds > 0 for a in answers)
    request = server.requests[0]
    assert SEVERITY.description in request["messages"][0]["content"]
    assert request["messages"][1]["content"].startswith(SEVERITY.prompt(items[0]).split("\n")[0])
    assert request["temperature"] == 0.0
    assert request["response_format"]["json_schema"]["schema"]["properties"]["issue_type"]["enum"] == list(SEVERITY_LABELS)
    assert student.usage.tokens_in > 0 and student.usage.cost == 0.0  # no price known for "served"


def test_it_cannot_be_fine_tuned_or_load_an_adapter(tmp_path):
    student = RemoteStudent(ChatClient("served", base_url="http://127.0.0.1:9/v1"))
    assert student.can_finetune is False
    with pytest.raises(StudentError, match="cannot be fine-tuned"):
        student.finetune(SEVERITY, make_examples(1), tmp_path / "a")
    with pytest.raises(StudentError, match="--lora-modules"):
        student.use_adapter(tmp_path)
    student.use_adapter(None)


def test_a_student_on_its_own_server_never_gets_the_teacher_key(monkeypatch):
    monkeypatch.setenv("MENTOR_OPENAI_API_KEY", "sk-teacher")
    monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with FakeOpenAI(default="trivial") as server:
        monkeypatch.setenv("MENTOR_STUDENT_BASE_URL", server.url)
        student = make_student(StudentConfig(model="openai:my-adapter"), 0)
        [answer] = student.answer(SEVERITY, [{"code": "a", "review": "b"}])
    assert answer.parsed == {"issue_type": "trivial"} and student.name == "openai:my-adapter"
    assert "authorization" not in server.headers[0]


def test_mentor_eval_measures_a_hosted_model(tmp_path, home, monkeypatch, capsys):
    data = tmp_path / "dev.jsonl"
    examples = make_examples(2, "dev")
    data.write_text("".join(json.dumps(e.to_json()) + "\n" for e in examples))
    # Right on every item but the trivial ones, which it calls minor.
    model = by_review({"injection": "critical", "totals": "major", "wasteful": "minor", "rename": "minor"})
    with FakeOpenAI(default=model) as server:
        monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", server.url)
        monkeypatch.setattr(sys, "argv", ["mentor", "eval", "--data", str(data), "--student", "openai:hosted", "--base", "--json"])
        main()
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(0.75) and report["n"] == 8 and len(server.requests) == 8


def test_a_run_with_a_hosted_student_answers_its_exam_through_the_server(data_files, home, monkeypatch, capsys):
    pool, hold = data_files
    with FakeOpenAI(default="major") as server:
        monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", server.url)
        monkeypatch.setattr(sys, "argv", ["mentor", "run", "--data", str(pool), "--holdout", str(hold), "--student",
                                          "openai:hosted", "--rounds", "1", "teacher.exam_size=12"])
        main()
    store = open_store()
    run = store.run(1)
    assert run["status"] == "finished" and "cannot be fine-tuned" in run["stop_reason"]
    exam = store.exam(1, 1)
    assert len(exam) == 12 and all(answer.raw == "major" and answer.parsed == {"issue_type": "major"} for _, answer, _ in exam)
    assert len(server.requests) == 20 + 12  # the holdout (round 0) and the exam
    assert store.rounds(1)[0]["metrics"]["accuracy"] == pytest.approx(0.25)
