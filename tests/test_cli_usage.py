"""Usage mistakes: two lines on stderr and exit 2 (never a traceback, never exit 1, which `review --fail-on`
uses for a failed gate); `--version` and `-h` work; one spelling per idea across commands (old spellings kept,
hidden); help shows defaults, plain flags and choices; shell completion; `show --json` keys are pinned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _mentor(*args: str, cwd) -> subprocess.CompletedProcess:  # noqa: ANN001
    return subprocess.run([sys.executable, "-m", "mentor", *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "MENTOR_HOME": str(cwd / "home")})


@pytest.mark.parametrize("args, says", [
    (["eval"], "Missing option '--data'"),
    (["run", "--rounds", "abc"], "Invalid value for '--rounds'"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["shwo"], "Did you mean 'show'?"),
    (["show", "--frob"], "No such option: --frob"),
    (["study", "--seeds", "many"], "Invalid value for '--seeds'"),
])
def test_usage_mistakes_are_two_lines_and_exit_2(tmp_path, args, says):
    proc = _mentor(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and lines[-1].startswith("see '") and lines[-1].endswith(" -h'") and len(lines) <= 4
    assert not (tmp_path / "home").exists()  # nothing was created


def test_version_and_short_help(tmp_path):
    version = _mentor("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("mentor ")
    for args in (["-h"], ["study", "-h"]):
        shown = _mentor(*args, cwd=tmp_path)
        assert shown.returncode == 0 and "Usage" in shown.stdout


@pytest.mark.parametrize("args", [["show"], ["runs"], ["report"], ["study", "--show", "1"], ["eval", "--data", "x.jsonl"]])
def test_read_only_commands_never_create_a_store(tmp_path, args):
    proc = _mentor(*args, cwd=tmp_path)
    assert proc.returncode == 2 and "no mentor store at" in proc.stderr, proc.stderr
    assert not (tmp_path / "home").exists()


# ---- one vocabulary, help that shows defaults and flags, completion, JSON for scripts ----------------------

def _in_process(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:  # noqa: ANN001
    """`mentor ARGS` through the same main() as the console script, in this process: (status, stdout, stderr)."""
    from mentor.cli import main

    monkeypatch.setattr(sys, "argv", ["mentor", *args])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A store with one finished scripted run; yields (home, labelled data file)."""
    from tests.finished import finished_run

    folder = tmp_path_factory.mktemp("vocabulary")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MENTOR_HOME", str(folder / "home"))
        _, data = finished_run(folder, rounds=1)
    return folder / "home", data


@pytest.mark.parametrize("command, hidden, shown", [
    ("run", ["--run-id"], ["--run ID|latest", "--resume", "--json", "[default: ./.mentor]", "[KEY=VALUE]..."]),
    ("show", [], ["--run ID|latest", "[RUN]", "--json"]),
    ("eval", ["--base"], ["--untuned", "--run ID|latest", "[default: latest]", "[default: ./.mentor]"]),
    ("judge", ["--systems"], ["--models A,B", "[default: best,base]", "[RUN]"]),
    ("report", ["--out "], ["-o, --output DIR", "[RUN]"]),
    ("train", ["--out "], ["-o, --output DIR"]),
    ("runs", [], ["--json"]),
    ("study", [], ["--json", "[default: reference,random]"]),
    ("completion", [], ["bash", "zsh", "fish"]),
])
def test_help_shows_one_vocabulary_defaults_and_plain_flags(command, hidden, shown, monkeypatch, capsys):
    code, text, _ = _in_process([command, "-h"], monkeypatch, capsys)
    assert code == 0
    flat = " ".join(text.split())  # rich wraps the help to the terminal's width
    for spelling in shown:
        assert spelling in flat, f"{spelling!r} missing from `mentor {command} -h`:\n{text}"
    for spelling in hidden:  # old spellings still work (below) but are not offered
        assert spelling not in flat
    assert "<bool>" not in text and "<list[Path]>" not in text


def test_old_spellings_still_work(finished, tmp_path, monkeypatch, capsys):
    home, data = finished
    monkeypatch.setenv("MENTOR_HOME", str(home))
    new = _in_process(["show", "--run", "1", "--json"], monkeypatch, capsys)
    assert new[0] == 0 and _in_process(["show", "1", "--json"], monkeypatch, capsys)[1] == new[1]
    untuned = _in_process(["eval", "--data", str(data), "--untuned", "--json"], monkeypatch, capsys)
    base = _in_process(["eval", "--data", str(data), "--base", "--json"], monkeypatch, capsys)
    assert untuned[0] == base[0] == 0 and json.loads(untuned[1])["system"] == json.loads(base[1])["system"] == "base scripted"
    for flag in ("--models", "--systems"):  # the judge's check of its pair runs before any judging
        code, _, err = _in_process(["judge", flag, "best,base,round:1"], monkeypatch, capsys)
        assert code == 2 and "needs exactly two systems" in err
    code, out, _ = _in_process(["report", "--run", "latest", "--out", str(tmp_path / "old")], monkeypatch, capsys)
    assert code == 0 and (tmp_path / "old" / "report.html").is_file()
    code, _, err = _in_process(["run", "--run", "1"], monkeypatch, capsys)  # --run picks a run to resume
    assert code == 2 and "add --resume" in err


# `mentor show --json` is a scripting interface: these keys are documented in docs/cli.md and only ever added to.
SHOW_KEYS = {"run", "created", "task", "status", "stop_reason", "best_round", "criterion", "best", "rounds", "stats", "config"}
ROUND_KEYS = {"round", "proficiency", "accuracy", "macro_f1", "unparseable", "explanation_similarity", "criterion_value",
              "compute", "exam_questions", "curriculum", "trained_on",
              "final_loss", "calibration", "targeting", "seconds", "teacher", "teacher_vetting", "feedback", "adapter", "best"}


def test_show_json_keys_are_stable_and_documented(finished, monkeypatch, capsys):
    home, _ = finished
    monkeypatch.setenv("MENTOR_HOME", str(home))
    code, out, _ = _in_process(["show", "--json"], monkeypatch, capsys)
    shown = json.loads(out)
    assert code == 0 and set(shown) == SHOW_KEYS and all(set(r) == ROUND_KEYS for r in shown["rounds"])
    assert shown["best"]["round"] == shown["best_round"] and shown["config"]["student"]["model"] == "scripted"
    docs = (Path(__file__).parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    assert all(f"`{key}`" in docs for key in SHOW_KEYS | ROUND_KEYS)
    code, out, _ = _in_process(["runs", "--json"], monkeypatch, capsys)
    assert code == 0 and [r["id"] for r in json.loads(out)] == [shown["run"]]


def test_shell_completion_prints_a_script_that_completes(tmp_path):
    for shell in ("bash", "zsh", "fish"):
        script = _mentor("completion", shell, cwd=tmp_path)
        assert script.returncode == 0 and "_MENTOR_COMPLETE" in script.stdout, script.stderr
    # What the bash script asks `mentor` when TAB is pressed after "mentor ev" and "mentor eval --unt".
    console_script = Path(sys.executable).with_name("mentor")
    for words, expected in (("mentor ev", "eval"), ("mentor eval --unt", "--untuned")):
        env = {**os.environ, "_MENTOR_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        proc = subprocess.run([str(console_script)], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        assert proc.stdout.split() == [expected], proc.stderr
    assert _mentor("completion", "tcsh", cwd=tmp_path).returncode == 2
