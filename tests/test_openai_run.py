"""Whole runs with the hosted teacher against a local chat-completions server: `mentor run --teacher
openai:...` completes through transient failures, nothing invalid reaches an exam or a curriculum, every
raw call is stored, the key is stored nowhere, a killed run resumes without sending an answered request
again, a repeated run is served from the cache, and token and money budgets stop the loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mentor.cli import main
from mentor.runner import open_store, resume_run
from mentor.tasks import SEVERITY, SEVERITY_LABELS
from tests.conftest import make_examples
from tests.fake_openai_server import FakeOpenAI, FakeTeacherModel

KEY = "sk-run-secret-0123456789abcdef"
HOLDOUT = make_examples(5, "holdout", seed=1)  # the data_files fixture's holdout
SETTINGS = ["student.model=scripted", "teacher.exam_size=12", "teacher.new_examples=20", "teacher.batch_size=8",
            "teacher.backoff=0.01", "teacher.concurrency=1", "loop.patience=5"]


def fake_model() -> FakeTeacherModel:
    return FakeTeacherModel(SEVERITY_LABELS, [{"question": e.input, "answer": e.output} for e in HOLDOUT])


def mentor(argv: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["mentor", *argv])
    main()


def run_args(data_files, rounds: int, *extra: str) -> list[str]:
    pool, hold = data_files
    return ["run", "--teacher", "openai:gpt-4o", "--data", str(pool), "--holdout", str(hold), "--rounds", str(rounds),
            *SETTINGS, *extra]


@pytest.fixture
def server_env(monkeypatch, home):
    def start(server: FakeOpenAI) -> FakeOpenAI:
        monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("MENTOR_OPENAI_API_KEY", KEY)
        return server
    return start


def test_a_full_run_survives_a_flaky_server_and_keeps_everything(data_files, home, server_env, monkeypatch, capsys):
    flaky = [{"status": 429, "headers": {"Retry-After": "0"}, "body": {"error": "rate limited"}},
             {"status": 500, "body": "internal error"},
             {"delay": 1.0, "content": "too slow"},
             {"content": '```json\n{"exam": [{"question": {"code": "x", "review": "y"}, "answer": {"issue_type": "ma'}]
    with server_env(FakeOpenAI(flaky, default=fake_model())) as server:
        mentor(run_args(data_files, 2, "teacher.timeout=0.5"), monkeypatch)
        mentor(["show", "1"], monkeypatch)
        mentor(["show", "1", "--json"], monkeypatch)
    out = capsys.readouterr()
    store = open_store()
    assert store.run(1)["status"] == "finished" and len(store.rounds(1)) == 3

    calls = store.call_rows(1)
    assert len(calls) == len(server.requests)  # every request, failed ones included, is stored raw
    assert [c["outcome"].split(" after")[0] for c in calls[:4]] == ["http 429", "http 500", "timeout", "ok"]
    assert all(c["request"]["body"]["messages"] for c in calls) and all(c["model"] == "gpt-4o" for c in calls)
    assert "ma" in calls[3]["reply"] and "truncated" in calls[4]["request"]["body"]["messages"][-1]["content"]
    ok = [c for c in calls if c["outcome"] == "ok"]
    assert all(c["tokens_in"] > 0 and c["tokens_out"] > 0 and c["cost"] > 0 and c["seconds"] > 0 for c in ok)

    holdout_keys = {SEVERITY.key(e.input) for e in HOLDOUT}
    exam = [q for r in (1, 2) for q, _, _ in store.exam(1, r)]
    curriculum = store.curriculum(1, status=None)
    assert len(exam) == 24 and len(curriculum) == 40
    for example in exam + curriculum:
        assert SEVERITY.validate_example(example) is None and SEVERITY.key(example.input) not in holdout_keys
        assert not example.input["review"].endswith("!")  # the fake's near-copies of holdout items
    assert {e.meta["status"] for e in curriculum} == {"accepted"}
    vetting = store.rounds(1)[1]["grade_detail"]["vetting"]
    assert vetting["exam"]["invalid"] > 0 and vetting["dataset"]["near_duplicate"] > 0

    assert "k tok" in out.out and "s teach" in out.out
    shown = json.loads(out.out[out.out.index('{\n'):])
    assert shown["rounds"][1]["teacher"]["calls"] >= 5 and shown["rounds"][1]["teacher"]["cost"] > 0
    assert shown["rounds"][1]["teacher_vetting"] == vetting
    # The key was sent, and is written nowhere: not in the store, the adapters, or anything printed.
    assert all(h["authorization"] == f"Bearer {KEY}" for h in server.headers)
    for path in Path(home).rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path
    assert KEY not in out.out + out.err


def test_a_repeated_run_is_served_from_the_store(data_files, home, server_env, monkeypatch):
    with server_env(FakeOpenAI(default=fake_model())) as server:
        mentor(run_args(data_files, 2, "teacher.concurrency=4"), monkeypatch)  # calls recorded from several threads
        sent = len(server.requests)
        mentor(run_args(data_files, 2, "teacher.concurrency=4"), monkeypatch)
    store = open_store()
    assert sent > 0 and len(server.requests) == sent  # the second run paid for nothing
    assert {c["outcome"] for c in store.call_rows(2)} == {"cached"}
    assert store.call_totals(2)[1]["cost"] == 0
    assert [r["proficiency"] for r in store.rounds(2)] == [r["proficiency"] for r in store.rounds(1)]


class BlockOnce:
    """Answers like the fake model, except that it holds the first request for new examples (the second
    call of the grade step) until the test has killed the client."""

    def __init__(self) -> None:
        self.model = fake_model()
        self.reached, self.release = threading.Event(), threading.Event()

    def __call__(self, body: dict) -> dict:
        prompt = body["messages"][1]["content"]
        if not self.reached.is_set() and "new training examples" in prompt and "Grade the student" not in prompt:
            self.reached.set()
            self.release.wait(60)
            return {"status": 503, "body": "too late"}
        return self.model(body)


def test_a_killed_run_resumes_without_sending_an_answered_request_again(data_files, home, server_env, monkeypatch):
    blocker = BlockOnce()
    with server_env(FakeOpenAI(default=blocker)) as server:
        env = {**os.environ, "MENTOR_HOME": str(home)}
        proc = subprocess.Popen([sys.executable, "-c", "from mentor.cli import main; main()",
                                 *run_args(data_files, 1, "teacher.timeout=60")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while not blocker.reached.wait(0.2):
                assert proc.poll() is None, proc.communicate()  # it must not finish before the held request
        finally:
            proc.kill()
            out, err = proc.communicate(timeout=30)
            blocker.release.set()
        assert KEY not in out + err
        answered = server.requests[:-1]
        held = server.requests[-1]
        assert open_store(home).run(1)["status"] == "running"
        assert "grade" not in open_store(home).done_steps(1, 1) and "exam" in open_store(home).done_steps(1, 1)

        resume_run(home=home)
    after = server.requests[len(answered) + 1:]
    assert after[0] == held  # the request that never got its reply is the first one sent again
    assert not [body for body in after if body in answered]
    store = open_store(home)
    assert store.run(1)["status"] == "finished"
    assert [c["purpose"] for c in store.call_rows(1) if c["outcome"] == "cached"] == ["grade"]


def test_token_and_money_budgets_stop_the_loop_between_rounds(data_files, home, server_env, monkeypatch):
    with server_env(FakeOpenAI(default=fake_model())):
        mentor(run_args(data_files, 3, "teacher.max_tokens=1000"), monkeypatch)
        mentor(run_args(data_files, 3, "teacher.max_cost=0.5", "teacher.prices=gpt-4o=1000/1000", "teacher.cache=false"),
               monkeypatch)
    store = open_store()
    for run_id, words in ((1, "teacher token budget of 1000 spent"), (2, "teacher cost budget of $0.5 spent")):
        run = store.run(run_id)
        assert run["status"] == "finished" and words in run["stop_reason"]
        assert [r["round"] for r in store.rounds(run_id)] == [0, 1]  # round 1 was finished and trained on
        assert store.rounds(run_id)[1]["adapter"]


def test_an_unlabelled_data_source_is_labelled_by_the_teacher(tmp_path, data_files, home, server_env, monkeypatch):
    # Review comments without severities, the common real case: the reference teacher refuses them,
    # the hosted teacher labels (or invents) the items it needs.
    pool, hold = data_files
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps({"input": e.input}) + "\n" for e in make_examples(10, "raw")))
    with server_env(FakeOpenAI(default=fake_model())):
        mentor(["run", "--teacher", "openai:gpt-4o", "--data", str(unlabelled), "--holdout", str(hold),
                "--rounds", "1", *SETTINGS], monkeypatch)
    store = open_store()
    assert store.run(1)["status"] == "finished"
    exam = store.exam(1, 1)
    assert exam and all(q.output.get("issue_type") in SEVERITY_LABELS for q, _, _ in exam)
    assert store.curriculum(1) and all(e.output["issue_type"] in SEVERITY_LABELS for e in store.curriculum(1))
