"""The hosted teacher against a scripted local chat-completions server: prompts, parsing, vetting, balance."""

from __future__ import annotations

import json
import re

import pytest

from mentor.config import TeacherConfig
from mentor.llm import ChatClient
from mentor.records import Answer, Example, ExamResult, Grade
from mentor.tasks import SEVERITY, SEVERITY_LABELS
from mentor.teachers import TeacherError
from mentor.teachers.openai import OpenAITeacher
from mentor.teachers.vetting import NearIndex
from tests.conftest import make_examples
from tests.fake_openai_server import FakeOpenAI

HOLDOUT = make_examples(2, "holdout", seed=1)
AVOID = {SEVERITY.key(e.input) for e in HOLDOUT}


def item(label: str, i: int, review: str | None = None) -> dict:
    return {"question": {"code": f"def handler_{label}_{i}(request):\n    return process(request, mode={i * 7919})",
                         "review": review or f"Review {i} of the {label} problem in handler {i * 104729}"},
            "answer": {"issue_type": label}}


def as_item(e: Example) -> dict:
    return {"question": e.input, "answer": e.output}


def teacher(server: FakeOpenAI, **options) -> OpenAITeacher:
    config = TeacherConfig(name="openai:fake", **{"batch_size": 8, "near_duplicate": 0.85, **options})
    client = ChatClient("fake", base_url=server.url, concurrency=1, sleep=lambda s: None)
    return OpenAITeacher(client, config, seed=0)


def user_prompt(request: dict) -> str:
    return request["messages"][1]["content"]


def test_exam_from_fenced_json_after_prose_drops_and_counts_what_is_unusable():
    good = [item(label, i) for i, label in enumerate(SEVERITY_LABELS)]
    near = {"question": {**HOLDOUT[0].input, "review": HOLDOUT[0].input["review"] + "."}, "answer": HOLDOUT[0].output}
    bad = [item("blocker", 9), {"question": {"code": "x = 1"}, "answer": {"issue_type": "minor"}},  # label, missing field
           as_item(HOLDOUT[1]), near, good[0], "not an item"]
    reply = "Let me balance the labels first.\n```json\n" + json.dumps({"exam": good + bad}) + "\n```"
    with FakeOpenAI([reply]) as server:
        t = teacher(server)
        exam = t.write_exam(SEVERITY, make_examples(3, "pool"), 4, None, AVOID, 1)
    assert [e.output["issue_type"] for e in exam] == list(SEVERITY_LABELS)
    assert all(SEVERITY.validate_example(e) is None and SEVERITY.key(e.input) not in AVOID for e in exam)
    report = t._exam_report[1]
    assert (report["kept"], report["invalid"], report["duplicate"], report["near_duplicate"]) == (4, 3, 2, 1)
    assert len(server.requests) == 1  # nothing was short or skewed: no second request


def test_labels_are_normalised_not_guessed():
    reply = json.dumps({"exam": [item("Major", 1), item(" CRITICAL ", 2), item("severe", 3)]})
    with FakeOpenAI([reply], default=json.dumps({"exam": []})) as server:
        exam = teacher(server, passes=1, label_skew=0).write_exam(SEVERITY, [], 3, None, set(), 1)
    assert sorted(e.output["issue_type"] for e in exam) == ["critical", "major"]


@pytest.mark.parametrize("broken, problem", [
    ('{"exam": [{"question": {"code": "a", "review": "b"}, "answer": {"issue_type": "minor"}},, ]}', "not valid"),
    ({"content": '{"exam": [{"question": {"code": "a", "rev', "finish_reason": "length"}, "cut off"),
    ('Here you go: {"exam": [{"question": {"code": "a"', "truncated"),
    ("I would rather not write an exam.", "no JSON object"),
    ('{"questions": []}', 'no "exam" key'),
])
def test_an_unusable_reply_is_sent_back_with_the_problem(broken, problem):
    valid = json.dumps({"exam": [item(label, i) for i, label in enumerate(SEVERITY_LABELS)]})
    with FakeOpenAI([broken, valid]) as server:
        exam = teacher(server).write_exam(SEVERITY, [], 4, None, set(), 1)
    assert len(exam) == 4 and len(server.requests) == 2
    retry = server.requests[1]["messages"]
    assert retry[:2] == server.requests[0]["messages"] and retry[2]["role"] == "assistant"
    assert problem in retry[3]["content"]


