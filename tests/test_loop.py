"""The loop end to end with the shipped scripted student: holdout never leaks, stops, kill -9 and resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from mentor.config import load_config
from mentor.runner import open_store, resume_run, start_run
from mentor.tasks import SEVERITY
from tests.conftest import make_examples, write_jsonl

BASE = ["student.model=scripted", "teacher.exam_size=12", "teacher.new_examples=20", "loop.rounds=3", "loop.patience=5"]


def _overrides(pool, holdout, *extra):
    return [f"data.pool={pool}", f"data.holdout={holdout}", *BASE, *extra]


def test_run_never_lets_holdout_items_into_exams_or_curricula(tmp_path, home):
    holdout = make_examples(5, "holdout", seed=1)
    # The pool also contains every holdout item, re-spaced and re-cased: they must be excluded and counted.
    disguised = [type(e)({k: "  " + v.upper() + " " for k, v in e.input.items()}, e.output) for e in holdout]
    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(30, "pool") + disguised)
    hold = write_jsonl(tmp_path / "holdout.jsonl", holdout)
    result = start_run(load_config(overrides=_overrides(pool, hold)))
    store = open_store()
    assert store.run(result["run_id"])["status"] == "finished"
    assert store.rounds(result["run_id"])[0]["stats"]["pool_excluded_as_holdout"] == len(holdout)
    holdout_keys = {SEVERITY.key(e.input) for e in holdout}
    exam_keys = {SEVERITY.key(q) for q in store.all_exam_keys(result["run_id"])}
    curriculum_keys = {SEVERITY.key(e.input) for e in store.curriculum(result["run_id"], status=None)}
    assert exam_keys and curriculum_keys
    assert not holdout_keys & (exam_keys | curriculum_keys)
    rounds = store.rounds(result["run_id"])
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]
    assert all(r["metrics"]["n"] == len(holdout) for r in rounds)
    assert all(1 <= r["proficiency"] <= 10 and r["feedback"] for r in rounds[1:])


def test_patience_stops_and_keeps_the_best_round(data_files, home):
    pool, hold = data_files
    result = start_run(load_config(overrides=_overrides(pool, hold, "loop.rounds=6", "loop.patience=2")))
    # The scripted student memorises what it is taught, so the holdout never improves: stop after 2 stale rounds.
    assert result["best_round"] == 0 and "patience 2" in result["reason"]
    assert len(open_store().rounds(result["run_id"])) == 3


def test_wall_clock_budget_stops_between_steps(data_files, home):
    pool, hold = data_files
    result = start_run(load_config(overrides=_overrides(pool, hold, "loop.max_minutes=0.000001")))
    assert "budget" in result["reason"] and len(open_store().rounds(result["run_id"])) == 1


def test_resume_of_a_finished_run_is_refused(data_files, home):
    from mentor.store import StoreError

    pool, hold = data_files
    start_run(load_config(overrides=_overrides(pool, hold, "loop.rounds=1")))
    with pytest.raises(StoreError, match="already finished"):
        resume_run()


KILLER = textwrap.dedent("""
    import os, signal, sys
    import mentor.runner as runner
    from mentor.config import load_config
    from mentor.students.scripted import ScriptedStudent

    step, round_no = sys.argv[1], int(sys.argv[2])
    order = sys.argv[3].split(",")  # the steps that call answer(), in a round's order (round 0 only evaluates)
    calls = {"answer": 0, "finetune": 0}

    class KilledMidStep:
        # Composition, not a subclass: delegates to the shipped student, dies inside the chosen step.
        name, can_finetune = "scripted", True
        def __init__(self):
            self.inner = ScriptedStudent()
        def use_adapter(self, path):
            self.inner.use_adapter(path)
        def answer(self, task, inputs, progress=None, explain=True):
            calls["answer"] += 1
            if step in order and calls["answer"] == 1 + (round_no - 1) * len(order) + order.index(step) + 1:
                os.kill(os.getpid(), signal.SIGKILL)
            return self.inner.answer(task, inputs, progress, explain)
        def finetune(self, task, examples, out_dir, progress=None):
            calls["finetune"] += 1
            report = self.inner.finetune(task, examples, out_dir, progress)
            if step == "finetune" and calls["finetune"] == round_no:
                os.kill(os.getpid(), signal.SIGKILL)  # the adapter is written, the step is not marked done
            return report

    runner.make_student = lambda config, seed: KilledMidStep()
    runner.start_run(load_config(overrides=sys.argv[4:]))
