"""Would averaging a run's rounds beat its best round? From finished runs' stored holdout predictions (no model is
loaded, nothing is scored again).

A later round fine-tuned on new examples can forget what an earlier one learned. This averages the log-probabilities
every fine-tuned round gave each holdout item (what scoring with each round's adapter and averaging would decide)
and compares the macro-F1 of that decision with the run's best round (picked on this same holdout, so favoured) and
its last round (not picked). Runs stored twice with the same settings (a study home copied for a variant) count once.

    python benchmarks/round_ensemble.py --home study-home/ [--home another/]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.metrics import f1_score

from mentor.runner import holdout_of
from mentor.store import StoreError
from mentor.targets import RunContext, run_context


def round_scores(ctx: RunContext, run_id: int) -> tuple[np.ndarray, dict[int, np.ndarray]] | None:
    """(gold label indices, {round: holdout log-probabilities}) of a finished run, or None when it has fewer than
    two fine-tuned rounds or its stored predictions lack probabilities."""
    task, labels = ctx.task, list(ctx.task.labels)
    holdout = holdout_of(ctx.config, task, ctx.home, until=ctx.store.run(run_id)["created"])
    scores = {}
    for r in sorted(ctx.rounds()):
        stored = ctx.store.predictions(run_id, r)
        if r == 0 or len(stored) != len(holdout) or any(a.probs is None for a, _ in stored):
            continue
        scores[r] = np.log(np.array([[max(a.probs.get(label, 0.0), 1e-12) for label in labels] for a, _ in stored]))
    if len(scores) < 2:
        return None
    return np.array([labels.index(e.output[task.label_field]) for e in holdout]), scores


def main() -> None:
    try:
        _main()
    except StoreError as e:
        raise SystemExit(f"error: {e}") from None


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", action="append", required=True, help="a mentor home holding finished runs (repeatable)")
    args = parser.parse_args()

    seen, rows = set(), []
    for home in args.home:
        for run in run_context(home, "latest", need_run=True).store.runs():
            ctx = run_context(home, str(run["id"]), need_run=True)
            key = json.dumps(ctx.store.run(run["id"])["config"], sort_keys=True)
            if run["status"] != "finished" or key in seen or not ctx.task.label_field:
                continue
            seen.add(key)
            got = round_scores(ctx, run["id"])
            if got is None:
                continue
            truth, scores = got

            def macro_f1(s: np.ndarray) -> float:
                return float(f1_score(truth, s.argmax(1), labels=range(s.shape[1]), average="macro", zero_division=0))

            per_round = {r: macro_f1(s) for r, s in scores.items()}
            best = max(per_round, key=lambda r: (per_round[r], -r))
            last = max(per_round)
            averaged = macro_f1(np.mean(list(scores.values()), axis=0))
            rows.append((averaged - per_round[best], averaged - per_round[last]))
            print(f"{home} run {run['id']} ({ctx.config.teacher.name}, seed "
                  f"{ctx.config.seed}): rounds " + " / ".join(f"{per_round[r]:.3f}" for r in sorted(per_round))
                  + f"; averaged {averaged:.3f} ({averaged - per_round[best]:+.3f} against the best round, "
                  f"{averaged - per_round[last]:+.3f} against the last)")
    if not rows:
        raise SystemExit("no finished run with two or more fine-tuned rounds and stored probabilities in " + ", ".join(args.home))
    d = np.array(rows)
    print(f"{len(rows)} runs: averaged - best round {d[:, 0].mean():+.3f} (ahead in {(d[:, 0] > 0).sum()}), "
          f"averaged - last round {d[:, 1].mean():+.3f} (ahead in {(d[:, 1] > 0).sum()})")


if __name__ == "__main__":
    main()