def test_a_badly_skewed_exam_is_topped_up_by_asking_for_the_missing_labels():
    skewed = json.dumps({"exam": [item("critical", i) for i in range(8)]})
    rest = json.dumps({"exam": [item(label, 10 + i * 3 + j) for i, label in enumerate(SEVERITY_LABELS[1:]) for j in range(2)]})
    with FakeOpenAI([skewed, rest]) as server:
        t = teacher(server)
        exam = t.write_exam(SEVERITY, [], 8, None, set(), 1)
    assert "Write exactly these numbers per label: 2 major, 2 minor, 2 trivial." in user_prompt(server.requests[1])
    assert sorted(e.output["issue_type"] for e in exam) == sorted(SEVERITY_LABELS * 2)
    assert t._exam_report[1]["skewed"] is None


def test_no_usable_exam_at_all_is_an_error_not_an_empty_exam():
    with FakeOpenAI(default="no json here") as server:
        with pytest.raises(TeacherError, match="no usable exam"):
            teacher(server, parse_retries=1, passes=2).write_exam(SEVERITY, [], 4, None, set(), 1)
    assert len(server.requests) == 4  # 2 passes x (1 try + 1 retry)


def test_exam_prompt_has_the_spec_sections_and_a_bounded_sample_of_a_large_source():
    pool = make_examples(100, "pool")  # 400 items, far more than the budget below
    with FakeOpenAI(default=json.dumps({"exam": []})) as server:
        with pytest.raises(TeacherError):  # the replies are empty: we only look at what was asked
            teacher(server, source_tokens=400, batch_size=4, passes=1).write_exam(
                SEVERITY, pool, 10, Grade(6, "Confuses major with minor.", []), set(), 2)
    assert len(server.requests) == 3  # 10 questions in requests of 4, 4 and 2
    prompts = [user_prompt(r) for r in server.requests]
    first = prompts[0]
    for tag in ("[TASK]", "[DATA SOURCE]", "[PREVIOUS_EXAM_RESULTS]", "Proficiency: 6", "Feedback: Confuses major with minor."):
        assert tag in first
    assert "exam of exactly 4 questions" in first and "exam of exactly 2 questions" in prompts[2]
    assert "of the 400 items in the data source" in first
    source_lines = [line for line in first.split("[DATA SOURCE]")[1].split("[PREVIOUS")[0].splitlines() if line.startswith("{")]
    assert 1 <= len(source_lines) < 20 and sum(map(len, source_lines)) <= 400 * 4 + 400
    assert len({p.split("[PREVIOUS")[0] for p in prompts}) == 3  # each request sees its own sample
    schema = server.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["exam"]["items"]["properties"]["answer"]["properties"]["issue_type"]["enum"] == list(SEVERITY_LABELS)


def test_unlabelled_and_empty_sources_are_described_to_the_teacher():
    unlabelled = [Example(e.input, {}) for e in make_examples(2, "raw")]
    with FakeOpenAI(default=json.dumps({"exam": []})) as server:
        t = teacher(server, passes=1)
        with pytest.raises(TeacherError):
            t.write_exam(SEVERITY, unlabelled, 2, None, set(), 1)
        with pytest.raises(TeacherError):
            t.write_exam(SEVERITY, [], 2, None, set(), 1)
    labelled_prompt, empty_prompt = user_prompt(server.requests[0]), user_prompt(server.requests[1])
    assert "unlabelled: decide the correct answer yourself" in labelled_prompt
    shown = [line for line in labelled_prompt.splitlines() if line.startswith('{"question"')]
    assert len(shown) == 8 and not any('"answer"' in line for line in shown)
    assert "invent realistic" in empty_prompt


