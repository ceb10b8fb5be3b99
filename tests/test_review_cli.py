"""The review-side commands speak the shared vocabulary: --run, -o/--output (old --out hidden), --json,
--untuned, --adapter, choices listed in help; where there is no store, the error says how to rate anyway;
reports say how long the model took to load and to rate each finding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_review import DIFF, run_cli, write

SCRIPTED = ["--untuned", "--student", "scripted", "--task", "severity"]


def mentor(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MENTOR_HOME"} | {"COLUMNS": "220"}
    return subprocess.run([sys.executable, "-m", "mentor", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


@pytest.fixture
def change(home) -> Path:
    Path("change.diff").write_bytes(DIFF)
    return write(Path("c.json"), [{"file": "app.py", "line": 11, "text": "skips the first item"}])


def test_review_in_another_repository_says_how_to_rate_without_a_store(tmp_path):
    Path(tmp_path / "change.diff").write_bytes(DIFF)
    write(tmp_path / "c.json", [{"file": "app.py", "line": 11, "text": "skips the first item"}])
    for command in (["review", "change.diff", "--comments", "c.json"], ["serve", "--port", "0"]):
        done = mentor(*command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "--adapter PATH" in done.stderr and "mentor export" in done.stderr and "--untuned" in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 4
    assert not (tmp_path / ".mentor").exists()  # nothing was created looking for it


def test_help_lists_the_choices(tmp_path):
    shown = mentor("review", "-h", cwd=tmp_path).stdout
    assert "table|markdown|json|sarif|gitlab|rdjson" in shown and "critical|major|minor|trivial" in shown
    assert "agree|critical|major|minor|trivial" in mentor("feedback", "add", "-h", cwd=tmp_path).stdout
    export = mentor("export", "-h", cwd=tmp_path).stdout
    assert "--output" in export and "--run" in export and "--out " not in export  # the old spelling is hidden


@pytest.mark.parametrize("args, says", [
    (["--format", "xml"], "Invalid value for '--format'"),
    (["--fail-on", "blocker"], "Invalid value for '--fail-on'"),
    (["--json", "--format", "sarif"], "--json is --format json"),
    (["--base", "HEAD", "--staged"], "give one change"),
    (["--adapter", "nowhere", "--untuned"], "not both"),
])
def test_review_usage_mistakes_exit_2(change, monkeypatch, capsys, args, says):
    status, _, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--comments", str(change), *SCRIPTED, *args)
    assert status == 2 and says in err, err


def test_json_output_carries_timing_and_table_output_reports_it_on_stderr(change, monkeypatch, capsys):
    status, out, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--comments", str(change), *SCRIPTED, "--json")
    assert status == 0, err
    timing = json.loads(out)["timing"]
    assert timing["findings_rated"] == 1 and timing["model_load_s"] >= 0 and timing["rating_s"] >= 0
    assert timing["per_finding_s"] == pytest.approx(timing["rating_s"], abs=1e-3)
    status, out, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--comments", str(change), *SCRIPTED)
    assert status == 0 and "app.py:11" in out and "model loaded in" in err and "1 finding(s) rated in" in err


def test_output_short_option_and_the_gate(change, monkeypatch, capsys):
    status, _, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--comments", str(change), *SCRIPTED,
                             "--format", "gitlab", "-o", "cq.json", "--fail-on", "trivial")
    assert status == 1 and "at or above trivial" in err  # every rated finding is at or above trivial
    assert json.loads(Path("cq.json").read_text())[0]["location"]["lines"]["begin"] == 11


def test_staged_change_is_reviewed(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "app.py").write_text("def total(items):\n    return sum(items[1:])\n", encoding="utf-8")
    subprocess.run(["git", "-C", str(repo), "add", "app.py"], check=True)  # before any commit: all of it is staged
    write(repo / "c.json", [{"file": "app.py", "line": 2, "text": "skips the first item: wrong totals"}])
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MENTOR_HOME", str(tmp_path / "home"))
    status, out, err = run_cli(monkeypatch, capsys, "review", "--staged", "--comments", "c.json", *SCRIPTED, "--json")
    assert status == 0, err
    assert [f["code"] for f in json.loads(out)["findings"]] == ["def total(items):\n    return sum(items[1:])"]


def test_feedback_export_output_option(home, monkeypatch, capsys):
    status, _, err = run_cli(monkeypatch, capsys, "feedback", "add", "--code", "x = 1", "--review", "bad name",
                             "--verdict", "trivial", "--predicted", "minor")
    assert status == 0, err
    assert run_cli(monkeypatch, capsys, "feedback", "export", "-o", "a.jsonl")[0] == 0
    assert run_cli(monkeypatch, capsys, "feedback", "export", "b.jsonl")[0] == 0  # the positional still works
    assert Path("a.jsonl").read_text() == Path("b.jsonl").read_text() and '"trivial"' in Path("a.jsonl").read_text()
    status, out, _ = run_cli(monkeypatch, capsys, "feedback", "export")  # neither: stdout
    assert status == 0 and out == Path("a.jsonl").read_text()
    status, _, err = run_cli(monkeypatch, capsys, "feedback", "export", "a.jsonl", "-o", "c.jsonl")
    assert status == 2 and "given twice" in err
    status, _, err = run_cli(monkeypatch, capsys, "feedback", "add", "--code", "x", "--review", "y", "--verdict", "fine")
    assert status == 2 and "Invalid value for '--verdict'" in err


def test_review_refuses_by_default_a_run_that_learned_nothing(change, data_files, monkeypatch, capsys):
    pool, holdout = data_files
    status, _, err = run_cli(monkeypatch, capsys, "run", "--data", str(pool), "--holdout", str(holdout),
                             "student.model=scripted", "loop.rounds=0")
    assert status == 0, err
    status, out, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--comments", str(change), "--json")
    assert status == 2 and "run 1's best round is round 0, the untuned model" in err and "--untuned" in err, err
    assert out == ""  # nothing rated on the untuned model's word
    status, out, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--comments", str(change), "--untuned", "--json")
    assert status == 0 and json.loads(out)["findings"], err  # meant on purpose, it rates


def test_report_folder_is_made_before_rating_and_a_bad_one_fails_first(change, monkeypatch, capsys):
    status, _, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--comments", str(change), *SCRIPTED,
                             "--format", "sarif", "-o", "reports/ci/mentor.sarif")
    assert status == 0 and json.loads(Path("reports/ci/mentor.sarif").read_text())["runs"], err
    Path("taken").write_text("a file, not a folder")
    status, _, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--comments", str(change), *SCRIPTED,
                             "-o", "taken/report.md")
    assert status == 2 and "-o taken/report.md: cannot create its folder taken" in err and "rated" not in err, err
    status, _, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--comments", str(change), *SCRIPTED, "-o", "reports")
    assert status == 2 and "is a folder" in err, err
