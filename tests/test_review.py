"""mentor review: diffs, SARIF and comments in; rated, filtered findings out; CLI exit codes for CI gates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mentor.review import ReviewError, Sources, build_report, collect, gate, parse_diff, rate, review
from mentor.review.findings import Finding, load_comments
from mentor.review.sarif import load_sarif
from mentor.students.scripted import ScriptedStudent
from mentor.tasks import EXPLAIN, SEVERITY

DIFF = b"""diff --git a/app.py b/app.py
index 760dfea..66c21c7 100644
--- a/app.py
+++ b/app.py
@@ -1,12 +1,17 @@
 import sqlite3
+import subprocess
 
 
 def find_user(db, name):
-    return db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
+    return db.execute("SELECT * FROM users WHERE name = '%s'" % name).fetchone()
 
 
 def total(items):
     result = 0
-    for i in range(len(items)):
+    for i in range(1, len(items)):
         result += items[i]
     return result
+
+
+def Run_Cmd(cmd):
+    return subprocess.call(cmd, shell=True)
"""


def keyword_rule(inputs: dict[str, str]) -> dict[str, str]:
    """A reviewer that knows the obvious: injection and shells are critical, wrong totals major, names trivial."""
    text = inputs["review"].lower()
    label = ("critical" if any(w in text for w in ("injection", "shell")) else
             "major" if any(w in text for w in ("wrong", "skips")) else
             "trivial" if any(w in text for w in ("name", "snake")) else "minor")
    return {"issue_type": label, "explanation": f"rated {label} because of what the comment says"}


def sarif_log(results: list[dict], version: str = "2.1.0") -> dict:
    return {"version": version, "runs": [{"tool": {"driver": {"name": "Bandit", "rules": []}}, "results": results}]}


def result(line: int, text: str, uri: str = "app.py", rule: str = "B000", **extra) -> dict:
    location = {"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": line}}}
    return {"ruleId": rule, "message": {"text": text}, "locations": [location], **extra}


def write(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ---- diffs ---------------------------------------------------------------------------------------


def test_parse_diff_knows_added_lines_and_context():
    diff = parse_diff(DIFF)
    assert set(diff.files) == {"app.py"}
    assert diff.files["app.py"].added_lines == {2, 6, 11, 14, 15, 16, 17}
    assert diff.touches("app.py", 6) and not diff.touches("app.py", 5) and diff.touches("app.py", 3, 6)
    assert "range(1, len(items))" in diff.context("app.py", 11, radius=1)
    assert diff.context("other.py", 1) == ""


def test_parse_plain_diff_u_new_and_deleted_files():
    data = (b"--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+a = 1\n+b = 2\n"
            b"--- a/gone.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-x = 1\n")
    diff = parse_diff(data)
    assert diff.files["new.py"].added_lines == {1, 2}
    assert diff.files["gone.py"].deleted and not diff.files["gone.py"].added_lines


def test_not_a_diff_is_a_clear_error():
    with pytest.raises(ReviewError, match="not a unified diff"):
        parse_diff(b"hello, this is not a diff\n")


# ---- SARIF and comments -----------------------------------------------------------------------------


def test_sarif_is_restricted_to_changed_lines(tmp_path):
    diff = parse_diff(DIFF)
    log = sarif_log([result(6, "Possible SQL injection"), result(9, "old problem on an unchanged line"),
                     result(17, "shell=True", uri="file:///somewhere/else/app.py"),
                     result(15, "suppressed", suppressions=[{"kind": "inSource"}])])
    found = load_sarif(write(tmp_path / "b.sarif", log), diff, tmp_path)
    assert [(f.line, f.text, f.source, f.rule) for f in found.findings] == [
        (6, "Possible SQL injection", "sarif:Bandit", "B000"), (17, "shell=True", "sarif:Bandit", "B000")]
    assert any("1 result(s) outside the lines" in w for w in found.warnings)


def test_sarif_message_strings_rule_index_and_base_ids(tmp_path):
    log = {"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "CodeQL"}, "extensions": [{"name": "pack", "rules": [
            {"id": "py/sql-injection", "messageStrings": {"default": {"text": "Query built from {0}."}}}]}]},
        "originalUriBaseIds": {"SRC": {"uri": "file:///repo/"}},
        "results": [{"ruleIndex": 0, "rule": {"id": "py/sql-injection"},
                     "message": {"id": "default", "arguments": ["user input"]},
                     "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app.py", "uriBaseId": "SRC"},
                                                         "region": {"startLine": 6, "endLine": 6}}}]}]}]}
    found = load_sarif(write(tmp_path / "c.sarif", log), parse_diff(DIFF), Path("/repo"))
    assert [(f.path, f.text, f.rule) for f in found.findings] == [("app.py", "Query built from user input.", "py/sql-injection")]


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (json.dumps({"version": "2.0.0", "runs": []}).encode(), "SARIF version '2.0.0' is not supported"),
    (json.dumps([1, 2]).encode(), "not a SARIF log"),
])
def test_invalid_sarif_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.sarif"
    path.write_bytes(content)
    with pytest.raises(ReviewError, match=message):
        load_sarif(path, parse_diff(DIFF), tmp_path)


def test_bad_sarif_results_are_skipped_with_warnings(tmp_path):
    log = sarif_log([result(6, "fine"), {"message": {"text": "no location"}}, "not an object",
                     result(6, "", rule="B1"), result(0, "line zero")])
    found = load_sarif(write(tmp_path / "s.sarif", log), parse_diff(DIFF), tmp_path)
    assert [f.text for f in found.findings] == ["fine"]
    assert len([w for w in found.warnings if "skipped" in w]) == 4


def test_comments_in_github_gitlab_and_plain_shapes(tmp_path):
    comments = [
        {"path": "app.py", "line": 11, "body": "This loop skips the first item", "diff_hunk": "@@ -1 +1 @@\n-old\n+for i in x:"},
        {"position": {"new_path": "app.py", "new_line": 16}, "body": "Name it run_cmd"},
        {"file": "app.py", "line": "6", "text": "injection", "code": "q = 'x' + y"},
        {"file": "app.py", "text": "no line"}, 42,
    ]
    found = load_comments(write(tmp_path / "c.json", {"comments": comments}))
    assert [(f.line, f.code) for f in found.findings] == [(11, "for i in x:"), (16, ""), (6, "q = 'x' + y")]
    assert len(found.warnings) == 2


def test_collect_attaches_context_dedupes_and_never_reads_outside_root(tmp_path):
    (tmp_path / "notes.py").write_text("a = 1\nb = 2\n", encoding="utf-8")
    comments = [{"file": "app.py", "line": 11, "text": "skips the first item"},
                {"file": "app.py", "line": 11, "text": "skips  the first item"},  # same finding, other spacing
                {"file": "notes.py", "line": 2, "text": "rename b"},
                {"file": "../../etc/passwd", "line": 1, "text": "hostile path"}]
    found = collect(Sources(diff=parse_diff(DIFF), comments=[write(tmp_path / "c.json", comments)], root=tmp_path))
    assert [(f.path, f.line) for f in found.findings] == [("app.py", 11), ("notes.py", 2)]
    assert "range(1, len(items))" in found.findings[0].code and found.findings[1].code == "a = 1\nb = 2"
    assert any("duplicate" in w for w in found.warnings) and any("etc/passwd" in w for w in found.warnings)


def test_collect_needs_a_source_a_diff_for_sarif_and_respects_the_cap(tmp_path):
    with pytest.raises(ReviewError, match="no findings source"):
        collect(Sources(diff=parse_diff(DIFF)))
    with pytest.raises(ReviewError, match="need the change itself"):
        collect(Sources(sarif=[tmp_path / "x.sarif"]))
    many = write(tmp_path / "many.json", [{"file": "app.py", "line": 11, "text": f"comment {i}"} for i in range(5)])
    with pytest.raises(ReviewError, match="more than the limit of 3"):
        collect(Sources(diff=parse_diff(DIFF), comments=[many], max_findings=3))


# ---- rating, threshold, gate ------------------------------------------------------------------------


def findings() -> list[Finding]:
    return [Finding("app.py", 6, "Possible SQL injection", "sarif:Bandit", code="q = '%s' % name"),
            Finding("app.py", 11, "This loop skips the first item, totals are wrong", "comments", code="for i in range(1, n):"),
            Finding("app.py", 16, "Function name should be snake_case", "comments", code="def Run_Cmd(cmd):"),
            Finding("app.py", 2, "Unused import?", "comments", code="import subprocess")]


def test_rate_explain_filter_and_gate():
    student = ScriptedStudent(rule=keyword_rule, confidence=0.8)
    rated = rate(student, EXPLAIN, findings())
    assert [r.severity for r in rated] == ["critical", "major", "trivial", "minor"]
    assert all(r.probability == pytest.approx(0.8) and r.explanation_source == "student" for r in rated)
    assert rated[0].explanation == "rated critical because of what the comment says"
    report = build_report(rated, "scripted", "minor", [])
    assert [r.severity for r in report.findings] == ["critical", "major", "minor"] and report.filtered_out == 1
    assert [r.severity for r in gate(report, "major")] == ["critical", "major"]
    assert gate(report, None) == [] and len(gate(report, "trivial")) == 3


def test_severity_only_model_explains_with_the_levels_meaning():
    rated = rate(ScriptedStudent(rule=keyword_rule), SEVERITY, findings()[:1])
    assert rated[0].explanation_source == "definition" and "security vulnerability" in rated[0].explanation


def test_rate_refuses_a_task_that_is_not_about_findings():
    from mentor.tasks import Task

    mood = Task(name="mood", description="d", input_fields=("text",), output_fields=("mood",), label_field="mood",
                labels=("angry", "calm"), student_prompt="{text}")
    with pytest.raises(ReviewError, match="cannot rate review findings"):
        rate(ScriptedStudent(), mood, findings())


def test_review_end_to_end_library(tmp_path):
    sarif = write(tmp_path / "b.sarif", sarif_log([result(6, "Possible SQL injection vector"), result(17, "shell=True call")]))
    comments = write(tmp_path / "c.json", [{"file": "app.py", "line": 11, "text": "skips the first item: wrong total"},
                                           {"file": "app.py", "line": 16, "text": "rename Run_Cmd to snake_case"}])
    report = review(Sources(diff=parse_diff(DIFF), sarif=[sarif], comments=[comments], root=tmp_path),
                    ScriptedStudent(rule=keyword_rule), EXPLAIN, "scripted", "major")
    assert [(r.finding.line, r.severity) for r in report.findings] == [(6, "critical"), (17, "critical"), (11, "major")]
    assert report.filtered_out == 1 and report.counts()["critical"] == 2


# ---- the command line ------------------------------------------------------------------------------


def mentor(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from mentor.cli import main; main()", *args]
    return subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, timeout=120,
                          env={**os.environ, "MENTOR_HOME": str(cwd / "home")})


def test_cli_reads_stdin_writes_file_and_gates(tmp_path):
    comments = write(tmp_path / "c.json", [{"file": "app.py", "line": 11, "text": "skips the first item"}])
    common = ["--comments", str(comments), "--untuned", "--student", "scripted", "--task", "severity"]
    done = mentor("review", "-", *common, "--format", "json", "--output", "out.json", cwd=tmp_path, stdin=DIFF)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["findings"][0]["line"] == 11 and report["findings"][0]["severity"] in SEVERITY.labels
    gated = mentor("review", "-", *common, "--fail-on", "trivial", cwd=tmp_path, stdin=DIFF)
    assert gated.returncode == 1 and b"failing" in gated.stderr and b"app.py:11" in gated.stdout


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The real entry point (cli.main), in this process: (exit status, stdout, stderr with rich's line
    wrapping undone)."""
    from mentor.cli import main

    monkeypatch.setattr(sys, "argv", ["mentor", *args])
    try:
        main()
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return status, captured.out, " ".join(captured.err.split())