""")


def _dump(db_path):
    db = sqlite3.connect(db_path)
    tables = {}
    for table, order in [("exam", "round, idx"), ("curriculum", "round, idx"), ("predictions", "round, idx"),
                         ("probes", "round, idx"), ("rounds", "round"), ("steps", "round, step")]:
        rows = db.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
        if table == "steps":
            rows = [r[:3] for r in rows]  # timings differ between runs
        if table == "rounds":
            rows = [tuple(json.dumps(json.loads(v)["examples"]) if i == 7 and v else v for i, v in enumerate(r)) for r in rows]
            rows = [tuple(c for i, c in enumerate(r) if i != 6) for r in rows]  # the adapter path includes the home
        tables[table] = rows
    db.close()
    return tables


@pytest.mark.parametrize("step, round_no", [("probe", 1), ("answer", 1), ("finetune", 2), ("evaluate", 2), ("calibrate", 2)])
def test_kill_minus_9_mid_round_resumes_with_the_same_rows(tmp_path, data_files, monkeypatch, step, round_no):
    pool, hold = data_files
    overrides = _overrides(pool, hold, "teacher.name=reference:items", *(["loop.calibration=20"] if step == "calibrate" else []))
    reference_home, killed_home = tmp_path / "reference", tmp_path / "killed"
    start_run(load_config(overrides=overrides), reference_home)

    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "MENTOR_HOME": str(killed_home), "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    order = ["probe", "answer"] + (["calibrate"] if step == "calibrate" else []) + ["evaluate"]
    proc = subprocess.run([sys.executable, str(script), step, str(round_no), ",".join(order), *overrides], env=env,
                          cwd=os.path.dirname(os.path.dirname(__file__)), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert open_store(killed_home).run(1)["status"] == "running"

    result = resume_run(home=killed_home)
    assert result["run_id"] == 1 and open_store(killed_home).run(1)["status"] == "finished"
    assert _dump(killed_home / "mentor.db") == _dump(reference_home / "mentor.db")


class _Improving:
    """Labels right and no explanation before any training; after it, every label 'trivial' and the reference
    explanation word for word: a round the holdout metric alone would roll back, explanations make the best."""

    name, can_finetune = "improving", True

    def __init__(self, references):
        self.references, self.trained, self.explained = references, 0, []

    def use_adapter(self, path):
        pass

    def answer(self, task, inputs, progress=None, explain=True):
        from mentor.records import Answer

        if explain:
            self.explained.append(len(inputs))
        out = []
        for item in inputs:
            reference, label = self.references[task.key(item)]
            label = label if not self.trained else "trivial"
            text = reference if self.trained else ""
            raw = f"{label}\nexplanation: {text}" if explain and text else label
            out.append(Answer(raw=raw, parsed=task.parse(raw) if explain and text else {"issue_type": label},
                              probs={lab: float(lab == label) for lab in task.labels}))
        return out

    def finetune(self, task, examples, out_dir, progress=None):
        from mentor.records import TrainReport

        self.trained += 1
        out_dir.mkdir(parents=True, exist_ok=True)
        return TrainReport(adapter_dir=str(out_dir), examples=len(examples), steps=1, final_loss=0.1, seconds=0.0)


def _bag_of_words(texts):
    import numpy as np

    rows = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            rows[i, hash(word) % 64] += 1
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def test_an_explain_run_writes_explanations_for_a_sample_and_weighs_them_in_the_best_round(tmp_path, home, monkeypatch):
    import mentor.baselines.embed as embed
    import mentor.runner as runner
    from mentor.records import Example
    from mentor.summary import run_overview
    from mentor.tasks import EXPLAIN

    def explained(examples):
        return [Example(e.input, {**e.output, "explanation": f"because {e.output['issue_type']} things happen in "
                                                              f"{e.input['review']}"}) for e in examples]

    pool, holdout = explained(make_examples(10, "pool")), explained(make_examples(4, "holdout", seed=1))
    student = _Improving({EXPLAIN.key(e.input): (e.output["explanation"], e.output["issue_type"]) for e in pool + holdout})
    monkeypatch.setattr(runner, "make_student", lambda config, seed: student)
    monkeypatch.setattr(embed, "CachedEncoder", lambda store: _bag_of_words)
    paths = write_jsonl(tmp_path / "pool.jsonl", pool), write_jsonl(tmp_path / "holdout.jsonl", holdout)
    result = start_run(load_config(overrides=[*_overrides(*paths, "loop.rounds=1"), "task=explain", "loop.explain_sample=8"]))

    store = open_store()
    rounds = store.rounds(result["run_id"])
    untuned, tuned = rounds[0]["metrics"], rounds[1]["metrics"]
    assert untuned["macro_f1"] == 1.0 and untuned["explanation"]["similarity"] == 0.0 and untuned["selection"] == 0.5
    assert tuned["macro_f1"] < 0.2 and tuned["explanation"]["similarity"] == pytest.approx(1.0)
    assert tuned["selection"] == pytest.approx(0.5 * tuned["macro_f1"] + 0.5) and result["best_round"] == 1
    # Text is generated only for the sample: holdout scoring, the exam (an offline teacher) ask for labels only.
    assert student.explained == [8, 8] and untuned["explanation"]["items"] == 8 == len(untuned["explanation"]["per_item"])
    overview = run_overview(store, result["run_id"])
    assert overview["criterion"].startswith("0.5 x holdout macro-F1 + 0.5 x explanation similarity")
    assert overview["rounds"][1]["explanation_similarity"] == pytest.approx(1.0)
    # A labels-only criterion (weight 0) keeps the untuned round with the same answers.
    student.trained = 0
    again = start_run(load_config(overrides=[*_overrides(*paths, "loop.rounds=1"), "task=explain", "loop.explain_sample=8",
                                             "loop.explanation_weight=0"]))
    assert again["best_round"] == 0 and run_overview(store, again["run_id"])["criterion"] == "holdout macro-F1"
