"""Would a round of a finished run have scored higher trained another way?

Retrains one round of a stored run with other training settings and scores it as the loop does: the round's
own curriculum (plus a share of the earlier rounds' examples with --replay), from the previous round's adapter
(or from the untuned model with --fresh), then decision offsets fitted on the run's calibration set (rebuilt
exactly as the run split it) and the run's holdout scored. The result is compared, paired on the same holdout
items (resampling whole findings, as `mentor eval` does), with the round as the run stored it and with TF-IDF +
logistic regression trained on the run's curriculum up to that round (what `mentor eval --models best,tfidf`
compares).

--average ALPHA retrains nothing: it scores the weight average ALPHA * (round N-1) + (1 - ALPHA) * (round N) of
the two stored adapters, each merged into a copy of the weights (exact for LoRA, whose update is linear),
calibrated and scored the same way.

    python benchmarks/retrain_round.py --home runs/ --run 1 --round 2 --out /tmp/r2 student.learning_rate=2e-4
    python benchmarks/retrain_round.py --home runs/ --run 1 --round 2 --out /tmp/r2 --fresh --replay 1
    python benchmarks/retrain_round.py --home runs/ --run 1 --round 2 --out /tmp/r2 --start /tmp/r1 student.lora.rank=128
    python benchmarks/retrain_round.py --home runs/ --run 1 --round 2 --out /tmp/r2 --explanations
    python benchmarks/retrain_round.py --home runs/ --run 1 --round 2 --average 0.5

--explanations trains a severity run's round with each example's explanation from the run's data source as a
second target (the explain task's format: the label, then the explanation), then calibrates and scores labels
with that task's prompt.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_weighting import curriculum_tfidf_labels, stored_raw_scores  # noqa: E402
from throughput import cpu_kind  # noqa: E402

from mentor import calibration  # noqa: E402
from mentor.config import ConfigError, StudentConfig, with_overrides  # noqa: E402
from mentor.curriculum import training_set  # noqa: E402
from mentor.metrics import paired_bootstrap  # noqa: E402
from mentor.records import Example  # noqa: E402
from mentor.runner import calibration_set, holdout_of, pool_of  # noqa: E402
from mentor.targets import run_context  # noqa: E402
from mentor.tasks import EXPLAIN, Task  # noqa: E402


def with_explanations(ctx, task: Task, examples: list[Example], created: str) -> tuple[Task, list[Example]]:  # noqa: ANN001
    """The explain task and `examples` with each one's explanation from the run's data source as a second output."""
    if task.name != "severity":
        raise SystemExit(f"--explanations: the run's task is {task.name!r}; it applies to a severity run")
    key = lambda e: tuple(e.input.get(f, "") for f in EXPLAIN.input_fields)  # noqa: E731
    explained = {key(e): e.output.get("explanation") for e in pool_of(ctx.config, EXPLAIN, ctx.home, until=created)}
    missing = [e for e in examples if not explained.get(key(e))]
    if missing:
        raise SystemExit(f"--explanations: {len(missing)} of {len(examples)} curriculum examples have no explanation "
                         f"in the run's data source (the first: {missing[0].input.get('review', '')[:80]!r})")
    return EXPLAIN, [dataclasses.replace(e, output={**e.output, "explanation": explained[key(e)]}) for e in examples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="the mentor home holding the run")
    parser.add_argument("--run", required=True, help="run id")
    parser.add_argument("--round", type=int, required=True, help="the round to retrain (1 or later)")
    parser.add_argument("--out", type=Path, help="folder for the retrained adapter (required unless --average)")
    parser.add_argument("--fresh", action="store_true", help="start from the untuned model, not round N-1's adapter")
    parser.add_argument("--start", type=Path, metavar="ADAPTER",
                        help="start from this adapter (say, round N-1 retrained by an earlier call), not round N-1's")
    parser.add_argument("--replay", type=float, help="share of the earlier rounds' examples trained again "
                                                     "(default: the run's loop.replay)")
    parser.add_argument("--explanations", action="store_true",
                        help="train with the data source's explanations as a second target (the explain task's format)")
    parser.add_argument("--average", type=float, metavar="ALPHA",
                        help="no training: score ALPHA * round N-1 + (1 - ALPHA) * round N, merged weights")
    parser.add_argument("overrides", nargs="*", help="student.KEY=VALUE training settings, e.g. student.epochs=2")
    args = parser.parse_args()
    if args.average is None and args.out is None:
        parser.error("--out is required when retraining")
    if args.fresh and args.start:
        parser.error("--fresh and --start name two starting points: give one")
    if args.start and not (args.start / "adapter_config.json").is_file():
        parser.error(f"--start {args.start}: no adapter_config.json there")
    if args.average is not None and (args.overrides or args.fresh or args.start or args.explanations
                                     or args.replay is not None):
        parser.error("--average retrains nothing: it takes no training settings")
    if args.average is not None and not 0 <= args.average <= 1:
        parser.error(f"--average {args.average}: expected a weight between 0 and 1")
    if args.average is not None and args.round < 2:
        parser.error("--average needs two fine-tuned rounds: use --round 2 or later")

    ctx = run_context(args.home, args.run, need_run=True)
    run_id, task = ctx.need_run(), ctx.task
    rounds = ctx.rounds()
    if args.round < 1 or args.round not in rounds or (args.round - 1) not in rounds:
        raise SystemExit(f"run {run_id}: no round {args.round} with a round before it (rounds: {sorted(rounds)})")
    previous = rounds[args.round - 1].get("adapter")
    if previous is None and (args.average is not None or not args.fresh) and args.round > 1:
        raise SystemExit(f"run {run_id}: round {args.round - 1} stored no adapter")
    if args.average is not None and not rounds[args.round].get("adapter"):
        raise SystemExit(f"run {run_id}: round {args.round} stored no adapter to average")
    # The round as the run stored it (read before any training: the comparison needs its probabilities).
    stored = stored_labels(ctx, args.round)
    created = ctx.store.run(run_id)["created"]
    holdout, calibrate_on = holdout_and_calibration(ctx)
    print(f"CPU: {cpu_kind()}")
    student_config = use_training_settings(ctx, args.overrides)
    student = ctx.local_student()
    started = time.perf_counter()
    if args.average is not None:
        student.use_adapter(Path(previous))
        first = {k: v.detach().clone() for k, v in student.inference_model().state_dict().items()}
        student.use_adapter(Path(rounds[args.round]["adapter"]))
        merged = student.inference_model()
        a = args.average
        merged.load_state_dict({k: a * first[k] + (1 - a) * v if v.is_floating_point() else v
                                for k, v in merged.state_dict().items()})
        student._prefix = None  # the cached prompt prefix belongs to the weights before averaging
        what = f"weight average {a} x round {args.round - 1} + {1 - a} x round {args.round}"
    else:
        new = ctx.store.curriculum(run_id, args.round)
        earlier = [e for e in ctx.store.curriculum(run_id) if e.meta["round"] < args.round]
        replay = ctx.config.loop.replay if args.replay is None else args.replay
        train = training_set(new, earlier, replay, ctx.config.seed, args.round)
        if args.explanations:
            task, train = with_explanations(ctx, task, train, created)
        start = args.start or (None if args.fresh else previous)
        if start is not None:
            student.use_adapter(Path(start))
        report = student.finetune(task, train, args.out)
        what = (f"round {args.round} retrained on {len(train)} examples ({len(new)} new, replay {replay}) from "
                f"{args.start or ('the untuned model' if args.fresh or previous is None else f'round {args.round - 1}')}: "
                f"lr {student_config.learning_rate}, {student_config.epochs} epochs"
                + (", the explanations as a second target" if args.explanations else ""))
        print(f"{what}: fine-tuning {report.seconds:.0f} s, {report.steps} steps, last loss {report.final_loss:.3f}")
    calibrate_and_compare(ctx, student, task, args.round, stored, what, holdout, calibrate_on, started)


def holdout_and_calibration(ctx) -> tuple[list[Example], list[Example]]:  # noqa: ANN001
    """The run's holdout and calibration set, rebuilt exactly as the run split them."""
    run_id, task = ctx.need_run(), ctx.task
    created = ctx.store.run(run_id)["created"]
    calibrate_on = calibration_set(ctx.config, task, ctx.home, until=created)
    if not calibrate_on:
        raise SystemExit(f"run {run_id} set no calibration set aside (loop.calibration = 0): nothing to fit offsets on")
    return holdout_of(ctx.config, task, ctx.home, until=created), calibrate_on


