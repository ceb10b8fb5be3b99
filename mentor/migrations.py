"""The run store's SQLite schema, as an append-only list of migrations (mentor.store runs them).

A released migration is never edited; a change is a new entry at the end. The database's user_version says
how many have run, so an older database is brought up to date on open and a newer one is refused.
"""

from __future__ import annotations

# Append-only. Each entry runs once, in order; the database's user_version says how many have run.
MIGRATIONS: list[str] = [
    # 1: runs, rounds, step markers, exams with the student's answers, the curriculum (every example a
    # teacher proposed, with why it was or was not accepted), holdout predictions, raw teacher calls.
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        created TEXT NOT NULL,
        task TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'running',
        stop_reason TEXT,
        best_round INTEGER
    );
    CREATE TABLE rounds (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        round INTEGER NOT NULL,
        proficiency INTEGER,
        feedback TEXT,
        grade_detail TEXT,
        metrics TEXT,
        adapter TEXT,
        train TEXT,
        stats TEXT,
        PRIMARY KEY (run_id, round)
    );
    CREATE TABLE steps (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        round INTEGER NOT NULL,
        step TEXT NOT NULL,
        seconds REAL NOT NULL,
        finished TEXT NOT NULL,
        PRIMARY KEY (run_id, round, step)
    );
    CREATE TABLE exam (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        round INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        input TEXT NOT NULL,
        output TEXT NOT NULL,
        source TEXT NOT NULL,
        raw TEXT,
        parsed TEXT,
        probs TEXT,
        correct INTEGER,
        seconds REAL,
        PRIMARY KEY (run_id, round, idx)
    );
    CREATE TABLE curriculum (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        round INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        input TEXT NOT NULL,
        output TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'proposed',
        PRIMARY KEY (run_id, round, idx)
    );
    CREATE TABLE predictions (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        round INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        raw TEXT NOT NULL,
        parsed TEXT,
        probs TEXT,
        correct INTEGER NOT NULL,
        PRIMARY KEY (run_id, round, idx)
    );
    CREATE TABLE teacher_calls (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs(id),
        round INTEGER,
        purpose TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        reply TEXT,
        outcome TEXT NOT NULL,
        tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0,
        cost REAL NOT NULL DEFAULT 0,
        seconds REAL NOT NULL DEFAULT 0,
        cache_key TEXT,
        created TEXT NOT NULL
    );
    CREATE INDEX teacher_calls_cache ON teacher_calls(cache_key);
    """,
    # 2: results of `mentor eval` (model comparisons) and `mentor judge` (explanation preferences), kept
    # with the run they measured so `mentor report` can draw them; `result` is the command's JSON output.
    """
    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs(id),
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        result TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE INDEX evaluations_run ON evaluations(run_id, kind);
    """,
    # 3: developers' verdicts on rated review findings (the data flywheel): "agree" or the severity the
    # finding should have had. Not tied to a run: feedback outlives runs and feeds the next one.
    """
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        created TEXT NOT NULL,
        code TEXT NOT NULL,
        review TEXT NOT NULL,
        verdict TEXT NOT NULL,
        predicted TEXT,
        comment TEXT NOT NULL DEFAULT '',
        explanation TEXT NOT NULL DEFAULT '',
        finding_id TEXT NOT NULL DEFAULT '',
        path TEXT NOT NULL DEFAULT '',
        line INTEGER,
        source TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT ''
    );
    """,
    # 4: probes (pool items a teacher asked the loop to score with the current student before it writes the
    # exam and the curriculum: what item-level targeting reads), and studies (`mentor study`: several runs
    # on the same data, one per teacher and seed, compared as learning curves).
    """
    CREATE TABLE probes (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        round INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        input TEXT NOT NULL,
        output TEXT NOT NULL,
        source TEXT NOT NULL,
        meta TEXT,
        raw TEXT NOT NULL,
        parsed TEXT,
        probs TEXT,
        correct INTEGER NOT NULL,
        PRIMARY KEY (run_id, round, idx)
    );
    CREATE TABLE studies (
        id INTEGER PRIMARY KEY,
        created TEXT NOT NULL,
        spec TEXT NOT NULL
    );
    CREATE TABLE study_runs (
        study_id INTEGER NOT NULL REFERENCES studies(id),
        teacher TEXT NOT NULL,
        seed INTEGER NOT NULL,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        PRIMARY KEY (study_id, teacher, seed)
    );
    """,
    # 5: the sentence-embedding cache of the `embed` baselines (mentor.baselines.embed): one float32 vector
    # (little-endian bytes) per model and text, keyed by the text's SHA-256, so repeated evals and studies
    # encode each text once. Not tied to a run: any run on the same data reuses it.
    """
    CREATE TABLE embeddings (
        model TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (model, text_sha256)
    );
    """,
]
