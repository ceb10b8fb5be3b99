"""The run store: one embedded SQLite database holding everything a run did.

Each loop step writes its rows and its "done" marker in ONE transaction, so a run killed anywhere
(Ctrl-C, kill -9, power loss) resumes from the last completed step with no row lost or duplicated.
Its schema is mentor.migrations (append-only: a released migration is never edited).
JSON columns hold records as text; nothing here knows about torch or HTTP.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mentor.migrations import MIGRATIONS
from mentor.records import Answer, Example

def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class StoreError(RuntimeError):
    """The database cannot be used (locked, corrupt, newer than this mentor)."""


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: cannot open the mentor database: {err}") from None

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path} was written by a newer mentor (schema {version}); upgrade mentor")
        for number in range(version, len(MIGRATIONS)):
            # executescript manages its own transaction: schema and version bump commit together.
            try:
                self.db.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[number]}; PRAGMA user_version = {number + 1}; COMMIT;")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes inside commit together or not at all."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---- runs -----------------------------------------------------------------------------

    def create_run(self, task: str, config: dict[str, Any]) -> int:
        with self.transaction():
            cur = self.db.execute("INSERT INTO runs (created, task, config) VALUES (?, ?, ?)", (_now(), task, _dump(config)))
            return int(cur.lastrowid)

    def run(self, run_id: int) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id} in {self.path} (see `mentor runs`)")
        out = dict(row)
        out["config"] = _load(out["config"])
        return out

    def runs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT id, created, task, status, stop_reason, best_round FROM runs ORDER BY id")]

    def latest_run_id(self) -> int:
        row = self.db.execute("SELECT max(id) FROM runs").fetchone()
        if row[0] is None:
            raise StoreError(f"no runs yet in {self.path}: start one with `mentor run`")
        return int(row[0])

    def finish_run(self, run_id: int, status: str, reason: str, best_round: int | None) -> None:
        with self.transaction():
            self.db.execute("UPDATE runs SET status = ?, stop_reason = ?, best_round = ? WHERE id = ?",
                            (status, reason, best_round, run_id))

    # ---- steps and rounds -------------------------------------------------------------------

    def done_steps(self, run_id: int, round_no: int) -> set[str]:
        rows = self.db.execute("SELECT step FROM steps WHERE run_id = ? AND round = ?", (run_id, round_no))
        return {r[0] for r in rows}

    def mark_step(self, run_id: int, round_no: int, step: str, seconds: float) -> None:
        self.db.execute("INSERT INTO steps (run_id, round, step, seconds, finished) VALUES (?, ?, ?, ?, ?)",
                        (run_id, round_no, step, seconds, _now()))

    def step_seconds(self, run_id: int) -> dict[tuple[int, str], float]:
        rows = self.db.execute("SELECT round, step, seconds FROM steps WHERE run_id = ?", (run_id,))
        return {(r[0], r[1]): r[2] for r in rows}

    def update_round(self, run_id: int, round_no: int, **fields: Any) -> None:
        """Set columns of a round's row (JSON-encoded where structured), creating the row if needed."""
        self.db.execute("INSERT OR IGNORE INTO rounds (run_id, round) VALUES (?, ?)", (run_id, round_no))
        for column, value in fields.items():
            if column not in {"proficiency", "feedback", "grade_detail", "metrics", "adapter", "train", "stats"}:
                raise ValueError(f"unknown round column {column}")
            stored = value if column in {"proficiency", "feedback", "adapter"} else _dump(value)
            self.db.execute(f"UPDATE rounds SET {column} = ? WHERE run_id = ? AND round = ?", (stored, run_id, round_no))

    def rounds(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM rounds WHERE run_id = ? ORDER BY round", (run_id,))
        out = []
        for row in rows:
            item = dict(row)
            for column in ("grade_detail", "metrics", "train", "stats"):
                item[column] = _load(item[column])
            out.append(item)
        return out

    # ---- exams ---------------------------------------------------------------------------------

    def save_exam(self, run_id: int, round_no: int, questions: list[Example]) -> None:
        self.db.executemany(
            "INSERT INTO exam (run_id, round, idx, input, output, source) VALUES (?, ?, ?, ?, ?, ?)",
            [(run_id, round_no, i, _dump(q.input), _dump(q.output), q.source) for i, q in enumerate(questions)])

    def exam(self, run_id: int, round_no: int) -> list[tuple[Example, Answer | None, bool | None]]:
        rows = self.db.execute("SELECT * FROM exam WHERE run_id = ? AND round = ? ORDER BY idx", (run_id, round_no))
        out = []
        for r in rows:
            question = Example(input=_load(r["input"]), output=_load(r["output"]), source=r["source"])
            answer = None if r["raw"] is None else Answer(r["raw"], _load(r["parsed"]), _load(r["probs"]), r["seconds"] or 0.0)
            out.append((question, answer, None if r["correct"] is None else bool(r["correct"])))
        return out

    def save_answers(self, run_id: int, round_no: int, answers: list[Answer], correct: list[bool]) -> None:
        self.db.executemany(
            "UPDATE exam SET raw = ?, parsed = ?, probs = ?, correct = ?, seconds = ? WHERE run_id = ? AND round = ? AND idx = ?",
            [(a.raw, _dump(a.parsed), _dump(a.probs), int(c), a.seconds, run_id, round_no, i)
             for i, (a, c) in enumerate(zip(answers, correct))])

    def all_exam_keys(self, run_id: int) -> list[dict[str, str]]:
        return [_load(r[0]) for r in self.db.execute("SELECT input FROM exam WHERE run_id = ?", (run_id,))]

    # ---- curriculum --------------------------------------------------------------------------

    def save_proposals(self, run_id: int, round_no: int, examples: list[Example]) -> None:
        self.db.executemany(
            "INSERT INTO curriculum (run_id, round, idx, input, output, source) VALUES (?, ?, ?, ?, ?, ?)",
            [(run_id, round_no, i, _dump(e.input), _dump(e.output), e.source) for i, e in enumerate(examples)])

    def set_curriculum_status(self, run_id: int, round_no: int, statuses: list[str]) -> None:
        self.db.executemany("UPDATE curriculum SET status = ? WHERE run_id = ? AND round = ? AND idx = ?",
                            [(s, run_id, round_no, i) for i, s in enumerate(statuses)])

    def curriculum(self, run_id: int, round_no: int | None = None, status: str | None = "accepted") -> list[Example]:
        """Curriculum examples of one round (or all rounds), by default only the accepted ones."""
        sql = "SELECT input, output, source, status, round FROM curriculum WHERE run_id = ?"
        args: list[Any] = [run_id]
        if round_no is not None:
            sql += " AND round = ?"
            args.append(round_no)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        rows = self.db.execute(sql + " ORDER BY round, idx", args)
        return [Example(_load(r[0]), _load(r[1]), r[2], {"status": r[3], "round": r[4]}) for r in rows]

    # ---- probes: pool items scored by the current student for a targeting teacher -------------

    def save_probes(self, run_id: int, round_no: int, items: list[Example], answers: list[Answer], correct: list[bool]) -> None:
        self.db.executemany(
            "INSERT INTO probes (run_id, round, idx, input, output, source, meta, raw, parsed, probs, correct) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, round_no, i, _dump(e.input), _dump(e.output), e.source, _dump(e.meta), a.raw, _dump(a.parsed),
              _dump(a.probs), int(c)) for i, (e, a, c) in enumerate(zip(items, answers, correct))])

    def probes(self, run_id: int, round_no: int) -> list[tuple[Example, Answer, bool]]:
        rows = self.db.execute("SELECT * FROM probes WHERE run_id = ? AND round = ? ORDER BY idx", (run_id, round_no))
        return [(Example(_load(r["input"]), _load(r["output"]), r["source"], _load(r["meta"]) or {}),
                 Answer(r["raw"], _load(r["parsed"]), _load(r["probs"])), bool(r["correct"])) for r in rows]

    # ---- studies: runs grouped by teacher and seed ---------------------------------------------

    def find_study(self, spec: dict[str, Any]) -> int | None:
        """The newest study recorded with exactly this spec (so repeating `mentor study` resumes it)."""
        row = self.db.execute("SELECT id FROM studies WHERE spec = ? ORDER BY id DESC LIMIT 1",
                              (json.dumps(spec, sort_keys=True),)).fetchone()
        return row[0] if row else None

    def create_study(self, spec: dict[str, Any]) -> int:
        with self.transaction():
            cur = self.db.execute("INSERT INTO studies (created, spec) VALUES (?, ?)", (_now(), json.dumps(spec, sort_keys=True)))
        return int(cur.lastrowid)

    def study(self, study_id: int) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM studies WHERE id = ?", (study_id,)).fetchone()
        if row is None:
            raise StoreError(f"no study {study_id} in {self.path}; `mentor study --list` lists them")
        return {"id": row["id"], "created": row["created"], "spec": json.loads(row["spec"])}

    def studies(self) -> list[dict[str, Any]]:
        return [self.study(r[0]) for r in self.db.execute("SELECT id FROM studies ORDER BY id")]

    def add_study_run(self, study_id: int, teacher: str, seed: int, run_id: int) -> None:
        self.db.execute("INSERT INTO study_runs (study_id, teacher, seed, run_id) VALUES (?, ?, ?, ?)",
                        (study_id, teacher, seed, run_id))

    def study_runs(self, study_id: int) -> dict[tuple[str, int], int]:
        rows = self.db.execute("SELECT teacher, seed, run_id FROM study_runs WHERE study_id = ?", (study_id,))
        return {(r[0], r[1]): r[2] for r in rows}

    def studies_of_run(self, run_id: int) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT study_id FROM study_runs WHERE run_id = ? ORDER BY study_id", (run_id,))]

    # ---- holdout predictions -----------------------------------------------------------------

    def save_predictions(self, run_id: int, round_no: int, answers: list[Answer], correct: list[bool]) -> None:
        self.db.executemany(
            "INSERT INTO predictions (run_id, round, idx, raw, parsed, probs, correct) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(run_id, round_no, i, a.raw, _dump(a.parsed), _dump(a.probs), int(c)) for i, (a, c) in enumerate(zip(answers, correct))])

    # ---- teacher calls (hosted teachers record every request and reply here) -----------------

    def record_call(self, run_id: int | None, round_no: int | None, purpose: str, model: str, request: Any,
                    reply: str | None, outcome: str, tokens_in: int = 0, tokens_out: int = 0, cost: float = 0.0,
                    seconds: float = 0.0, cache_key: str | None = None) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO teacher_calls (run_id, round, purpose, model, request, reply, outcome, tokens_in, tokens_out,"
                " cost, seconds, cache_key, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, round_no, purpose, model, _dump(request), reply, outcome, tokens_in, tokens_out, cost, seconds,
                 cache_key, _now()))

    def call_totals(self, run_id: int) -> dict[int, dict[str, float]]:
        rows = self.db.execute(
            "SELECT round, count(*), sum(tokens_in), sum(tokens_out), sum(cost), sum(seconds) FROM teacher_calls"
            " WHERE run_id = ? GROUP BY round", (run_id,))
        return {r[0]: {"calls": r[1], "tokens_in": r[2], "tokens_out": r[3], "cost": r[4], "seconds": r[5]} for r in rows}

    # ---- saved evaluations and judgements (migration 2) ----------------------------------------

    def predictions(self, run_id: int, round_no: int) -> list[tuple[Answer, bool]]:
        """A round's holdout answers, in holdout order, with whether each was correct."""
        rows = self.db.execute("SELECT raw, parsed, probs, correct FROM predictions WHERE run_id = ? AND round = ? ORDER BY idx",
                               (run_id, round_no))
        return [(Answer(r[0], _load(r[1]), _load(r[2])), bool(r[3])) for r in rows]

    def save_evaluation(self, run_id: int | None, kind: str, data: str, result: dict[str, Any]) -> int:
        """Keep an `eval` comparison or a `judge` result (kind) measured on `data` (a file or 'holdout')."""
        with self.transaction():
            cur = self.db.execute("INSERT INTO evaluations (run_id, kind, data, result, created) VALUES (?, ?, ?, ?, ?)",
                                  (run_id, kind, data, _dump(result), _now()))
            return int(cur.lastrowid)

    def evaluations(self, run_id: int, kind: str) -> list[dict[str, Any]]:
        """Saved results of one kind for a run, oldest first."""
        rows = self.db.execute("SELECT id, data, result, created FROM evaluations WHERE run_id = ? AND kind = ? ORDER BY id",
                               (run_id, kind))
        return [{"id": r[0], "data": r[1], "result": _load(r[2]), "created": r[3]} for r in rows]

    # ---- the hosted-model reply cache (teacher_calls.cache_key, migration 1) -----------------------

    def cached_call(self, cache_key: str) -> dict[str, Any] | None:
        """The latest successful call with this cache key, from any run: its raw reply and tokens."""
        row = self.db.execute("SELECT reply, tokens_in, tokens_out FROM teacher_calls WHERE cache_key = ? AND outcome = 'ok'"
                              " ORDER BY id DESC LIMIT 1", (cache_key,)).fetchone()
        return None if row is None else {"reply": row[0] or "", "tokens_in": row[1], "tokens_out": row[2]}

    def call_rows(self, run_id: int) -> list[dict[str, Any]]:
        """Every recorded teacher call of a run, oldest first, request decoded."""
        rows = self.db.execute("SELECT * FROM teacher_calls WHERE run_id = ? ORDER BY id", (run_id,))
        return [{**dict(r), "request": _load(r["request"])} for r in rows]

    # ---- the embedding cache (migration 5) ----------------------------------------------------

    def embeddings(self, model: str, keys: list[str]) -> dict[str, bytes]:
        """Cached vectors of `model` for these text keys (SHA-256 hex), as stored bytes; missing keys absent."""
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[start:start + 500]
            rows = self.db.execute(f"SELECT text_sha256, vector FROM embeddings WHERE model = ? AND text_sha256 IN "
                                   f"({', '.join('?' * len(chunk))})", (model, *chunk))
            found.update((r[0], bytes(r[1])) for r in rows)
        return found

    def save_embeddings(self, model: str, rows: list[tuple[str, bytes]]) -> None:
        """Keep vectors of `model` by text key; a key already cached keeps its first vector."""
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO embeddings (model, text_sha256, vector) VALUES (?, ?, ?)",
                                [(model, key, vector) for key, vector in rows])

    # ---- review feedback (migration 3) ---------------------------------------------------------

    _FEEDBACK_COLUMNS = ("code", "review", "verdict", "predicted", "comment", "explanation", "finding_id", "path",
                         "line", "source", "model")

    def add_feedback(self, fields: dict[str, Any]) -> int:
        """Store one verdict (the columns of `feedback`); returns its id."""
        values = [fields.get(c, "" if c not in ("predicted", "line") else None) for c in self._FEEDBACK_COLUMNS]
        with self.transaction():
            cur = self.db.execute(f"INSERT INTO feedback (created, {', '.join(self._FEEDBACK_COLUMNS)}) VALUES (?{', ?' * len(values)})",
                                  (_now(), *values))
            return int(cur.lastrowid)

    def feedback(self, until: str | None = None) -> list[dict[str, Any]]:
        """Stored verdicts, oldest first; `until` (a `created` timestamp) leaves out later ones."""
        sql, args = "SELECT * FROM feedback", []
        if until is not None:
            sql, args = sql + " WHERE created <= ?", [until]
        return [dict(r) for r in self.db.execute(sql + " ORDER BY id", args)]