@pytest.mark.parametrize("args, message", [
    (["--format", "xml"], "Invalid value for '--format'"),
    (["--min-severity", "blocker"], "Invalid value for '--min-severity': 'blocker' is not one of 'critical', 'major',"),
    (["--sarif", "missing.sarif"], "SARIF file not found"),
    (["--max-diff-bytes", "100"], "larger than 100 bytes"),
])
def test_cli_user_errors_exit_2_with_a_message(home, monkeypatch, capsys, args, message):
    Path("change.diff").write_bytes(DIFF)
    status, _, err = run_cli(monkeypatch, capsys, "review", "change.diff", "--untuned", "--student", "scripted", *args)
    assert status == 2 and message in err, err


def test_base_ref_means_the_branch_change_since_the_merge_base(tmp_path):
    from mentor.review.diff import git_diff_bytes

    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "app.py").write_text("a = 1\n", encoding="utf-8")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "base"], check=True)
    subprocess.run(git + ["checkout", "-q", "-b", "feature"], check=True)
    (repo / "app.py").write_text("a = 2\n", encoding="utf-8")
    subprocess.run(git + ["commit", "-q", "-am", "feature work"], check=True)
    subprocess.run(git + ["checkout", "-q", "main"], check=True)
    (repo / "other.py").write_text("landed on main meanwhile\n", encoding="utf-8")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "main moves on"], check=True)
    subprocess.run(git + ["checkout", "-q", "feature"], check=True)
    (repo / "new.py").write_text("uncommitted = True\n", encoding="utf-8")
    subprocess.run(git + ["add", "new.py"], check=True)
    diff = parse_diff(git_diff_bytes("main", repo))
    assert set(diff.files) == {"app.py", "new.py"}  # not other.py, which main gained after the branch left it
    with pytest.raises(ReviewError, match="larger than 10 bytes"):
        git_diff_bytes("main", repo, max_bytes=10)