def use_training_settings(ctx, overrides: list[str]) -> StudentConfig:  # noqa: ANN001
    """The run's student settings with `overrides` (student.KEY=VALUE only) on top, set for `ctx.local_student`."""
    if bad := [pair for pair in overrides if not pair.startswith("student.")]:
        raise SystemExit(f"{', '.join(bad)}: only training settings (student.KEY=VALUE) change a retrained round")
    try:
        student_config = with_overrides(ctx.config, overrides).student
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    ctx.student_config = dataclasses.replace(student_config, model=ctx.student_config.model)
    return student_config


def stored_labels(ctx, round_no: int) -> list[str]:  # noqa: ANN001
    """A round's holdout labels as the run stored them (its own scores plus the offsets it fitted)."""
    _, _, labels, scores, _, fitted = stored_raw_scores(ctx, round_no)
    return [labels[i] for i in (scores + np.array([fitted.get(label, 0.0) for label in labels])).argmax(1)]


def calibrate_and_compare(ctx, student, task: Task, round_no: int, stored: list[str], what: str,  # noqa: ANN001
                          holdout: list[Example], calibrate_on: list[Example], started: float) -> None:
    """Fit `student`'s decision offsets on the calibration set as the loop does, score the holdout, and print it
    against round `round_no` as stored (its labels, `stored`) and TF-IDF + LR on the curriculum up to that round,
    paired by finding."""
    labels = list(task.labels)
    student.offsets = None
    t = time.perf_counter()
    answers = student.answer(task, [e.input for e in calibrate_on], explain=False)
    fit = calibration.fit_offsets(labels, [a.probs for a in answers], [e.output[task.label_field] for e in calibrate_on])
    print(f"calibration: {len(calibrate_on)} items scored in {time.perf_counter() - t:.0f} s, offsets "
          + ", ".join(f"{k} {v:+.2f}" for k, v in fit.offsets.items()))
    student.offsets = fit.offsets
    t = time.perf_counter()
    predicted = [a.parsed.get(task.label_field) for a in student.answer(task, [e.input for e in holdout], explain=False)]
    print(f"holdout: {len(holdout)} items scored in {time.perf_counter() - t:.0f} s; {time.perf_counter() - started:.0f} s in all")

    truth = [e.output[task.label_field] for e in holdout]
    _, tfidf = curriculum_tfidf_labels(ctx, ctx.need_run(), round_no, holdout)

    def f1(pred: list) -> float:
        return f1_score(truth, pred, labels=labels, average="macro")

    print(f"\n{what}\nholdout macro-F1 {f1(predicted):.3f} (per label: "
          + ", ".join(f"{label} {v:.2f}" for label, v in zip(labels, f1_score(truth, predicted, labels=labels, average=None)))
          + f"); round {round_no} as stored {f1(stored):.3f}; TF-IDF on the curriculum {f1(tfidf):.3f}")
    findings = calibration.twin_groups(task, holdout)  # resampled whole, as mentor eval does
    for name, reference in ((f"round {round_no} as stored", stored), ("TF-IDF", tfidf)):
        pb = paired_bootstrap(labels, truth, reference, predicted, groups=findings)
        print(f"  minus {name}: {pb['macro_f1_diff']:+.3f} [{pb['ci'][0]:+.3f}, {pb['ci'][1]:+.3f}], "
              f"ahead in {pb['share_higher']:.0%} of resamples (of the {pb['groups']} findings)")


if __name__ == "__main__":
    main()
