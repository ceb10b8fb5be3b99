"""End to end: a git change with a real vulnerability, a real logic bug and a style nit; bandit's SARIF
and a scripted reviewer LLM (a real HTTP server on 127.0.0.1) find them; the student rates them; every
output format comes out valid, and the CI gate trips on the vulnerability."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from mentor.review import Sources, gate, parse_diff, review
from mentor.review.diff import git_diff_bytes
from mentor.students.scripted import ScriptedStudent
from mentor.tasks import EXPLAIN
from tests.fake_openai_server import FakeOpenAI
from tests.test_review import keyword_rule, run_cli
from tests.test_review_formats import GITLAB_SCHEMA, JSON_SCHEMA, RDJSON_SCHEMA, sarif_schema

BEFORE = '''import sqlite3


def find_user(db, name):
    return db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()


def total(items):
    result = 0
    for i in range(len(items)):
        result += items[i]
    return result
'''

AFTER = '''import sqlite3


def find_user(db, name):
    return db.execute("SELECT * FROM users WHERE name = '%s'" % name).fetchone()


def total(items):
    result = 0
    for i in range(1, len(items)):
        result += items[i]
    return result


def CountUsers(db):
    return db.execute("SELECT count(*) FROM users").fetchone()[0]
'''


def fake_reviewer(body: dict) -> str:
    """A reviewer model that reads the numbered hunk and comments on what it recognises."""
    added = re.findall(r"(?m)^\s*(\d+) \+ (.*)$", body["messages"][-1]["content"])
    comments = []
    for number, text in added:
        if "range(1," in text:
            comments.append({"line": int(number), "comment": "The loop starts at 1 and skips the first item: the total is wrong."})
        if "def CountUsers" in text:
            comments.append({"line": int(number), "comment": "Function names should be snake_case: count_users."})
    comments.append({"line": 9999, "comment": "a line the hunk does not show"})
    return json.dumps({"comments": comments})


@pytest.fixture
def change(tmp_path, monkeypatch) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "app.py").write_text(BEFORE, encoding="utf-8")
    subprocess.run(git + ["add", "app.py"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "base"], check=True)
    (repo / "app.py").write_text(AFTER, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bandit", "-q", "-f", "sarif", "-o", str(tmp_path / "bandit.sarif"), "app.py"],
                          cwd=repo, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr  # 1: bandit found issues
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MENTOR_HOME", str(tmp_path / "home"))
    return repo


def test_bandit_finds_the_vulnerability(change):
    log = json.loads((change.parent / "bandit.sarif").read_text())
    jsonschema.Draft4Validator(sarif_schema()).validate(log)  # the analyzer's SARIF is valid input
    assert "B608" in {r["ruleId"] for r in log["runs"][0]["results"]}


def test_review_rates_the_three_findings_and_gates(change, monkeypatch):
    monkeypatch.setenv("MENTOR_OPENAI_API_KEY", "test-key")
    with FakeOpenAI(default=fake_reviewer) as server:
        monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", server.url)
        sources = Sources(diff=parse_diff(git_diff_bytes("HEAD", change)), sarif=[change.parent / "bandit.sarif"],
                          reviewers=["openai:reviewer"], root=change)
        report = review(sources, ScriptedStudent(rule=keyword_rule), EXPLAIN, "scripted", None)
    rated = {(r.finding.line, r.finding.source, r.severity) for r in report.findings}
    assert (5, "sarif:Bandit", "critical") in rated  # B608: SQL built from user input, on the changed line
    assert (10, "reviewer:reviewer", "major") in rated  # the loop that skips the first item
    assert (15, "reviewer:reviewer", "trivial") in rated  # the CamelCase function name
    assert any("9999" in w for w in report.warnings)  # a reviewer comment on a line it was not shown
    assert all(r.finding.code.strip() for r in report.findings)
    assert [r.severity for r in gate(report, "critical")] == ["critical"]

    filtered = review(Sources(**{**sources.__dict__, "reviewers": []}), ScriptedStudent(rule=keyword_rule), EXPLAIN,
                      "scripted", "major")
    assert {r.severity for r in filtered.findings} <= {"critical", "major"}


def test_every_output_format_end_to_end(change, monkeypatch, capsys):
    monkeypatch.setenv("MENTOR_OPENAI_API_KEY", "test-key")
    with FakeOpenAI(default=fake_reviewer) as server:
        monkeypatch.setenv("MENTOR_OPENAI_BASE_URL", server.url)
        common = ["review", "--base", "HEAD", "--sarif", str(change.parent / "bandit.sarif"), "--reviewer", "openai:reviewer",
                  "--untuned", "--student", "scripted", "--task", "explain"]
        outputs = {}
        for fmt in ("table", "markdown", "json", "sarif", "gitlab", "rdjson"):
            status, out, err = run_cli(monkeypatch, capsys, *common, "--format", fmt)
            assert status == 0, err
            outputs[fmt] = out
        assert server.headers[0]["authorization"] == "Bearer test-key"
    found = json.loads(outputs["json"])
    jsonschema.Draft202012Validator(JSON_SCHEMA).validate(found)
    lines = {(f["line"], f["source"]) for f in found["findings"]}
    assert {(5, "sarif:Bandit"), (10, "reviewer:reviewer"), (15, "reviewer:reviewer")} <= lines
    jsonschema.Draft4Validator(sarif_schema()).validate(json.loads(outputs["sarif"]))
    jsonschema.Draft202012Validator(GITLAB_SCHEMA).validate(json.loads(outputs["gitlab"]))
    jsonschema.Draft202012Validator(RDJSON_SCHEMA).validate(json.loads(outputs["rdjson"]))
    n = len(found["findings"])
    assert len(json.loads(outputs["sarif"])["runs"][0]["results"]) == len(json.loads(outputs["gitlab"])) == n
    assert outputs["markdown"].count("\n| ") == n + 2 and "app.py:10" in outputs["table"]  # + header and rule
