"""Pairwise explanation judging: both orders cancel position bias; hosted judges over a local HTTP server;
the offline embedding judge."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import mentor.commands_eval  # noqa: F401 - registers judge/report on the app
from mentor.cli import app
from mentor.judge import EmbeddingJudge, JudgeError, LLMJudge, compare_explanations, make_judge, parse_verdict
from mentor.llm import client_from_spec
from mentor.runner import open_store
from mentor.tasks import EXPLAIN
from tests.conftest import make_examples
from tests.fake_openai_server import FakeOpenAI
from tests.finished import explained, finished_run

ITEMS = explained(make_examples(2, "j"))  # 8 items with reference explanations
GOOD = ["SQL injection: a security hole that leaks the database."] * len(ITEMS)
PLAIN = ["This is a problem in the code."] * len(ITEMS)


class FirstPosition:
    name = "scripted: always prefers position A"

    def prefer(self, task, item, a, b):
        return "A"


class Mentions:
    """Prefers the explanation that mentions a word, wherever it stands."""

    name = "scripted: mentions"

    def __init__(self, word):
        self.word = word

    def prefer(self, task, item, a, b):
        return "A" if self.word in a and self.word not in b else "B" if self.word in b and self.word not in a else "tie"


def test_a_judge_that_always_prefers_the_first_position_yields_all_ties():
    result = compare_explanations(FirstPosition(), EXPLAIN, ITEMS, GOOD, PLAIN, ("x", "y"))
    assert (result["wins"], result["ties"], result["losses"]) == (0, len(ITEMS), 0)
    assert result["differential"] == 0 and result["order_disagreements"] == len(ITEMS)
    assert result["judge"] == FirstPosition.name


def test_a_consistent_judge_gives_wins_losses_and_a_differential_with_interval():
    mixed = GOOD[:6] + PLAIN[:2]
    result = compare_explanations(Mentions("security"), EXPLAIN, ITEMS, mixed, PLAIN, ("x", "y"))
    assert (result["wins"], result["ties"], result["losses"]) == (6, 2, 0)
    assert result["differential"] == pytest.approx(0.75)
    low, high = result["ci"]
    assert low <= 0.75 <= high and high <= 1.0
    flipped = compare_explanations(Mentions("security"), EXPLAIN, ITEMS, PLAIN, mixed, ("y", "x"))
    assert flipped["losses"] == 6 and flipped["differential"] == pytest.approx(-0.75)
    assert [i["outcome"] for i in result["items"]][:6] == ["win"] * 6


def test_parse_verdict():
    assert parse_verdict('{"reason": "clearer", "winner": "B"}') == "B"
    assert parse_verdict('Thinking... ```json\n{"reason": "x", "winner": "tie"}\n```') == "tie"
    assert parse_verdict("winner: a") == "A"
    assert parse_verdict("I cannot decide") is None


# ---- hosted judges: a real ChatClient against a scripted OpenAI-compatible server on 127.0.0.1 ----

def scripted_judge(decide):
    """A fake judge model: reads the two explanations out of the prompt and lets `decide(a, b)` pick."""
    def reply(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        a = prompt.split("[EXPLANATION A]")[1].split("[EXPLANATION B]")[0]
        b = prompt.split("[EXPLANATION B]")[1]
        return json.dumps({"reason": "scripted", "winner": decide(a, b)})
    return reply


@pytest.fixture
def hosted():
    servers = []

    def start(decide):
        servers.append(FakeOpenAI(default=scripted_judge(decide)).__enter__())
        return servers[-1].url
    yield start
    for server in servers:
        server.__exit__(None)


def test_hosted_judge_both_orders(hosted):
    first = LLMJudge(client_from_spec("openai:judge", base_url=hosted(lambda a, b: "A"), api_key="k"), "openai:judge")
    result = compare_explanations(first, EXPLAIN, ITEMS, GOOD, PLAIN, ("x", "y"))
    assert result["ties"] == len(ITEMS) and result["judge"] == "hosted: openai:judge"
    fair = hosted(lambda a, b: "A" if "security" in a else "B")
    judge = LLMJudge(client_from_spec("openai:judge", base_url=fair, api_key="k"), "openai:judge")
    result = compare_explanations(judge, EXPLAIN, ITEMS, GOOD, PLAIN, ("x", "y"))
    assert result["wins"] == len(ITEMS) and result["differential"] == 1.0
    assert judge.tokens > 0 and judge.unparseable == 0


def test_mentor_judge_with_a_hosted_judge_records_its_calls(tmp_path, home, hosted, monkeypatch):
    run_id, _ = finished_run(tmp_path)
    monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", hosted(lambda a, b: "A"))
    monkeypatch.setenv("MENTOR_OPENAI_API_KEY", "test-key")
    result = CliRunner().invoke(app, ["judge", str(run_id), "--systems", "round:1,base", "--judge", "openai:judge-model"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "judge: hosted: openai:judge-model" in result.output
    assert "0 wins, 12 ties, 0 losses" in result.output and "+0.000" in result.output
    store = open_store()
    saved = store.evaluations(run_id, "judge")[-1]["result"]
    assert saved["task"] == "explain" and saved["n"] == 12 and saved["a"] == f"round 1 (run {run_id})"
    assert store.call_totals(run_id)[None]["calls"] == 24  # every judge call kept raw, both orders


def test_judge_needs_reference_explanations_and_a_known_spec(tmp_path):
    with pytest.raises(JudgeError, match="reference 'explanation'"):
        EmbeddingJudge(encode=lambda texts: [[1.0]] * len(texts)).prefer(EXPLAIN, make_examples(1)[0], "a", "b")
    with pytest.raises(JudgeError, match="unknown judge"):
        make_judge("gpt-4")


def test_judge_refuses_systems_that_cannot_explain(tmp_path, home):
    run_id, _ = finished_run(tmp_path, rounds=1)
    result = CliRunner().invoke(app, ["judge", str(run_id), "--models", "best,tfidf"])
    assert isinstance(result.exception, JudgeError) and "writes no explanations" in str(result.exception)
    # One system is a usage error, caught while the command line is parsed: exit 2, nothing judged.
    result = CliRunner().invoke(app, ["judge", str(run_id), "--models", "best"])
    assert result.exit_code == 2 and "exactly two" in result.output.replace("\n", " ")


# ---- the offline judge ----------------------------------------------------------------------------

VOCAB = sorted({w for t in GOOD + PLAIN + [e.output["explanation"] for e in ITEMS] for w in t.lower().split()})


def _bag_of_words(texts):
    """A stand-in encoder: unit vectors over a fixed vocabulary, so closeness is word overlap."""
    out = []
    for t in texts:
        v = [float(w in t.lower().split()) for w in VOCAB]
        norm = sum(x * x for x in v) ** 0.5 or 1.0
        out.append([x / norm for x in v])
    return out


def test_embedding_judge_prefers_the_explanation_closer_to_the_reference():
    judge = EmbeddingJudge(encode=_bag_of_words)
    close = [e.output["explanation"] for e in ITEMS]
    result = compare_explanations(judge, EXPLAIN, ITEMS, close, PLAIN, ("ref-like", "plain"))
    assert result["wins"] == len(ITEMS)
    empty = compare_explanations(judge, EXPLAIN, ITEMS, PLAIN, [""] * len(ITEMS), ("plain", "none"))
    assert empty["wins"] == len(ITEMS)  # no explanation loses to any explanation
    same = compare_explanations(judge, EXPLAIN, ITEMS, PLAIN, PLAIN, ("p", "p"))
    assert same["ties"] == len(ITEMS)


@pytest.mark.slow
def test_mentor_judge_runs_offline_on_a_finished_run(tmp_path, home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_id, _ = finished_run(tmp_path)
    result = CliRunner().invoke(app, ["judge", str(run_id), "--systems", "round:2,base", "--limit", "8", "--json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = json.loads(result.stdout)
    assert out["judge"].startswith("offline: all-MiniLM-L6-v2") and out["n"] == 8
    assert out["wins"] + out["ties"] + out["losses"] == 8
    # A real embedding model: an explanation that restates the reference beats an unrelated one.
    judge = EmbeddingJudge()
    assert judge.prefer(EXPLAIN, ITEMS[0], ITEMS[0].output["explanation"], "Rename the variable for style.") == "A"


def test_a_holdout_without_explanations_needs_a_hosted_judge(tmp_path, home, hosted, monkeypatch):
    from mentor.runner import start_run
    from mentor.config import load_config
    from tests.conftest import write_jsonl

    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(10, "pool"))
    holdout = write_jsonl(tmp_path / "holdout.jsonl", make_examples(2, "holdout", seed=1))  # labels only
    run_id = start_run(load_config(overrides=[f"data.pool={pool}", f"data.holdout={holdout}", "student.model=scripted",
                                              "teacher.exam_size=8", "teacher.new_examples=8", "loop.rounds=1"]))["run_id"]
    offline = CliRunner().invoke(app, ["judge", str(run_id), "--systems", "round:1,base"])
    assert isinstance(offline.exception, JudgeError) and "has none" in str(offline.exception)
    monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", hosted(lambda a, b: "tie"))
    monkeypatch.setenv("MENTOR_OPENAI_API_KEY", "test-key")
    result = CliRunner().invoke(app, ["judge", str(run_id), "--systems", "round:1,base", "--judge", "openai:j"])
    assert result.exit_code == 0 and "0 wins, 8 ties, 0 losses" in result.output
