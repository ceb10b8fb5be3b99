"""`mentor eval --models`: several systems on the same data, the TF-IDF baseline, latency and cost figures."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

import mentor.commands_eval  # noqa: F401 - registers judge/report on the app
from mentor.baseline import train_tfidf
from mentor.cli import app
from mentor.compare import compare, measure
from mentor.records import Answer
from mentor.runner import open_store
from mentor.store import StoreError
from mentor.students import StudentError
from mentor.targets import Target, resolve_systems, run_context
from mentor.tasks import SEVERITY
from tests.conftest import make_examples
from tests.fake_openai_server import FakeOpenAI
from tests.finished import finished_run

SINGLE_KEYS = {"accuracy", "macro_f1", "per_class", "confusion", "n", "unparseable"}


@pytest.fixture
def run(tmp_path, home):
    return finished_run(tmp_path)


def _eval(*args: str):
    result = CliRunner().invoke(app, ["eval", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout


def test_eval_compares_systems_in_one_table_and_as_json(run):
    run_id, data = run
    text = _eval("--data", str(data), "--models", "base,best,round:1,tfidf")
    for name in ("base scripted", f"best (run {run_id} round 0)", f"round 1 (run {run_id})", "tfidf", "F1 per class"):
        assert name in text
    result = json.loads(_eval("--data", str(data), "--models", "base,best,round:1,tfidf", "--json"))
    assert result["n"] == 24 and result["task"] == "severity"
    assert [s["kind"] for s in result["systems"]] == ["local", "local", "local", "tfidf"]
    for system in result["systems"]:
        assert SINGLE_KEYS | {"qwk", "critical_recall", "within_one", "ci", "latency_s", "throughput_per_s", "cost_per_1k"} <= set(system)
        low, high = system["ci"]["accuracy"]
        assert low <= system["accuracy"] <= high
        assert system["cost_per_1k"] == 0.0
    # Both comparisons were kept with the run, for `mentor report`.
    saved = open_store().evaluations(run_id, "eval")
    assert len(saved) == 2 and saved[-1]["result"] == result


def test_single_system_json_keeps_the_flat_keys(run):
    _, data = run
    for args in ([], ["--base"], ["--models", "best"]):
        result = json.loads(_eval("--data", str(data), "--json", *args))
        assert SINGLE_KEYS <= set(result) and result["n"] == 24 and "system" in result
    sample = json.loads(_eval("--data", str(data), "--json", "--limit", "8"))
    assert sample["n"] == 8 and all(m["support"] == 2 for m in sample["per_class"].values())  # stratified


def test_tfidf_learns_the_run_curriculum_and_beats_guessing(run):
    run_id, data = run
    result = json.loads(_eval("--data", str(data), "--models", "base,tfidf", "--json"))
    base, tfidf = result["systems"]
    assert tfidf["accuracy"] > 0.9 > base["accuracy"]
    assert f"{len(open_store().curriculum(run_id))} curriculum ex." in tfidf["system"]
    # Paired against the first system: the difference of the two macro-F1s, and tfidf wins every resample.
    paired = tfidf["vs_first"]
    assert "vs_first" not in base and paired["system"] == base["system"]
    assert paired["macro_f1_diff"] == pytest.approx(tfidf["macro_f1"] - base["macro_f1"])
    assert 0 < paired["ci"][0] <= paired["macro_f1_diff"] <= paired["ci"][1] and paired["share_higher"] == 1.0
    assert paired["unit"] == "item" and paired["groups"] == 24  # no two items share a review or code here
    assert "paired on the same items" in _eval("--data", str(data), "--models", "base,tfidf")


def test_train_tfidf_answers_like_a_student():
    model = train_tfidf(SEVERITY, make_examples(10, "train"))
    answers = model.answer(SEVERITY, [e.input for e in make_examples(2, "test", seed=5)])
    assert len(answers) == 8
    for a in answers:
        assert a.parsed["issue_type"] in SEVERITY.labels and a.raw == a.parsed["issue_type"]
        assert sum(a.probs.values()) == pytest.approx(1.0) and max(a.probs, key=a.probs.get) == a.raw
    with pytest.raises(StudentError, match="at least two labels"):
        train_tfidf(SEVERITY, [e for e in make_examples(3) if e.output["issue_type"] == "minor"])


def test_bad_system_specs_are_user_errors(run):
    ctx = run_context(None, "latest", need_run=True)
    with pytest.raises(StudentError, match="unknown system 'gpt4'"):
        resolve_systems(ctx, ["gpt4"])
    with pytest.raises(StudentError, match="twice"):
        resolve_systems(ctx, ["base", "base"])
    with pytest.raises(StoreError, match="has rounds 0, 1, 2"):
        resolve_systems(ctx, ["round:7"])
    result = CliRunner().invoke(app, ["eval", "--data", "x.jsonl", "--models", "base", "--base"])
    assert isinstance(result.exception, StudentError)


def test_best_and_tfidf_need_a_run(tmp_path, home):
    with pytest.raises(StoreError, match="no mentor store|no runs yet"):
        resolve_systems(run_context(None, "latest", need_run=True), ["tfidf"])


@dataclass
class _Timed:
    """A student whose answers take known times and whose calls cost known money."""

    seconds: list[float]
    usage: "_Usage"
    name: str = "timed"
    can_finetune: bool = False

    def answer(self, task, inputs, progress=None, explain=True):
        self.usage.cost += 0.002 * len(inputs)
        return [Answer("major", {"issue_type": "major"}, None, s) for s, _ in zip(self.seconds, inputs)]


@dataclass
class _Usage:
    cost: float = 0.0


def test_latency_throughput_and_cost_per_thousand():
    examples = make_examples(5)  # 20 items
    seconds = [0.1 * (i + 1) for i in range(20)]
    student = _Timed(seconds, _Usage(cost=1.0))  # money spent before this evaluation is not counted
    figures = measure(Target("timed", SEVERITY, student, kind="remote"), examples)
    assert figures["latency_s"]["median"] == pytest.approx(1.05)
    assert figures["latency_s"]["p95"] == pytest.approx(1.905)
    assert figures["cost_per_1k"] == pytest.approx(2.0)
    assert figures["throughput_per_s"] > 0
    assert figures["accuracy"] == pytest.approx(0.25) and figures["per_class"]["major"]["recall"] == 1.0
    both = compare([Target("timed", SEVERITY, student)], examples, "file.jsonl")
    assert both["n"] == 20 and both["data"] == "file.jsonl" and len(both["systems"]) == 1


def test_a_hosted_model_sits_beside_local_systems_with_its_cost(run, monkeypatch):
    _, data = run
    usage = {"prompt_tokens": 1000, "completion_tokens": 10}
    with FakeOpenAI(default={"content": '{"issue_type": "critical"}', "usage": usage}) as server:
        monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("MENTOR_OPENAI_API_KEY", "test-key")
        result = json.loads(_eval("--data", str(data), "--models", "base,openai:gpt-4o-mini", "--json"))
    hosted = result["systems"][1]
    assert hosted["system"] == "openai:gpt-4o-mini" and hosted["kind"] == "remote"
    assert hosted["per_class"]["critical"]["recall"] == 1.0 and hosted["critical_recall"] == 1.0
    # gpt-4o-mini's list price: $0.15 / $0.60 per million tokens in / out.
    assert hosted["cost_per_1k"] == pytest.approx(1000 * (1000 * 0.15 + 10 * 0.60) / 1e6)
    assert result["systems"][0]["cost_per_1k"] == 0.0


class _Batching:
    """A student with a fixed cost per call and a small one per item, like a model answering a batch."""

    name, can_finetune = "batching", False

    def __init__(self) -> None:
        self.calls: list[int] = []

    def answer(self, task, inputs, progress=None, explain=True):
        import time
        self.calls.append(len(inputs))
        time.sleep(0.03 + 0.001 * len(inputs))
        share = (0.03 + 0.001 * len(inputs)) / len(inputs)
        return [Answer("major", {"issue_type": "major"}, None, share) for _ in inputs]


def test_latency_of_one_item_requests_is_measured_only_when_asked():
    examples = make_examples(5)  # 20 items
    student = _Batching()
    batched = measure(Target("b", SEVERITY, student), examples)
    assert batched["latency_s"]["measured"] == "batch share" and batched["latency_s"]["median"] < 0.01
    student.calls.clear()
    alone = measure(Target("b", SEVERITY, student), examples, latency_items=4)
    assert student.calls == [20, 1, 1, 1, 1]  # the batched pass for the metrics, then four requests of one item
    assert alone["latency_s"]["measured"] == "one item per request" and alone["latency_s"]["items"] == 4
    assert alone["latency_s"]["median"] >= 0.03  # the per-call cost a lone request pays in full
    assert alone["accuracy"] == batched["accuracy"]


def test_eval_latency_option(run):
    _, data = run
    result = json.loads(_eval("--data", str(data), "--models", "base", "--latency", "3", "--json"))
    assert result["latency_s"]["measured"] == "one item per request" and result["latency_s"]["items"] == 3
    assert "one-item requests (3 per system)" in _eval("--data", str(data), "--models", "base,best", "--latency", "3")


def test_paired_difference_resamples_whole_findings_when_items_share_a_review(run, tmp_path):
    _, data = run
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    # Each finding twice: the same review on a second snippet.
    twice = rows + [{**r, "input": {**r["input"], "code": r["input"]["code"] + "\n// another file"}} for r in rows]
    shared = tmp_path / "shared-findings.jsonl"
    shared.write_text("".join(json.dumps(r) + "\n" for r in twice), encoding="utf-8")
    result = json.loads(_eval("--data", str(shared), "--models", "base,tfidf", "--json"))
    paired = result["systems"][1]["vs_first"]
    assert result["n"] == 48 and paired["unit"] == "finding" and paired["groups"] == 24
    assert "resamples of the 24 findings" in _eval("--data", str(shared), "--models", "base,tfidf")
