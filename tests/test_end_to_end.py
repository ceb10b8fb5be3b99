"""The whole loop with the real bundled student (SmolLM2-135M): CLI in, store and adapter out. Slow (~1-2 min)."""

import json
import sys

import pytest

from mentor.cli import main
from mentor.runner import open_store

pytestmark = pytest.mark.slow


def test_mentor_run_with_the_bundled_student_end_to_end(home, monkeypatch, capsys):
    pytest.importorskip("peft")
    from mentor.students.bundled import BundledModelError, gguf_path

    try:
        gguf_path()
    except BundledModelError as err:
        pytest.skip(f"bundled student not installed: {err}")
    small = ["--rounds", "1", "teacher.exam_size=8", "teacher.new_examples=8", "data.holdout_limit=8",
             "student.epochs=1", "student.threads=2"]
    monkeypatch.setattr(sys, "argv", ["mentor", "run", *small])
    main()
    out = capsys.readouterr().out
    assert "best round" in out
    store = open_store()
    rounds = store.rounds(1)
    assert [r["round"] for r in rounds] == [0, 1] and store.run(1)["status"] == "finished"
    assert rounds[1]["train"]["examples"] == 8 and rounds[1]["train"]["steps"] >= 2
    assert (home / "runs" / "1" / "round-1" / "adapter_model.safetensors").is_file()
    answers = [a for _, a, _ in store.exam(1, 1)]
    assert len(answers) == 8 and all(a.parsed["issue_type"] in ("critical", "major", "minor", "trivial") for a in answers)
    assert all(abs(sum(a.probs.values()) - 1) < 1e-3 for a in answers)

    monkeypatch.setattr(sys, "argv", ["mentor", "eval", "--data", str(_bundled_holdout()), "--json", "--run", "1"])
    main()
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 120 and report["unparseable"] == 0 and 0 <= report["macro_f1"] <= 1


def _bundled_holdout():
    from mentor.data import bundled_path
    from mentor.tasks import SEVERITY

    return bundled_path(SEVERITY, "holdout")
