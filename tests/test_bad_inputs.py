"""Bad inputs, one row each: a config key (type, range, choice, unknown key, a path or name that cannot be
used), a data file (bad JSON line, missing field, unknown label, missing file), a task TOML, an adapter
folder, a SARIF file, a diff, a run reference, a server request. Each gives a short error that names the
problem (file and line, key and allowed values) with exit status 2 (400 from the server), no traceback,
and leaves every row of the store as it was."""

from __future__ import annotations

import http.client
import json
import sqlite3
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import make_examples, write_jsonl
from tests.finished import finished_run


@dataclass(frozen=True)
class Bad:
    kind: str
    args: tuple[str, ...]  # "{dir}" stands for the folder of the files below
    says: str


# A new run with every input sound except the one a row spoils (the scripted student: no model is loaded).
# (--student, given in a row, wins over the student.model override, as every flag does.)
RUN = ("run", "--data", "{dir}/pool.jsonl", "--holdout", "{dir}/holdout.jsonl", "student.model=scripted", "loop.rounds=1")
REVIEW = ("review", "{dir}/ok.diff", "--untuned", "--student", "scripted")
DIFF = """diff --git a/app.py b/app.py
--- a/app.py
+++ b/app.py
@@ -1 +1 @@
-x = 1
+query = "SELECT * FROM users WHERE id = " + user_id
"""
FILES = {
    "bad.toml": "[loop\nrounds = 2\n",
    "ok.diff": DIFF,
    "bad-json.jsonl": '{"input": {"code": "x", "review": "y"}, "output": {"issue_type": "minor"}}\n{"input": {\n',
    "no-review.jsonl": '{"input": {"code": "x"}, "output": {"issue_type": "minor"}}\n',
    "urgent.jsonl": '{"input": {"code": "x", "review": "y"}, "output": {"issue_type": "minor"}}\n'
                    '{"input": {"code": "x", "review": "z"}, "output": {"issue_type": "urgent"}}\n',
    "broken-task.toml": 'name = "mine"\ndescription = [\n',
    "unknown-key-task.toml": 'name = "mine"\nprompt = "Rate it"\n',
    "not-json.sarif": '{"version": "2.1.0", "runs": [',
    "old.sarif": '{"version": "1.0.0", "runs": []}',
    "no-model/readme.txt": "not a model",
    "empty-adapter/readme.txt": "no adapter_config.json here",
}

BAD = [
    Bad("config: wrong type", (*RUN, "loop.rounds=three"), "'loop.rounds' must be int, got 'three'"),
    Bad("config: out of range", (*RUN, "student.micro_batch_size=0"), "'student.micro_batch_size' is 0; it must be at least 1"),
    Bad("config: not a choice", (*RUN, "loop.metric=f1"), "'loop.metric' is 'f1'; choose one of macro_f1, accuracy"),
    Bad("config: unknown key", (*RUN, "student.lora.rnak=4"), "unknown key(s) student.lora.rnak (did you mean student.lora.rank?)"),
    Bad("config: unknown teacher variant", (*RUN, "--teacher", "reference:bogus"),
        "unknown teacher 'reference:bogus' (teacher.name, --teacher): use reference, reference:items"),
    Bad("config: student folder missing", (*RUN, "--student", "./models/gone"), "'student.model' is './models/gone': no such folder"),
    Bad("config: student folder not a model", (*RUN, "--student", "{dir}/no-model"), "no config.json: not a Hugging Face model"),
    Bad("config: unknown tracker", (*RUN, "student.report_to=tensorbored"), "'student.report_to' has 'tensorbored'; choose from tensorboard"),
    Bad("config: unknown recipe", (*RUN, "recipe=huge"), "recipe 'huge' is not one of: auto, none, demo, large-data"),
    Bad("config file: not TOML", (*RUN, "--config", "{dir}/bad.toml"), "bad.toml: not valid TOML"),
    Bad("data: bad JSON line", (*RUN, "--data", "{dir}/bad-json.jsonl"), "bad-json.jsonl:2: invalid JSON"),
    Bad("data: missing field", (*RUN, "--data", "{dir}/no-review.jsonl"), "no-review.jsonl:1: missing field 'input.review'"),
    Bad("data: unknown label", (*RUN, "--holdout", "{dir}/urgent.jsonl"),
        "urgent.jsonl:2: label 'urgent' in 'issue_type' is not one of critical, major, minor, trivial"),
    Bad("data: no such file", (*RUN, "--data", "{dir}/gone.jsonl"), "gone.jsonl: file not found"),
    Bad("eval data: unknown label", ("eval", "--data", "{dir}/urgent.jsonl", "--models", "base,best"), "urgent.jsonl:2: label 'urgent'"),
    Bad("task TOML: not TOML", (*RUN, "--task", "{dir}/broken-task.toml"), "broken-task.toml: not valid TOML"),
    Bad("task TOML: unknown key", (*RUN, "--task", "{dir}/unknown-key-task.toml"),
        "unknown-key-task.toml: unknown key(s) prompt; allowed: context_fields, description"),
    Bad("adapter: no adapter_config.json", ("eval", "--data", "{dir}/dev.jsonl", "--adapter", "{dir}/empty-adapter",
                                            "--student", "scripted"), "adapter_config.json is missing"),
    Bad("adapter: no such folder", ("eval", "--data", "{dir}/dev.jsonl", "--adapter", "{dir}/gone"), "no such adapter directory"),
    Bad("SARIF: not JSON", (*REVIEW, "--sarif", "{dir}/not-json.sarif"), "not-json.sarif: the SARIF file is not valid JSON"),
    Bad("SARIF: wrong version", (*REVIEW, "--sarif", "{dir}/old.sarif"), "SARIF version '1.0.0' is not supported"),
    Bad("diff: binary garbage", ("review", "{dir}/garbage.diff", "--untuned", "--student", "scripted"), "not a unified diff"),
    Bad("run: not an id", ("show", "--run", "first"), "'first' is not a run: give a run id"),
    Bad("run: no such run", ("report", "--run", "99"), "no run 99 in"),
    Bad("run: two different runs", ("judge", "1", "--run", "2"), "RUN is another spelling of --run: give one of them"),
    Bad("resume: no such run", ("run", "--resume", "--run", "99"), "no run 99 in"),
    Bad("eval: --models with --untuned", ("eval", "--data", "{dir}/dev.jsonl", "--models", "base", "--untuned"),
        "--models already names the systems"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A store with one finished run, and the bad files beside it."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MENTOR_HOME", str(folder / "home"))
        finished_run(folder, rounds=1)
    write_jsonl(folder / "pool.jsonl", make_examples(8, "pool"))
    write_jsonl(folder / "holdout.jsonl", make_examples(2, "holdout", seed=1))
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "garbage.diff").write_bytes(bytes(range(256)) * 4)
    return folder


