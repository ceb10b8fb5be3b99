"""What the report shows, read from the store into plain dicts (no plotting, no HTML here).

Per round: holdout accuracy and macro-F1 (with their bootstrap intervals when the run recorded them),
the teacher's proficiency and feedback, the accepted curriculum by class and by source, teacher tokens
and cost, and seconds per step. Plus the confusion matrices of round 0 and the best round, the latest
saved `mentor eval` comparison and the latest result of each judged pair (`mentor judge`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mentor.store import Store
from mentor.summary import STEPS, run_overview
from mentor.tasks import TaskError, get_task


def gather(store: Store, run_id: int) -> dict[str, Any]:
    overview = run_overview(store, run_id)
    run = store.run(run_id)
    rows = {r["round"]: r for r in store.rounds(run_id)}
    best = run["best_round"]
    try:
        label_field = get_task(run["config"]["task"]).label_field
    except TaskError:  # a TOML task file that has moved since the run: show the report without class splits
        label_field = None
    step_seconds = store.step_seconds(run_id)  # unrounded: a fast round's steps still show in the time chart
    rounds = []
    for r in overview["rounds"]:
        metrics = rows[r["round"]]["metrics"] or {}
        seconds = {step: step_seconds[(r["round"], step)] for step in STEPS if (r["round"], step) in step_seconds}
        rounds.append({**r, "seconds": seconds, "ci": metrics.get("ci"), "qwk": metrics.get("qwk"),
                       "critical_recall": metrics.get("critical_recall"), "within_one": metrics.get("within_one")})
    by_class: dict[int, Counter] = {}
    by_source: dict[int, Counter] = {}
    for example in store.curriculum(run_id):
        number = example.meta["round"]
        by_class.setdefault(number, Counter())[example.output.get(label_field, "(all)") if label_field else "(all)"] += 1
        by_source.setdefault(number, Counter())[example.source or "(unknown)"] += 1
    return {
        "run": run,
        "overview": overview,
        "rounds": rounds,
        "best_round": best,
        "confusions": _confusions(rows, best),
        "curriculum": {"by_class": {k: dict(v) for k, v in sorted(by_class.items())},
                       "by_source": {k: dict(v) for k, v in sorted(by_source.items())}},
        "comparison": _comparison(store.evaluations(run_id, "eval")),
        "judgements": _latest_per_pair(store.evaluations(run_id, "judge")),
        "steps": STEPS,
    }


def _confusions(rows: dict[int, dict[str, Any]], best: int | None) -> list[dict[str, Any]]:
    """Round 0's and the best round's confusion matrices: {"title", "labels", "columns", "matrix"}."""
    chosen = [0] + ([best] if best else [])
    out = []
    for number in chosen:
        metrics = (rows.get(number) or {}).get("metrics") or {}
        labels = list(metrics.get("per_class") or {})
        if not labels:
            continue
        confusion = metrics.get("confusion") or {}
        columns = labels + [c for c in sorted({c for row in confusion.values() for c in row}) if c not in labels]
        matrix = [[confusion.get(t, {}).get(c, 0) for c in columns] for t in labels]
        title = f"round {number}" + (" (untuned)" if number == 0 else " (best)")
        if number == 0 and best == 0:
            title = "round 0 (untuned, and the best round)"
        out.append({"title": title, "labels": labels, "columns": columns, "matrix": matrix,
                    "accuracy": metrics.get("accuracy"), "n": metrics.get("n")})
    return out


def _comparison(saved: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest saved `mentor eval` that compared several systems, else the newest one."""
    several = [e for e in saved if len(e["result"]["systems"]) > 1]
    return (several or saved or [None])[-1]


def _latest_per_pair(saved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest judgement of each (a, b, judge), oldest pair first."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entry in saved:
        result = entry["result"]
        latest[(result["a"], result["b"], result["judge"])] = {**result, "created": entry["created"]}
    return list(latest.values())
