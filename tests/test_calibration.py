"""Decision calibration: fitting offsets, applying and storing them, splitting the set off, in the loop."""

import json
import math

import pytest

from mentor import calibration
from mentor.config import ConfigError, load_config
from mentor.records import Example
from mentor.runner import open_store, start_run
from mentor.tasks import SEVERITY
from tests.conftest import make_examples, write_jsonl

LABELS = SEVERITY.labels


def _probs(favourite: str, strength: float = 0.4) -> dict[str, float]:
    rest = (1 - strength) / 3
    return {label: strength if label == favourite else rest for label in LABELS}


def test_offsets_undo_a_student_that_leans_toward_one_label():
    # The student ranks the right label second-highest whenever it says "major": a "major" bias.
    gold, probs = [], []
    for truth in LABELS:
        for _ in range(10):
            gold.append(truth)
            p = _probs(truth, 0.3)
            p["major"] = 0.35 if truth != "major" else 0.5
            total = sum(p.values())
            probs.append({k: v / total for k, v in p.items()})
    fit = calibration.fit_offsets(LABELS, probs, gold)
    assert fit.macro_f1_before < 0.5 and fit.macro_f1_after == pytest.approx(1.0)
    assert fit.offsets["critical"] == 0.0 and fit.offsets["major"] < min(fit.offsets["minor"], fit.offsets["trivial"])
    assert fit.items == 40 and fit.temperature == 1.0
    shifted = [calibration.apply_offsets(p, fit.offsets) for p in probs]
    assert [max(p, key=p.get) for p in shifted] == gold
    assert all(sum(p.values()) == pytest.approx(1.0) for p in shifted)


def test_an_unbiased_student_keeps_zero_offsets_and_rare_labels_are_weighted_up():
    gold = [label for label in LABELS for _ in range(5)]
    fit = calibration.fit_offsets(LABELS, [_probs(g) for g in gold], gold)
    assert fit.offsets == pytest.approx({label: 0.0 for label in LABELS}, abs=1e-3)
    # A student that cannot tell the labels apart, on a set that is 70% trivial: the plain log-loss would
    # give trivial its full 70/10 odds; the class-weighted one gives the square root of that.
    gold = ["trivial"] * 70 + ["critical", "major", "minor"] * 10
    fit = calibration.fit_offsets(LABELS, [_probs("minor", 0.25)] * len(gold), gold)
    assert fit.offsets["trivial"] == pytest.approx(0.5 * math.log(7), abs=0.01)
    assert fit.offsets["major"] == pytest.approx(0.0, abs=0.01)
    # The exponent is a setting of the fit: 0 is the plain log-loss (the full odds), 1 fully balanced (none).
    for balance, odds in ((0.0, math.log(7)), (1.0, 0.0)):
        fit = calibration.fit_offsets(LABELS, [_probs("minor", 0.25)] * len(gold), gold, balance=balance)
        assert fit.offsets["trivial"] == pytest.approx(odds, abs=0.01)


def test_a_temperature_sharpens_flat_probabilities():
    gold = [label for label in LABELS for _ in range(10)]
    flat = [_probs(g, 0.3) for g in gold]  # right, but barely above the others' 0.233
    fit = calibration.fit_offsets(LABELS, flat, gold, temperature=True)
    assert fit.temperature > 5 and fit.macro_f1_after == 1.0
    assert max(calibration.apply_offsets(flat[0], fit.offsets, fit.temperature).values()) > 0.9


def test_fit_rejects_mismatched_or_foreign_labels():
    with pytest.raises(ValueError, match="one answer per item"):
        calibration.fit_offsets(LABELS, [_probs("minor")], [])
    with pytest.raises(ValueError, match="urgent"):
        calibration.fit_offsets(LABELS, [_probs("minor")], ["urgent"])


def test_saved_offsets_reload_and_bad_files_name_the_problem(tmp_path):
    assert calibration.load(tmp_path) is None and calibration.load(None) is None
    fit = calibration.Calibration({"critical": 0.0, "major": -1.5, "minor": 0.3, "trivial": 2.0}, 12, 0.4, 0.5)
    calibration.save(tmp_path, fit)
    assert calibration.load(tmp_path) == fit.offsets
    assert json.loads((tmp_path / calibration.CALIBRATION_FILE).read_text())["macro_f1_after"] == 0.5
    for text, problem in [("{not json", "not valid JSON"), ('{"items": 3}', "'offsets'"),
                          ('{"offsets": {"major": "high"}}', "offsets.major"), ('{"offsets": {"major": NaN}}', "offsets.major")]:
        (tmp_path / calibration.CALIBRATION_FILE).write_text(text)
        with pytest.raises(calibration.CalibrationError, match=problem) as err:
            calibration.load(tmp_path)
        assert calibration.CALIBRATION_FILE in str(err.value)
    calibration.remove(tmp_path)
    assert calibration.load(tmp_path) is None


