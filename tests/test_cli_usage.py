"""Usage mistakes: two lines on stderr and exit 2 (never a traceback, never exit 1, which `review --fail-on`
uses for a failed gate); `--version` and `-h` work."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _mentor(*args: str, cwd) -> subprocess.CompletedProcess:  # noqa: ANN001
    return subprocess.run([sys.executable, "-m", "mentor", *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**__import__("os").environ, "MENTOR_HOME": str(cwd / "home")})


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
