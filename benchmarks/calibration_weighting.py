"""Which class weighting of the calibration fit gives the best holdout macro-F1, from a finished run's stored
holdout predictions (no model is loaded, nothing is scored again).

Decision calibration (mentor.calibration) fits one offset per label by a log-loss in which each item weighs
1/(its label's share) ** balance. This takes a round's stored holdout probabilities, removes the offsets the run
fitted, then, over random halves of the holdout, fits offsets on one half with each exponent and scores
macro-F1 on the other half. It prints the mean over halves per exponent, beside the run's own decisions
(offsets fitted on its calibration set) and no offsets at all.

    python benchmarks/calibration_weighting.py --home runs/ --run 1 --round 1
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import f1_score

from mentor import baselines, calibration
from mentor.runner import holdout_of
from mentor.targets import RunContext, run_context


def curriculum_tfidf_labels(ctx: RunContext, run_id: int, round_no: int, items: list) -> tuple[int, list[str | None]]:
    """(examples, labels): TF-IDF + logistic regression trained on the run's curriculum up to `round_no` (what the
    student had learned from by then), and its label for each item."""
    curriculum = [e for e in ctx.store.curriculum(run_id) if e.meta.get("round", 0) <= round_no]
    model = baselines.train("tfidf", ctx.task, curriculum, ctx.config.seed, None)
    return len(curriculum), [(a.parsed or {}).get(ctx.task.label_field) for a in model.answer(ctx.task, [e.input for e in items])]


def stored_raw_scores(ctx: RunContext, round_arg: int | None) -> tuple[int, int, list[str], np.ndarray, np.ndarray,
                                                                      dict[str, float]]:
    """(run id, round, labels, the student's own holdout log-scores, gold label indices, the run's offsets).

    The scores are a round's stored holdout probabilities with the offsets the run fitted taken back out.
    """
    run_id, task = ctx.need_run(), ctx.task
    if not task.label_field:
        raise SystemExit(f"run {run_id}: task {task.name!r} has no labels to calibrate")
    rounds = ctx.rounds()
    round_no = round_arg if round_arg is not None else ctx.store.run(run_id)["best_round"]
    if round_no not in rounds or not round_no:
        raise SystemExit(f"run {run_id}: no fine-tuned round {round_no} (rounds: {', '.join(map(str, sorted(rounds)))})")
    stored = ctx.store.predictions(run_id, round_no)
    holdout = holdout_of(ctx.config, task, ctx.home, until=ctx.store.run(run_id)["created"])
    if len(stored) != len(holdout) or any(answer.probs is None for answer, _ in stored):
        raise SystemExit(f"run {run_id} round {round_no}: the stored predictions do not carry probabilities for every "
                         "holdout item")
    labels = list(task.labels)
    fitted = ((rounds[round_no]["stats"] or {}).get("calibration") or {}).get("offsets") or {}
    # The stored probabilities carry the run's offsets; take them out to get the student's own scores.
    scores = np.array([[np.log(max(answer.probs.get(label, 0.0), 1e-12)) - fitted.get(label, 0.0) for label in labels]
                       for answer, _ in stored])
    truth = np.array([labels.index(e.output[task.label_field]) for e in holdout])
    return run_id, round_no, labels, scores, truth, fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=None, help="the mentor home holding the run [default: MENTOR_HOME or ./.mentor]")
    parser.add_argument("--run", default="latest", help="run id [default: latest]")
    parser.add_argument("--round", type=int, default=None, help="round whose predictions to use [default: the best]")
    parser.add_argument("--halves", type=int, default=20, help="random half splits to average over")
    parser.add_argument("--exponents", default="0,0.5,0.75,1", help="class-weighting exponents to compare")
    args = parser.parse_args()

    ctx = run_context(args.home, args.run, need_run=True)
    run_id, round_no, labels, scores, truth, fitted = stored_raw_scores(ctx, args.round)

    def macro_f1(rows: np.ndarray, offsets: np.ndarray) -> float:
        return float(f1_score(truth[rows], (scores[rows] + offsets).argmax(1), labels=range(len(labels)),
                              average="macro", zero_division=0))

    exponents = [float(x) for x in args.exponents.split(",")]
    run_offsets = np.array([fitted.get(label, 0.0) for label in labels])
    results: dict[str, list[float]] = {"no offsets": [], "the run's offsets": [], **{f"balance {e:g}": [] for e in exponents}}
    rng = np.random.default_rng(0)
    for _ in range(args.halves):
        order = rng.permutation(len(truth))
        fit_on, score_on = order[: len(order) // 2], order[len(order) // 2:]
        results["no offsets"].append(macro_f1(score_on, np.zeros(len(labels))))
        results["the run's offsets"].append(macro_f1(score_on, run_offsets))
        probs = [dict(zip(labels, np.exp(row))) for row in scores[fit_on]]
        gold = [labels[t] for t in truth[fit_on]]
        for e in exponents:
            fit = calibration.fit_offsets(labels, probs, gold, balance=e)
            results[f"balance {e:g}"].append(macro_f1(score_on, np.array([fit.offsets[label] for label in labels])))
    print(f"run {run_id} round {round_no}: {len(truth)} holdout items, {args.halves} random halves "
          "(offsets fitted on one half, macro-F1 on the other)")
    for name, values in results.items():
        print(f"  {name:<18} mean macro-F1 {np.mean(values):.3f}  [min {np.min(values):.3f}, max {np.max(values):.3f}]")


if __name__ == "__main__":
    main()
