"""The classical baselines of `mentor eval` (tfidf, embed, majority and their `:all` variants): they never see
what they are scored on, they are the scikit-learn fits they claim to be, and sentence embeddings are encoded
once per store. A tiny hashing encoder stands in for all-MiniLM-L6-v2 except in the one slow test."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import mentor.baselines.embed as embed_module
import mentor.commands_eval  # noqa: F401 - registers judge/report on the app
import mentor.commands_study  # noqa: F401 - registers study on the app
from mentor.baselines import CachedEncoder, PoolBaseline, leave_out_near, train, train_embed, train_majority, train_tfidf
from mentor.baselines.classifier import C_GRID, embed_inputs, raw_text, student_view, twin_groups
from mentor.cli import app
from mentor.config import load_config
from mentor.judge import JudgeError
from mentor.records import Example
from mentor.report import build_report
from mentor.runner import open_store, start_run
from mentor.store import Store
from mentor.students import StudentError
from mentor.study import StudySpec, analyse, run_study
from mentor.summary import study_tables
from mentor.tasks import SEVERITY
from tests.conftest import make_examples, write_jsonl
from tests.finished import finished_run

LABEL_WORDS = re.compile(r"critical|major|minor|trivial")


class HashingEncoder:
    """A tiny deterministic sentence encoder: hashed bag of words, unit length; counts what it is asked."""

    def __init__(self, dim: int = 64) -> None:
        self.dim, self.calls, self.texts = dim, 0, []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts += texts
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def clean(examples: list[Example]) -> list[Example]:
    """The shared test examples with the label words taken out of their text (make_examples tags code with them)."""
    return [Example({k: LABEL_WORDS.sub("x", v) for k, v in e.input.items()}, e.output, e.source) for e in examples]


def leaky(n_per_label: int) -> list[Example]:
    """Evaluated items whose only signal is the label word itself, in the review: a planted leak."""
    return [Example({"code": f"value = compute(item_{label[0]}{i})", "review": f"Reviewer {i} says this one is {label}."},
                    {"issue_type": label}, source="leak") for label in SEVERITY.labels for i in range(n_per_label)]


def accuracy(model, items: list[Example]) -> float:
    answers = model.answer(SEVERITY, [e.input for e in items])
    return sum(a.raw == e.output["issue_type"] for a, e in zip(answers, items)) / len(items)


@pytest.fixture
def fake_minilm(monkeypatch) -> HashingEncoder:
    """Every CachedEncoder built without an encoder (what `mentor eval` builds) gets the hashing one."""
    fake = HashingEncoder()
    monkeypatch.setattr(embed_module, "load_minilm", lambda: fake)
    return fake


def _clean_run(folder, pool_extra: list[Example] = ()) -> int:
    pool = write_jsonl(folder / "pool.jsonl", clean(make_examples(20, "pool")) + list(pool_extra))
    holdout = write_jsonl(folder / "holdout.jsonl", clean(make_examples(3, "holdout", seed=1)))
    return start_run(load_config(overrides=[f"data.pool={pool}", f"data.holdout={holdout}", "student.model=scripted",
                                            "teacher.exam_size=12", "teacher.new_examples=24", "loop.rounds=2",
                                            "loop.patience=5"]))["run_id"]


def _eval(*args: str) -> dict:
    result = CliRunner().invoke(app, ["eval", *args, "--json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.stdout)


# ---- they are the scikit-learn fits they claim to be -------------------------------------------------------

def test_tfidf_embed_and_majority_agree_with_a_direct_scikit_learn_fit():
    from sklearn.dummy import DummyClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    training, scored = make_examples(8, "train"), make_examples(2, "test", seed=5)
    labels = [e.output["issue_type"] for e in training]
    encoder = CachedEncoder(encode=HashingEncoder())
    for model, features in ((train_tfidf(SEVERITY, training), None), (train_embed(SEVERITY, training, 0, encoder), encoder)):
        assert model.training["C"] in C_GRID and model.training["cv_folds"] == 5
        regression = LogisticRegression(C=model.training["C"], max_iter=2000, class_weight="balanced", random_state=0)
        if features is None:
            vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=50_000,
                                         token_pattern=r"(?u)\b[\w.]+\b")
            regression.fit(vectorizer.fit_transform([raw_text(SEVERITY, e.input) for e in training]), labels)
            expected = regression.predict_proba(vectorizer.transform([raw_text(SEVERITY, e.input) for e in scored]))
        else:
            # The embed features, built by hand: each field as the student reads it, encoded, side by side.
            def by_hand(items):
                return np.hstack([HashingEncoder()(student_view(SEVERITY, name, [e.input for e in items]))
                                  for name in SEVERITY.input_fields])
            regression.fit(by_hand(training), labels)
            expected = regression.predict_proba(by_hand(scored))
        answers = model.answer(SEVERITY, [e.input for e in scored])
        got = np.array([[a.probs[c] for c in regression.classes_] for a in answers])
        np.testing.assert_allclose(got, expected, atol=1e-9)
        assert [a.raw for a in answers] == [regression.classes_[i] for i in expected.argmax(axis=1)]
    majority = train_majority(SEVERITY, training[:-3])  # one label now has fewer examples
    dummy = DummyClassifier(strategy="prior").fit(np.zeros((len(training) - 3, 1)), labels[:-3])
    assert {a.raw for a in majority.answer(SEVERITY, [e.input for e in scored])} == {dummy.predict([[0]])[0]}
    assert majority.training["label"] == dummy.predict([[0]])[0]


def test_c_is_the_cross_validated_best_on_the_training_items_alone():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score

    training = make_examples(6, "train")
    # Near-twins: the first two items of each label share their review; the folds must keep each pair together.
    firsts = {}
    for i, e in enumerate(training):
        firsts.setdefault(e.output["issue_type"], []).append(i)
    for a, b in [ids[:2] for ids in firsts.values()]:
        training[b] = Example({**training[b].input, "review": training[a].input["review"]}, training[b].output, "train")
    groups = twin_groups(SEVERITY, training)
    assert len(set(groups)) == len(training) - 4
    fake = HashingEncoder(dim=8)  # a coarse encoder, so regularisation matters
    model = train_embed(SEVERITY, training, 3, CachedEncoder(encode=fake))
    # The fit encoded the training items and nothing else.
    assert set(fake.texts) == {t for name in SEVERITY.input_fields for t in student_view(SEVERITY, name, [e.input for e in training])}
    features = embed_inputs(SEVERITY, [e.input for e in training], CachedEncoder(encode=HashingEncoder(dim=8)))
    labels = [e.output["issue_type"] for e in training]
    folds = StratifiedGroupKFold(5, shuffle=True, random_state=3)
    for _, held in folds.split(features, labels, groups):
        assert all(groups.count(groups[i]) == sum(groups[j] == groups[i] for j in held) for i in held)  # twins together
    scores = np.array([cross_val_score(LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=3),
                                       features, labels, groups=groups, scoring="f1_macro", cv=folds) for c in C_GRID])
    # The one-standard-error rule, by hand: the smallest C within a standard error of the best mean.
    best = int(np.argmax(scores.mean(axis=1)))
    bar = scores.mean(axis=1)[best] - scores[best].std() / np.sqrt(5)
    chosen = min(i for i in range(len(C_GRID)) if scores[i].mean() >= bar)
    assert model.training["C"] == C_GRID[chosen]
    assert model.training["cv_macro_f1"] == pytest.approx(scores[chosen].mean())
    # Too few examples of a label to cross-validate: the default C, said so.
    one_minor = [e for e in training if e.output["issue_type"] != "minor"][:18] + \
        [next(e for e in training if e.output["issue_type"] == "minor")]
    few = train_tfidf(SEVERITY, one_minor)
    assert few.training == {"kind": "tfidf", "items": 19, "C": 1.0, "cv_folds": 0}


def test_bad_baseline_inputs_are_clear_errors():
    with pytest.raises(StudentError, match="at least two labels"):
        train_embed(SEVERITY, [e for e in make_examples(3) if e.output["issue_type"] == "minor"], 0,
                    CachedEncoder(encode=HashingEncoder()))
    with pytest.raises(StudentError, match="at least one labelled example"):
        train_majority(SEVERITY, [])
    with pytest.raises(StudentError, match="unknown baseline 'bert'"):
        train("bert", SEVERITY, make_examples(3))
    unlabelled = [Example(e.input, {}, "pool") for e in make_examples(2)]
    with pytest.raises(StudentError, match="none of its 8 item"):
        PoolBaseline("tfidf", SEVERITY, unlabelled, where="pool.jsonl")
    model = train_tfidf(SEVERITY, make_examples(3))
    with pytest.raises(StudentError, match="no adapters"):
        model.use_adapter(Path("x"))


# ---- they never see what they are scored on ----------------------------------------------------------------

def test_a_planted_label_leak_in_the_evaluated_file_is_not_used(tmp_path, home, fake_minilm, monkeypatch):
    """The evaluated items carry their label word in the review; nothing the baselines train on does. A
    baseline that saw the file would score 1.0 on it (shown with a deliberately leaky fit); they stay at chance."""
    import mentor.baselines
    import mentor.baselines.pool

    fitted_on: list[Example] = []

    def spy(kind, task, examples, seed=0, encoder=None):
        fitted_on.extend(examples)
        return train(kind, task, examples, seed, encoder)

    monkeypatch.setattr(mentor.baselines, "train", spy)  # what mentor.targets fits the curriculum variants with
    monkeypatch.setattr(mentor.baselines.pool, "train", spy)  # and the :all variants
    run_id = _clean_run(tmp_path)
    leak = leaky(4)
    data = write_jsonl(tmp_path / "leaky.jsonl", leak)
    result = _eval("--data", str(data), "--models", "tfidf,embed,majority,tfidf:all,embed:all,majority:all")
    assert [s["kind"] for s in result["systems"]] == ["tfidf", "embed", "majority"] * 2
    for system in result["systems"]:
        assert system["accuracy"] <= 0.5, system["system"]
    # Six fits, none of them given an evaluated item or any text with a label word.
    assert len(fitted_on) == 3 * len(open_store().curriculum(run_id)) + 3 * 80
    assert not any(LABEL_WORDS.search(v) for e in fitted_on for v in e.input.values())
    # The leak is real: any fit that includes the evaluated items reads it.
    curriculum = open_store().curriculum(run_id)
    assert accuracy(train_tfidf(SEVERITY, curriculum + leak), leak) == 1.0


def test_the_all_variants_leave_out_the_evaluated_items_and_their_near_twins():
    leak = leaky(3)
    twins = [Example({"code": f"other_code({i})", "review": e.input["review"]}, e.output, "pool") for i, e in enumerate(leak)]
    pool = clean(make_examples(10, "pool")) + leak + twins  # the data source holds the evaluated file and its twins
    for kind in ("tfidf", "embed", "majority"):
        model = PoolBaseline(kind, SEVERITY, pool, encoder=CachedEncoder(encode=HashingEncoder()))
        with pytest.raises(StudentError, match="fit_for"):
            model.answer(SEVERITY, [leak[0].input])
        label = model.fit_for(SEVERITY, [e.input for e in leak])
        assert model.training["left_out_near_evaluated"] == 2 * len(leak) and model.training["items"] == 40
        assert label == f"{kind}:all (40 ex. of the data source, {2 * len(leak)} near evaluated items left out)"
        assert accuracy(model, leak) <= 0.5
        with pytest.raises(StudentError, match="were not among them"):
            model.answer(SEVERITY, [pool[0].input])
    kept, left_out = leave_out_near(pool, SEVERITY, [leak[0].input])
    assert left_out == 2 and leak[0] not in kept and twins[0] not in kept and leak[1] in kept
    assert accuracy(train_tfidf(SEVERITY, pool), leak) == 1.0  # what the leave-out prevents


# ---- the cache --------------------------------------------------------------------------------------------

def test_the_embedding_cache_is_reused_on_a_second_call(tmp_path):
    items, path = make_examples(4, "train"), tmp_path / "mentor.db"
    first = HashingEncoder()
    model = train_embed(SEVERITY, items, 0, CachedEncoder(Store(path), encode=first, batch_size=5))
    distinct = len({t for name in SEVERITY.input_fields for t in student_view(SEVERITY, name, [e.input for e in items])})
    assert len(first.texts) == distinct == 2 * len(items)
    assert first.calls == 2 * -(-len(items) // 5)  # each input field in batches of 5
    model.answer(SEVERITY, [e.input for e in items])
    assert len(first.texts) == distinct  # scoring the training items again: from memory
    # Another process on the same store: nothing is encoded again, the fit is the same.
    second = HashingEncoder()
    again = train_embed(SEVERITY, items, 0, CachedEncoder(Store(path), encode=second))
    assert second.calls == 0
    new = make_examples(1, "new", seed=9)
    assert [a.probs for a in again.answer(SEVERITY, [e.input for e in items])] == \
           [a.probs for a in model.answer(SEVERITY, [e.input for e in items])]
    again.answer(SEVERITY, [e.input for e in new])
    assert second.calls == 2 and len(second.texts) == 2 * len(new)  # only the new items, one call per field


def test_eval_encodes_each_text_once_across_commands(tmp_path, home, fake_minilm):
    run_id, data = finished_run(tmp_path)
    first = _eval("--data", str(data), "--models", "embed,embed:all")
    asked = len(fake_minilm.texts)
    assert asked > 0 and len(set(fake_minilm.texts)) == asked
    second = _eval("--data", str(data), "--models", "embed,embed:all")
    assert len(fake_minilm.texts) == asked  # the second eval read every vector from the store
    assert [s["macro_f1"] for s in first["systems"]] == [s["macro_f1"] for s in second["systems"]]


# ---- in mentor eval, judge, report and study -----------------------------------------------------------------

def test_eval_puts_every_baseline_beside_the_student_with_paired_differences(tmp_path, home, fake_minilm):
    run_id, data = finished_run(tmp_path)
    table = CliRunner().invoke(app, ["eval", "--data", str(data), "--models", "best,embed,majority"]).stdout
    assert "paired on the same items" in table and "embed (" in table and "majority (" in table
    result = _eval("--data", str(data), "--models", "best,tfidf,embed,tfidf:all,embed:all,majority")
    systems = result["systems"]
    assert [s["kind"] for s in systems] == ["local", "tfidf", "embed", "tfidf", "embed", "majority"]
    curriculum = len(open_store().curriculum(run_id))
    assert systems[2]["system"] == f"embed ({curriculum} curriculum ex.)"
    assert systems[3]["system"] == f"tfidf:all (120 ex. of run {run_id}'s data source, 0 near evaluated items left out)"
    for s in systems[1:]:
        assert s["vs_first"]["system"] == systems[0]["system"] and len(s["vs_first"]["ci"]) == 2
        assert s["training"]["kind"] == s["kind"] and "macro_f1" in s["ci"]
    assert systems[2]["training"]["items"] == curriculum and systems[4]["training"]["items"] == 120
    judged = CliRunner().invoke(app, ["judge", str(run_id), "--systems", "best,embed"])
    assert isinstance(judged.exception, JudgeError) and "predicts labels only" in str(judged.exception)
    # The report (the newest comparison): baselines are reference rows and lines, with what they trained on.
    html = build_report(open_store(), run_id, tmp_path / "report").read_text(encoding="utf-8")
    assert html.count('<tr class="reference">') == 5 and "reference lines" in html and "C=" in html
    assert f"{curriculum} ex." in html and "The strongest here is" in html


def test_a_study_shows_the_embed_baseline_per_point(tmp_path, home):
    pool = write_jsonl(tmp_path / "pool.jsonl", make_examples(25, "pool"))
    hold = write_jsonl(tmp_path / "hold.jsonl", make_examples(6, "hold", seed=1))
    spec = StudySpec(teachers=("random",), seeds=(0,), overrides=(
        "student.model=scripted", "teacher.exam_size=8", "teacher.new_examples=12", "teacher.probe=20", "loop.rounds=2",
        "data.holdout_limit=0", f"data.pool={pool}", f"data.holdout={hold}"))
    study_id = run_study(spec)
    fake = HashingEncoder()
    result = analyse(open_store(), study_id, encoder=CachedEncoder(open_store(), encode=fake))
    curve = result["curves"]["random"]
    assert curve[0]["embed_mean"] is None and all(0.0 <= p["embed_mean"] <= 1.0 for p in curve[1:])
    point = result["runs"][0]["points"][2]
    assert point["embed_macro_f1"] == curve[2]["embed_mean"]
    # The study's table carries the column; a second analysis encodes nothing (the store's cache).
    assert any("embed" in str(column.header) for column in study_tables(result)[0].columns)
    calls = fake.calls
    analyse(open_store(), study_id, encoder=CachedEncoder(open_store(), encode=fake))
    assert fake.calls == calls


@pytest.mark.slow
def test_the_real_minilm_embeds_each_field_and_learns_the_severity_signal(tmp_path):
    """The one test that loads all-MiniLM-L6-v2 (from the installed wheel, offline)."""
    encoder = CachedEncoder(Store(tmp_path / "mentor.db"))
    training, scored = clean(make_examples(6, "train")), clean(make_examples(3, "test", seed=4))
    model = train_embed(SEVERITY, training, 0, encoder)
    assert accuracy(model, scored) >= 0.9
    vectors = embed_inputs(SEVERITY, [training[0].input], encoder)
    assert vectors.shape == (1, 2 * 384)
    np.testing.assert_allclose(np.linalg.norm(vectors.reshape(2, 384), axis=1), 1.0, atol=1e-4)
    again = CachedEncoder(Store(tmp_path / "mentor.db"))
    train_embed(SEVERITY, training, 0, again)
    assert again.encoded == 0 and encoder.encoded == 2 * (len(training) + len(scored))