def _results() -> list[ExamResult]:
    exam = make_examples(1, "exam")
    answers = [Answer("major", {"issue_type": "major"}), Answer("???", None), Answer("minor", {"issue_type": "minor"}),
               Answer("trivial", {"issue_type": "trivial"})]
    return [ExamResult(q, a, a.parsed == q.output) for q, a in zip(exam, answers)]


def test_grade_retries_a_bad_proficiency_and_splits_the_new_examples():
    dataset = [item(label, i) for i, label in enumerate(SEVERITY_LABELS)]
    script = [json.dumps({"feedback": "Weak on minor.", "proficiency": 11, "dataset": dataset[:2]}),
              json.dumps({"feedback": "Weak on minor.", "dataset": dataset[:2]}),
              "```json\n" + json.dumps({"feedback": "Weak on minor.", "proficiency": "6", "dataset": dataset[:2]}) + "\n```",
              json.dumps({"dataset": dataset[2:3] + [as_item(HOLDOUT[0])]}),
              json.dumps({"dataset": dataset[3:]}),
              json.dumps({"dataset": [item("minor", 9)]})]  # a second pass makes up for the dropped duplicate
    with FakeOpenAI(script) as server:
        grade = teacher(server, batch_size=2).grade(SEVERITY, _results(), make_examples(2, "pool"), 5, AVOID, 1)
    assert grade.proficiency == 6 and grade.feedback == "Weak on minor."
    assert [e.output["issue_type"] for e in grade.dataset] == list(SEVERITY_LABELS) + ["minor"]
    assert grade.detail["vetting"]["dataset"]["duplicate"] == 1
    follow_ups = [user_prompt(r) for r in server.requests[3:]]
    assert [int(re.search(r"exactly (\d+) new", f).group(1)) for f in follow_ups] == [2, 1, 1]
    assert "The student's proficiency is 6/10. Feedback: Weak on minor." in follow_ups[0]
    assert '"proficiency" must be an integer from 1 to 10, got 11' in server.requests[1]["messages"][3]["content"]
    assert "proficiency" in server.requests[2]["messages"][5]["content"]


def test_grade_prompt_carries_the_exam_results_and_a_missing_answer_stays_missing():
    with FakeOpenAI([json.dumps({"feedback": "ok", "proficiency": 5, "dataset": []})]) as server:
        teacher(server).grade(SEVERITY, _results(), [], 0, set(), 1)
    prompt = user_prompt(server.requests[0])
    for tag in ("[TASK]", "[EXAM_RESULTS]", "[DATA_SOURCE]"):
        assert tag in prompt
    rows = json.loads(prompt.split("[EXAM_RESULTS]\n")[1].split("\n\n[DATA_SOURCE]")[0])
    assert [("model_answer" in r) for r in rows] == [True, False, True, True]
    assert rows[0]["answer"] == _results()[0].question.output


def test_a_grade_without_a_usable_proficiency_fails_the_step():
    with FakeOpenAI(default=json.dumps({"feedback": "fine", "proficiency": 0, "dataset": []})) as server:
        with pytest.raises(TeacherError, match="no usable grade.*--resume"):
            teacher(server, parse_retries=2).grade(SEVERITY, _results(), [], 4, set(), 3)
    assert len(server.requests) == 3


def test_near_duplicates_need_every_field_close():
    index = NearIndex(0.85)
    base = SEVERITY.key({"code": "def total(items):\n    return sum(i.price for i in items)", "review": "Prices are summed without tax"})
    index.add(base)
    assert index.matches(base.replace("tax", "tax."))
    assert not index.matches(SEVERITY.key({"code": "def total(items):\n    return sum(i.price for i in items)",
                                           "review": "The name total is vague"}))
    assert not NearIndex(0).matches(base)