def test_split_keeps_near_twins_on_one_side_and_is_seeded():
    pool = make_examples(20, "pool")
    # The same review on other code (another language's version of one finding) must not straddle the split.
    twins = [Example({"code": f"other code {i}", "review": e.input["review"]}, e.output) for i, e in enumerate(pool[:15])]
    everything = pool + twins
    rest, chosen, dropped = calibration.split_off(everything, SEVERITY, 30, seed=3)
    assert len(chosen) == 30 and len(rest) + len(chosen) + dropped == len(everything)
    reviews_rest = {e.input["review"] for e in rest}
    assert not reviews_rest & {e.input["review"] for e in chosen}
    again = calibration.split_off(everything, SEVERITY, 30, seed=3)
    assert [e.input for e in again[1]] == [e.input for e in chosen]
    assert [e.input for e in calibration.split_off(everything, SEVERITY, 30, seed=4)[1]] != [e.input for e in chosen]


def _run(tmp_path, *extra):
    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(30, "pool"))
    holdout = write_jsonl(tmp_path / "holdout.jsonl", make_examples(5, "holdout", seed=1))
    return start_run(load_config(overrides=[f"data.pool={pool}", f"data.holdout={holdout}", "student.model=scripted",
                                            "teacher.exam_size=12", "teacher.new_examples=20", "loop.rounds=2",
                                            "loop.patience=5", *extra]))


def test_the_loop_calibrates_each_round_on_items_the_teacher_never_sees(tmp_path, home):
    result = _run(tmp_path, "loop.calibration=24")
    store = open_store()
    rounds = store.rounds(result["run_id"])
    assert rounds[0]["stats"]["calibration"] == 24 and rounds[0]["stats"]["pool"] == 120 - 24
    seen = {SEVERITY.key(q) for q in store.all_exam_keys(result["run_id"])}
    seen |= {SEVERITY.key(e.input) for e in store.curriculum(result["run_id"], status=None)}
    _, chosen, _ = calibration.split_off(make_examples(30, "pool"), SEVERITY, 24, seed=0)  # the run's split
    calibration_keys = {SEVERITY.key(e.input) for e in chosen}
    assert seen and not seen & calibration_keys
    for row in rounds[1:]:
        fit = row["stats"]["calibration"]
        assert fit["items"] == 24 and set(fit["offsets"]) == set(SEVERITY.labels)
        assert calibration.load(row["adapter"]) == fit["offsets"]
    assert "calibrate" in store.done_steps(result["run_id"], 1)


def test_calibration_settings_that_cannot_work_are_refused_before_anything_is_written(tmp_path, home):
    with pytest.raises(ConfigError, match="more than half"):
        _run(tmp_path, "loop.calibration=100")
    with pytest.raises(ConfigError, match="loop.calibration"):
        _run(tmp_path, "loop.calibration=-1")
    task = tmp_path / "task.toml"
    task.write_text('name = "summary"\ndescription = "summarise"\ninput_fields = ["code", "review"]\n'
                    'output_fields = ["summary"]\nstudent_prompt = "{code} {review}"\n')
    texts = [Example(e.input, {"summary": "a finding"}) for e in make_examples(10, "text")]
    pool, holdout = write_jsonl(tmp_path / "texts.jsonl", texts), write_jsonl(tmp_path / "held.jsonl", texts[:4])
    with pytest.raises(ConfigError, match="no label field"):
        start_run(load_config(overrides=[f"task={task}", f"data.pool={pool}", f"data.holdout={holdout}",
                                         "student.model=scripted", "loop.calibration=10"]))
    assert not (home / "mentor.db").exists() or open_store().latest_run_id() is None


def test_the_tfidf_baseline_gets_the_same_calibration_and_the_best_rounds_examples(tmp_path, home):
    from mentor.targets import resolve_systems, run_context

    result = _run(tmp_path, "loop.calibration=24")
    store = open_store()
    curriculum = store.curriculum(result["run_id"])
    plain, calibrated = resolve_systems(run_context(None, "latest", need_run=True), ["tfidf", "tfidf:calibrated"])
    assert plain.label == f"tfidf ({len(curriculum)} curriculum ex.)" and plain.student.offsets is None  # best is round 0: all
    assert calibrated.label == f"tfidf ({len(curriculum)} curriculum ex., calibrated on 24)"
    assert set(calibrated.student.offsets) == set(SEVERITY.labels)
    store.finish_run(result["run_id"], "finished", "test", 1)  # had round 1 been best, round 2 taught it nothing
    (target,) = resolve_systems(run_context(None, "latest", need_run=True), ["tfidf:calibrated"])
    first = sum(1 for e in curriculum if e.meta["round"] == 1)
    assert 0 < first < len(curriculum) and target.label.startswith(f"tfidf ({first} curriculum ex.")


def test_calibrated_tfidf_needs_a_run_with_a_calibration_set(tmp_path, home):
    from mentor.students import StudentError
    from mentor.targets import resolve_systems, run_context

    _run(tmp_path)
    with pytest.raises(StudentError, match="loop.calibration=0"):
        resolve_systems(run_context(None, "latest", need_run=True), ["tfidf:calibrated"])
