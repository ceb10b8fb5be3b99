"""`mentor study`: runs per teacher and seed, tagged and resumable; learning curves, paired differences and
examples-to-reach computed from the store (the shipped scripted student keeps these tests fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import mentor.commands_study  # noqa: F401 - registers `study` on the app
import mentor.runner as runner
from mentor.cli import app
from mentor.metrics import paired_bootstrap
from mentor.runner import open_store
from mentor.store import StoreError
from mentor.study import StudySpec, _examples_to_reach, analyse, run_study, save
from mentor.teachers import TeacherError
from tests.conftest import make_examples, write_jsonl

SMALL = ("student.model=scripted", "teacher.exam_size=8", "teacher.new_examples=12", "teacher.probe=20",
         "loop.rounds=2", "data.holdout_limit=0")


@pytest.fixture
def spec(tmp_path, home) -> StudySpec:
    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(25, "pool"))
    hold = write_jsonl(tmp_path / "hold.jsonl", make_examples(6, "hold", seed=1))
    return StudySpec(teachers=("reference:items", "random"), seeds=(0, 1),
                     overrides=(*SMALL, f"data.pool={pool}", f"data.holdout={hold}"))


def test_a_study_runs_each_teacher_and_seed_and_draws_learning_curves(spec, home):
    study_id = run_study(spec)
    store = open_store()
    members = store.study_runs(study_id)
    assert set(members) == {("reference:items", 0), ("random", 0), ("reference:items", 1), ("random", 1)}
    assert all(store.run(r)["status"] == "finished" for r in members.values())
    configs = {key: store.run(r)["config"] for key, r in members.items()}
    assert configs[("random", 1)]["teacher"]["name"] == "random" and configs[("random", 1)]["seed"] == 1
    assert configs[("reference:items", 0)]["teacher"]["exam_size"] == 8  # the overrides sit on top of the study recipe

    result = analyse(store, study_id)
    assert result["control"] == "random" and result["holdout"] == 24
    for teacher in spec.teachers:
        curve = result["curves"][teacher]
        assert [p["round"] for p in curve] == [0, 1, 2] and curve[0]["examples"] == 0
        assert curve[1]["examples"] > 0 and curve[2]["examples"] > curve[1]["examples"]
        assert all(p["min"] <= p["mean"] <= p["max"] and p["seeds"] == 2 for p in curve)
        assert curve[0]["tfidf_mean"] is None and curve[2]["tfidf_mean"] is not None
    # Examples per point are the run's accepted curriculum up to that round.
    run_id = members[("random", 0)]
    point = next(r for r in result["runs"] if r["run"] == run_id)["points"][2]
    assert point["examples"] == len(store.curriculum(run_id))
    paired = result["paired"]["reference:items"]
    assert [row["round"] for row in paired] == [1, 2] and all(0.0 <= row["share_higher"] <= 1.0 for row in paired)
    folder = save(result)
    assert (folder / "learning-curves.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((folder / "study.json").read_text())["study"] == study_id


def test_a_study_resumes_the_run_it_was_interrupted_in(spec, home, monkeypatch):
    calls = {"n": 0}
    real = runner.run_loop

    def interrupted_third(store, inputs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C after the third run was recorded, before its loop finished
        return real(store, inputs)

    monkeypatch.setattr(runner, "run_loop", interrupted_third)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec)
    store = open_store()
    study_id = store.studies()[-1]["id"]
    before = store.study_runs(study_id)
    assert len(before) == 3 and store.run(before[("reference:items", 1)])["status"] == "running"

    monkeypatch.setattr(runner, "run_loop", real)
    assert run_study(spec) == study_id  # the same arguments find the same study
    after = store.study_runs(study_id)
    assert len(after) == 4 and all(after[k] == v for k, v in before.items())
    assert all(store.run(r)["status"] == "finished" for r in after.values())
    assert len(store.runs()) == 4
    assert run_study(spec) == study_id and len(store.runs()) == 4  # a finished study runs nothing more


def test_paired_difference_of_one_seed_is_the_paired_bootstrap(spec, home):
    one_seed = StudySpec(teachers=spec.teachers, seeds=(0,), overrides=spec.overrides)
    study_id = run_study(one_seed)
    store = open_store()
    result = analyse(store, study_id)
    members = store.study_runs(result["study"])
    labels = ["critical", "major", "minor", "trivial"]
    holdout = make_examples(6, "hold", seed=1)
    truths = [e.output["issue_type"] for e in holdout]

    def said(teacher: str) -> list[str]:
        return [a.parsed["issue_type"] for a, _ in store.predictions(members[(teacher, 0)], 2)]

    direct = paired_bootstrap(labels, truths, said("random"), said("reference:items"))
    row = result["paired"]["reference:items"][-1]
    assert row["diff"] == pytest.approx(direct["macro_f1_diff"])
    assert row["ci"] == pytest.approx(direct["ci"]) and row["share_higher"] == pytest.approx(direct["share_higher"])
    assert result["resampled"] == {"unit": "item", "groups": len(holdout)}  # no two holdout items share a finding


def test_examples_to_reach_interpolates_between_rounds():
    curve = [{"examples": 0, "mean": 0.2}, {"examples": 100, "mean": 0.4}, {"examples": 200, "mean": 0.6}]
    assert _examples_to_reach(curve, 0.5) == pytest.approx(150)
    assert _examples_to_reach(curve, 0.4) == pytest.approx(100)
    assert _examples_to_reach(curve, 0.7) is None
    assert _examples_to_reach(curve, 0.1) == 0


def test_bad_study_arguments_are_refused_before_any_run(spec, home):
    with pytest.raises(TeacherError, match="unknown teacher 'teach'"):
        run_study(StudySpec(teachers=("reference:items", "teach"), seeds=(0,), overrides=spec.overrides))
    with pytest.raises(StoreError, match="--control 'openai:x' is not one of"):
        run_study(StudySpec(teachers=spec.teachers, seeds=(0,), overrides=spec.overrides, control="openai:x"))
    with pytest.raises(StoreError, match="sets the teacher and the seed itself"):
        run_study(StudySpec(teachers=spec.teachers, seeds=(0,), overrides=(*spec.overrides, "seed=4")))
    assert not (home / "mentor.db").exists()


def test_study_command_prints_curves_and_pairs_and_shows_a_stored_study(spec, home, tmp_path):
    args = ["study", "--teachers", "reference:items,random", "--seeds", "1", *spec.overrides]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    for text in ("holdout macro-F1", "against random at equal examples", "examples needed to reach random", "learning-curves.png"):
        assert text in result.stdout
    shown = CliRunner().invoke(app, ["study", "--show", "1", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["study"] == 1
    assert len(open_store().runs()) == 2
    assert np.isfinite(json.loads(shown.stdout)["control_final"])


def test_the_report_of_a_study_run_shows_its_learning_curves(spec, home):
    from mentor.report import build_report

    one_seed = StudySpec(teachers=spec.teachers, seeds=(0,), overrides=spec.overrides)
    study_id = run_study(one_seed)
    store = open_store()
    run_id = store.study_runs(study_id)[("reference:items", 0)]
    path = build_report(store, run_id, home / "report")
    html = path.read_text()
    assert f"Study {study_id}: learning curves of reference:items, random" in html and "against random" in html
    assert (home / "report" / f"study-{study_id}.png").is_file()


def test_a_second_study_reuses_finished_runs_with_the_same_config(spec, home):
    first = run_study(StudySpec(teachers=("reference", "random"), seeds=(0,), overrides=spec.overrides))
    second = run_study(StudySpec(teachers=("reference:items", "random"), seeds=(0,), overrides=spec.overrides))
    store = open_store()
    assert second != first and len(store.runs()) == 3  # the random control ran once
    assert store.study_runs(second)[("random", 0)] == store.study_runs(first)[("random", 0)]
    assert set(analyse(store, second)["curves"]) == {"reference:items", "random"}


def test_a_run_stored_before_a_setting_existed_is_still_reused_but_a_real_difference_is_not(spec, home):
    first = run_study(StudySpec(teachers=("random",), seeds=(0,), overrides=spec.overrides))
    store = open_store()
    control = store.study_runs(first)[("random", 0)]
    config = store.run(control)["config"]
    del config["loop"]["explain_sample"]  # as stored by a mentor from before these two settings existed
    del config["student"]["lora"]["layers"]  # (then adapters went into every layer, what the study recipe sets)
    store.db.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config), control))
    second = run_study(StudySpec(teachers=("reference", "random"), seeds=(0,), overrides=spec.overrides))
    assert store.study_runs(second)[("random", 0)] == control and len(store.runs()) == 2
    # The random teacher never reads teacher.probe or teacher.explore: a study that sets them for its targeted
    # teacher still shares the control.
    wider = run_study(StudySpec(teachers=("random",), seeds=(0,), overrides=(*spec.overrides, "teacher.probe=30",
                                                                            "teacher.explore=0.5")))
    assert store.study_runs(wider)[("random", 0)] == control and len(store.runs()) == 2
    third = run_study(StudySpec(teachers=("random",), seeds=(0,), overrides=(*spec.overrides, "teacher.exam_size=6")))
    assert store.study_runs(third)[("random", 0)] != control and len(store.runs()) == 3


def test_a_study_trains_every_round_even_when_patience_would_stop_a_run(spec, home):
    # patience=1 would end a run at its first round that fails to improve, cutting every teacher's curve there
    study_id = run_study(StudySpec(teachers=("random",), seeds=(0, 1),
                                   overrides=(*spec.overrides, "loop.rounds=3", "loop.patience=1")))
    store = open_store()
    for run_id in store.study_runs(study_id).values():
        assert store.run(run_id)["config"]["loop"]["patience"] == 3
        assert [row["round"] for row in store.rounds(run_id)] == [0, 1, 2, 3]
    assert [p["round"] for p in analyse(store, study_id)["curves"]["random"]] == [0, 1, 2, 3]


def test_a_run_that_stopped_short_is_named_under_the_curves(spec, home):
    from mentor.summary import study_tables

    study_id = run_study(StudySpec(teachers=("random",), seeds=(0, 1), overrides=spec.overrides))
    store = open_store()
    short = store.study_runs(study_id)[("random", 1)]
    store.db.execute("DELETE FROM rounds WHERE run_id = ? AND round = 2", (short,))  # as if it had stopped after round 1
    result = analyse(store, study_id)
    assert [p["round"] for p in result["curves"]["random"]] == [0, 1]
    assert result["short_runs"] == [{"teacher": "random", "seed": 1, "run": short, "status": "finished", "points": 2}]
    assert f"cut short by run {short} (random, seed 1: 1 of 2 rounds, stopped early)" in study_tables(result)[0].caption