def rows(database: Path) -> dict[str, list[tuple]]:
    """Every row of every table: what 'the store is unchanged' means."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: sorted(db.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables}


def mentor(args: list[str], monkeypatch, capsys) -> tuple[int, str]:  # noqa: ANN001
    """`mentor ARGS` in this process (the same main() the console script runs): exit status and stderr."""
    from mentor.cli import main

    monkeypatch.setattr(sys, "argv", ["mentor", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize("bad", BAD, ids=[b.kind for b in BAD])
def test_a_bad_input_is_a_short_error_and_changes_nothing(bad, world, monkeypatch, capsys):
    monkeypatch.setenv("MENTOR_HOME", str(world / "home"))
    monkeypatch.chdir(world)
    before = rows(world / "home" / "mentor.db")
    code, err = mentor([a.replace("{dir}", str(world)) for a in bad.args], monkeypatch, capsys)
    assert code == 2, err
    assert bad.says in err and "Traceback" not in err, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) <= 4, err
    assert rows(world / "home" / "mentor.db") == before


def test_the_table_covers_every_kind_of_input():
    kinds = {b.kind.split(":")[0] for b in BAD}
    assert {"config", "config file", "data", "task TOML", "adapter", "SARIF", "diff", "run"} <= kinds and len(BAD) >= 15


# ---- the server: a bad request is a 400 with a message, and stores nothing ---------------------------------

BAD_REQUESTS = [
    ("/v1/review", b'{"findings": [', "the body is not UTF-8 JSON"),
    ("/v1/review", b'{"findings": [{"path": "a.py", "line": 3, "code": "x = 1"}]}', "finding 1: needs a 'review'"),
    ("/v1/review", b'{"findings": [{"review": "SQL injection", "code": "q", "line": "three"}]}', "'line' must be a positive integer"),
    ("/v1/chat/completions", b'{"model": "mentor"}', "'messages' must be a non-empty list"),
    ("/v1/feedback", b'[1, 2]', "the body must be a JSON object"),
    ("/v1/feedback", b'{"verdict": "agree"}', "feedback: 'code' must be a non-empty string; 'review' must be"),
]


@pytest.fixture(scope="module")
def server(world):
    from mentor.server import build_server

    built = build_server({"mentor": "best"}, home=str(world / "home"), port=0, max_wait=0.0)
    thread = threading.Thread(target=built.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield built
    built.shutdown()
    built.server_close()
    built.api.batcher.close()


@pytest.mark.parametrize("path, body, says", BAD_REQUESTS, ids=[f"{p} {b[:24]!r}" for p, b, _ in BAD_REQUESTS])
def test_a_bad_request_is_a_400_with_a_message_and_stores_nothing(path, body, says, server, world):
    before = rows(world / "home" / "mentor.db")
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    reply = connection.getresponse()
    payload = json.loads(reply.read())
    connection.close()
    message = payload["error"]["message"]
    assert reply.status == 400 and says in message and len(message) < 300 and "Traceback" not in message, payload
    assert rows(world / "home" / "mentor.db") == before
