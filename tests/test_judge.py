"""Pairwise explanation judging: both orders cancel position bias and keep both verdicts and reasons; hosted
judges over a local HTTP server; the offline embedding and consequence judges; two judges' agreement; the
`definition` and `reference` systems; the report's side-by-side examples."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import mentor.commands_eval  # noqa: F401 - registers judge/report on the app
from mentor.cli import app
from mentor.compare import judge_run
from mentor.consequence import ConsequenceJudge, score
from mentor.judge import (EmbeddingJudge, JudgeError, LLMJudge, agreement, compare_explanations, make_judge, parse_verdict,
                          second_judge)
from mentor.llm import client_from_spec
from mentor.records import Example
from mentor.report import build_report
from mentor.report.page import esc
from mentor.review.findings import MEANING
from mentor.runner import open_store
from mentor.targets import run_context
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
        return "A", "it came first"


class Mentions:
    """Prefers the explanation that mentions a word, wherever it stands."""

    name = "scripted: mentions"

    def __init__(self, word):
        self.word = word

    def prefer(self, task, item, a, b):
        verdict = "A" if self.word in a and self.word not in b else "B" if self.word in b and self.word not in a else "tie"
        return verdict, f"{self.word!r} in {verdict}"


def test_a_judge_that_always_prefers_the_first_position_yields_all_ties_and_a_bias_of_one():
    result = compare_explanations(FirstPosition(), EXPLAIN, ITEMS, GOOD, PLAIN, ("x", "y"))
    assert (result["wins"], result["ties"], result["losses"]) == (0, len(ITEMS), 0)
    assert result["differential"] == 0 and result["order_disagreements"] == len(ITEMS)
    assert result["judge"] == FirstPosition.name
    assert result["position_bias"] == {"decisive_verdicts": 2 * len(ITEMS), "chose_first": 2 * len(ITEMS),
                                       "share_first": 1.0, "order_disagreements": len(ITEMS)}


def test_both_orders_verdicts_and_reasons_are_kept_per_item():
    mixed = GOOD[:6] + PLAIN[:2]
    result = compare_explanations(Mentions("security"), EXPLAIN, ITEMS, mixed, PLAIN, ("x", "y"))
    first, last = result["items"][0], result["items"][-1]
    # x stands first in the forward order and second in the backward one: the raw verdicts name positions.
    assert (first["forward_verdict"], first["backward_verdict"], first["outcome"]) == ("A", "B", "win")
    assert (first["forward_reason"], first["backward_reason"]) == ("'security' in A", "'security' in B")
    assert (last["forward_verdict"], last["backward_verdict"], last["forward_reason"]) == ("tie", "tie", "'security' in tie")
    # A consistent judge shows no position bias: its decisive verdicts split evenly between the positions.
    assert result["position_bias"]["share_first"] == 0.5 and result["position_bias"]["decisive_verdicts"] == 12


def test_a_judge_must_return_a_verdict_and_a_reason():
    class Bare:
        name = "bare"

        def prefer(self, task, item, a, b):
            return "A"
    with pytest.raises(TypeError, match="must return"):
        compare_explanations(Bare(), EXPLAIN, ITEMS, GOOD, PLAIN, ("x", "y"))


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
    assert parse_verdict('{"reason": "clearer", "winner": "B"}') == ("B", "clearer")
    assert parse_verdict('Thinking... ```json\n{"reason": "x", "winner": "tie"}\n```') == ("tie", "x")
    assert parse_verdict("winner: a") == ("A", "")
    assert parse_verdict("I cannot decide") == (None, "")


# ---- hosted judges: a real ChatClient against a scripted OpenAI-compatible server on 127.0.0.1 ----

def scripted_judge(decide):
    """A fake judge model: reads the two explanations out of the prompt and lets `decide(a, b)` pick; with
    `decide` None it answers prose that names no winner."""
    def reply(body: dict) -> str:
        if decide is None:
            return "Both have merits; I cannot decide."
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
    assert {row["forward_reason"] for row in result["items"]} == {"scripted"}  # the reply's reason, kept


def test_an_unreadable_hosted_reply_is_a_tie_with_that_reason(hosted):
    judge = LLMJudge(client_from_spec("openai:judge", base_url=hosted(None), api_key="k"), "openai:judge")
    result = compare_explanations(judge, EXPLAIN, ITEMS[:2], GOOD[:2], PLAIN[:2], ("x", "y"))
    assert result["ties"] == 2 and judge.unparseable == 4
    assert result["items"][0]["forward_reason"] == "unparseable reply"


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
    with pytest.raises(JudgeError, match="true severity"):
        ConsequenceJudge().prefer(EXPLAIN, Example({"code": "x", "review": "y"}, {"issue_type": "blocker"}), "a", "b")


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
    assert judge.prefer(EXPLAIN, ITEMS[0], ITEMS[0].output["explanation"], "Rename the variable for style.")[0] == "A"
    assert out["agreement"]["judges"] == [out["judge"], ConsequenceJudge.name]


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


def test_embedding_judge_reason_gives_both_similarities():
    verdict, reason = EmbeddingJudge(encode=_bag_of_words).prefer(EXPLAIN, ITEMS[0], ITEMS[0].output["explanation"], "")
    assert verdict == "A" and reason == "similarity to the reference: A 1.00, B (empty) (margin 0.02)"


# ---- the consequence judge and two judges' agreement ------------------------------------------------

def _item(level: str) -> Example:
    return Example({"code": "x = 1", "review": "look here"}, {"issue_type": level, "explanation": "ref"})


def test_consequence_judge_prefers_the_true_levels_consequence_and_says_which_words():
    judge = ConsequenceJudge()
    verdict, reason = judge.prefer(EXPLAIN, _item("critical"), "The variable name is unclear.",
                                   "Attackers can INJECT commands through it.")
    assert verdict == "B" and "'INJECT'" in reason and "true level critical" in reason
    # The same two texts for a trivial finding: naming an attack is now another level's consequence.
    assert judge.prefer(EXPLAIN, _item("trivial"), "Poor naming hurts readability.",
                        "Poor naming lets attackers in.")[0] == "A"
    # Naming another level's consequence costs a point: +1 -1 loses to +1.
    assert score("Poor naming could crash the program.", "trivial")[0] == 0
    assert score("Poor naming hurts readability.", "trivial")[0] == 2
    # Word stems, and a negated mention is not a claim.
    assert score("It is slowing every request down.", "minor")[0] == 1
    assert score("This does not crash anything; it is a style nit.", "trivial")[0] == 1


def test_consequence_judge_ties_on_equal_scores():
    judge = ConsequenceJudge()
    # Each names one minor consequence for a critical finding: -1 against -1.
    verdict, reason = judge.prefer(EXPLAIN, _item("critical"), "It is slow.", "It wastes memory.")
    assert verdict == "tie" and "A -1" in reason and "B -1" in reason
    assert judge.prefer(EXPLAIN, _item("major"), "Nothing to say.", "Hmm.") == (
        "tie", "true level major: A +0 (names no consequence); B +0 (names no consequence)")
    assert make_judge("consequence").name == judge.name
    # Each judge is checked by an independent one: the lexicon checks the others, the embeddings check the lexicon.
    assert isinstance(second_judge(EmbeddingJudge()), ConsequenceJudge)
    assert isinstance(second_judge(judge), EmbeddingJudge)


class Scripted:
    """Gives the first system ("x ..." texts) a scripted outcome per item, in whichever position it stands."""

    def __init__(self, name, outcomes):
        self.name, self.outcomes = name, outcomes

    def prefer(self, task, item, a, b):
        outcome = self.outcomes[int(item.input["review"])]
        if outcome == "tie":
            return "tie", "scripted tie"
        x_first = a.startswith("x")
        return ("A" if (outcome == "win") == x_first else "B"), f"scripted {outcome}"


def test_agreement_rate_and_kappa_match_a_hand_computation():
    items = [Example({"code": "c", "review": str(i)}, {"issue_type": "minor", "explanation": "e"}) for i in range(6)]
    first, second = [f"x {i}" for i in range(6)], [f"y {i}" for i in range(6)]
    judge = Scripted("one", ["win", "win", "loss", "tie", "win", "loss"])
    check = Scripted("two", ["win", "loss", "loss", "tie", "tie", "loss"])
    a = compare_explanations(judge, EXPLAIN, items, first, second, ("x", "y"))
    b = compare_explanations(check, EXPLAIN, items, first, second, ("x", "y"))
    assert [row["outcome"] for row in a["items"]] == judge.outcomes and a["position_bias"]["share_first"] == 0.5
    found = agreement([row["outcome"] for row in a["items"]], [row["outcome"] for row in b["items"]])
    # Both decisive on items 0, 1, 2, 5; they agree on 0, 2, 5. Kappa: observed agreement 4/6 (items 0, 2, 3, 5);
    # by chance (3*1 + 1*2 + 2*3) / 36 = 11/36 from the marginals win/tie/loss 3/1/2 and 1/2/3; (24-11)/(36-11).
    assert found["items"] == 6 and found["both_decisive"] == 4 and found["agree"] == 3
    assert found["rate"] == pytest.approx(0.75) and found["kappa"] == pytest.approx(13 / 25)
    # Kappa is undefined when both give one and the same outcome everywhere; nothing decisive, no rate.
    assert agreement(["tie"] * 3, ["tie"] * 3) == {"items": 3, "both_decisive": 0, "agree": 0, "rate": None, "kappa": None}


# ---- systems that need no model, through judge_run and the command line ------------------------------

def test_definition_and_reference_systems_and_the_judges_that_favour_them(tmp_path, home):
    run_id, _ = finished_run(tmp_path)
    holdout = {e["input"]["review"]: e["output"] for e in map(json.loads, (tmp_path / "holdout.jsonl").read_text().splitlines())}
    ctx = run_context(None, str(run_id), need_run=True)
    result = judge_run(ctx, ("definition", "reference"), EmbeddingJudge(encode=_bag_of_words))
    assert result["a"] == "definition (the true level's canned meaning)" and result["b"] == "reference explanation"
    for row in result["items"]:
        truth = holdout[row["input"]["review"]]
        assert row["a_text"] == MEANING[truth["issue_type"]] and row["b_text"] == truth["explanation"]
    assert result["losses"] == result["n"] == 12  # the reference is closest to itself
    assert result["check"]["judge"] == ConsequenceJudge.name and result["agreement"]["items"] == 12
    assert all(row["check_outcome"] in ("win", "tie", "loss") and row["check_reason"] for row in result["items"])
    notes = " ".join(result["notes"])
    assert "reference: offline: all-MiniLM-L6-v2" in notes and "definition: offline: consequence lexicon" in notes
    with pytest.raises(JudgeError, match="same system twice"):
        judge_run(ctx, ("reference", "reference"), ConsequenceJudge(), check=ConsequenceJudge())


def test_mentor_judge_prints_and_saves_bias_and_agreement(tmp_path, home, hosted, monkeypatch):
    run_id, _ = finished_run(tmp_path)
    monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", hosted(lambda a, b: "A"))
    monkeypatch.setenv("MENTOR_OPENAI_API_KEY", "test-key")
    result = CliRunner().invoke(app, ["judge", str(run_id), "--models", "definition,reference", "--judge", "openai:j"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = " ".join(result.output.split())
    assert "position bias: 1.00 of 24 decisive verdicts chose the explanation shown first" in text
    assert f"check judge: {ConsequenceJudge.name}" in text and "Cohen's kappa" in text
    assert f"note: definition: {ConsequenceJudge.name} favours it by construction" in text
    saved = open_store().evaluations(run_id, "judge")[-1]["result"]
    assert saved["position_bias"]["share_first"] == 1.0 and saved["agreement"]["judges"] == ["hosted: openai:j", ConsequenceJudge.name]
    as_json = CliRunner().invoke(app, ["judge", str(run_id), "--models", "definition,reference", "--judge", "openai:j", "--json"])
    out = json.loads(as_json.stdout)
    assert {"position_bias", "agreement", "check", "notes"} <= set(out) and out["items"][0]["forward_reason"] == "scripted"


def test_report_shows_examples_side_by_side_escaped(tmp_path, home):
    from mentor.config import load_config
    from mentor.runner import start_run
    from tests.conftest import write_jsonl

    hostile = {"critical": "<script>alert('x')</script> Attackers inject SQL, the program crashes and data leaks.",
               "major": "<script>alert('x')</script> Only a style nit.",
               "minor": "<img src=x onerror=alert(1)> It is merely odd.", "trivial": "<b>Naming</b> and readability."}
    examples = [Example({**e.input, "review": "<i>look</i> " + e.input["review"]},
                        {**e.output, "explanation": hostile[e.output["issue_type"]]}) for e in make_examples(2, "h", seed=1)]
    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(10, "pool"))
    holdout = write_jsonl(tmp_path / "holdout.jsonl", examples)
    run_id = start_run(load_config(overrides=[f"data.pool={pool}", f"data.holdout={holdout}", "student.model=scripted",
                                              "teacher.exam_size=8", "teacher.new_examples=8", "loop.rounds=1"]))["run_id"]
    store = open_store()
    result = judge_run(run_context(None, str(run_id), need_run=True), ("reference", "definition"), ConsequenceJudge(),
                       check=Mentions("SQL"))
    # critical: +3 against the definition's +2; major (-1) and minor (0) lose to it; trivial ties at +2.
    assert (result["wins"], result["ties"], result["losses"]) == (2, 2, 4)
    store.save_evaluation(run_id, "judge", result["data"], result)
    html = build_report(store, run_id, tmp_path / "report").read_text(encoding="utf-8")
    assert "<script" not in html and "<img src=x" not in html and "<i>look" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Attackers inject SQL" in html
    assert "&lt;i&gt;look&lt;/i&gt;" in html  # the finding's review, beside both explanations
    section = html.split('id="preference"')[1].split("</section>")[0]
    assert section.count("<tr>") - section.count("<thead>") == 1 + 2 + 3  # the summary row, 2 won and 3 of the 4 lost
    assert "A shown first" in section and "prefers A" in section and "prefers B" in section
    assert "true level critical: A +3" in section and "agreement (both decisive)" in section
    assert esc(f"definition: {ConsequenceJudge.name} favours it by construction") in section
