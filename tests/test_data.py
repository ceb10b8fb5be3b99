"""Data files: every problem reported with file and line before anything is written; the seed data's shape."""

import json
from collections import Counter

import pytest

from mentor.data import DataError, bundled_path, load_examples
from mentor.tasks import SEVERITY


def _write(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"input": {"code": "x = 1", "review": "name it"}, "output": {"issue_type": "trivial"}, "meta": {"id": 1}})


def test_good_file_keeps_extra_keys(tmp_path):
    [example] = load_examples(_write(tmp_path, [GOOD]), SEVERITY)
    assert example.output == {"issue_type": "trivial"} and example.meta == {"meta": {"id": 1}}


def test_every_problem_is_reported_with_file_and_line(tmp_path):
    path = _write(tmp_path, [
        GOOD,
        "{not json",
        json.dumps({"input": {"code": "x"}, "output": {"issue_type": "major"}}),
        json.dumps({"input": {"code": "x", "review": "y"}, "output": {"issue_type": "blocker"}}),
        json.dumps({"input": {"code": "   ", "review": "y"}, "output": {"issue_type": "minor"}}),
        json.dumps(["a list"]),
        json.dumps({"input": {"code": "x", "review": "y"}}),
    ])
    with pytest.raises(DataError) as err:
        load_examples(path, SEVERITY)
    text = str(err.value)
    for line, message in [(2, "invalid JSON"), (3, "missing field 'input.review'"), (4, "label 'blocker'"),
                          (5, "empty field 'input.code'"), (6, "expected a JSON object"), (7, "missing key(s) 'output'")]:
        assert f"{path}:{line}: {message}" in text
    assert len(err.value.problems) == 6


@pytest.mark.parametrize("content, message", [(b"", "no records"), (b"\xff\xfe\x00bad", "not UTF-8")])
def test_empty_and_binary_files(tmp_path, content, message):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_examples(path, SEVERITY)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_examples(tmp_path / "nope.jsonl", SEVERITY)


def test_bad_data_writes_nothing(tmp_path, home):
    from mentor.config import load_config
    from mentor.runner import open_store, start_run

    bad = _write(tmp_path, [GOOD, "{oops"])
    with pytest.raises(DataError):
        start_run(load_config(overrides=[f"data.pool={bad}", "student.model=scripted"]))
    assert not (home / "mentor.db").exists() or open_store().runs() == []


def test_bundled_seed_data_shape():
    pool = load_examples(bundled_path(SEVERITY, "pool"), SEVERITY)
    holdout = load_examples(bundled_path(SEVERITY, "holdout"), SEVERITY)
    everything = pool + holdout
    assert len(everything) >= 400
    per_class = Counter(e.output["issue_type"] for e in everything)
    assert min(per_class.values()) >= 80 and set(per_class) == set(SEVERITY.labels)
    assert len({e.meta["meta"]["language"] for e in everything}) >= 5
    # the holdout never overlaps the pool
    assert not {SEVERITY.key(e.input) for e in pool} & {SEVERITY.key(e.input) for e in holdout}
    assert len({SEVERITY.key(e.input) for e in everything}) == len(everything)


def test_bundled_seed_data_has_explanations():
    from mentor.tasks import EXPLAIN

    examples = load_examples(bundled_path(EXPLAIN, "pool"), EXPLAIN)
    assert all(20 < len(e.output["explanation"]) < 600 for e in examples)


def test_unlabelled_source_for_a_teacher_that_labels_items_itself(tmp_path):
    path = _write(tmp_path, [json.dumps({"input": {"code": "x = 1", "review": "rename x"}}), GOOD,
                             json.dumps({"input": {"code": "", "review": "y"}})])
    with pytest.raises(DataError) as err:
        load_examples(path, SEVERITY, labelled=False)
    assert err.value.problems == [(str(path), 3, "empty field 'input.code'")]
    path = _write(tmp_path, [json.dumps({"input": {"code": "x = 1", "review": "rename x"}}), GOOD])
    unlabelled, labelled = load_examples(path, SEVERITY, labelled=False)
    assert unlabelled.output == {} and labelled.output == {"issue_type": "trivial"}
    with pytest.raises(DataError, match="missing key"):
        load_examples(path, SEVERITY)  # the reference teacher needs labels
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert load_examples(empty, SEVERITY, labelled=False) == []
