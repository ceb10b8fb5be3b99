"""Would a finished run's student have scored higher with every weight trained instead of a LoRA adapter?

Trains the untuned student on the run's stored curricula, round 1 then round 2 and so on (each round from the
one before, with the run's own replay), updating all of its weights, then after each round fits decision
offsets on the run's calibration set, scores the run's holdout and compares it, paired by finding, with the
round as the run stored it (LoRA) and with TF-IDF + logistic regression on the curriculum up to that round
(`retrain_round.calibrate_and_compare`, the same report as a retrained round).

mentor's student trains and stores LoRA adapters only (rollback, export and serving all read adapter folders),
so this benchmark swaps the adapter wrapper for the bare model inside the student and saves nothing: the rounds
run in one process. Full weights take about 1.2x a rank-64 round's time on a CPU (AdamW keeps two fp32 copies
of all 135M weights: about 1 GiB more memory).

    python benchmarks/full_finetune.py --home runs/ --run 1 student.learning_rate=5e-5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrain_round import (  # noqa: E402
    calibrate_and_compare,
    holdout_and_calibration,
    stored_labels,
    use_training_settings,
)
from throughput import cpu_kind  # noqa: E402

import mentor.students.hf as hf_student  # noqa: E402
from mentor.curriculum import training_set  # noqa: E402
from mentor.targets import run_context  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="the mentor home holding the run")
    parser.add_argument("--run", required=True, help="run id")
    parser.add_argument("--rounds", type=int, help="train rounds 1..N (default: every fine-tuned round of the run)")
    parser.add_argument("overrides", nargs="*", help="student.KEY=VALUE training settings, e.g. student.learning_rate=5e-5")
    args = parser.parse_args()

    ctx = run_context(args.home, args.run, need_run=True)
    run_id, task = ctx.need_run(), ctx.task
    finetuned = sorted(r for r in ctx.rounds() if r > 0)
    rounds = finetuned if args.rounds is None else list(range(1, args.rounds + 1))
    if not rounds or not set(rounds) <= set(finetuned):
        raise SystemExit(f"run {run_id}: fine-tuned rounds {finetuned}; --rounds {args.rounds} asks for {rounds}")
    # Read before any training: the comparison needs each stored round's probabilities.
    stored = {round_no: stored_labels(ctx, round_no) for round_no in rounds}
    holdout, calibrate_on = holdout_and_calibration(ctx)
    student_config = use_training_settings(ctx, args.overrides)
    print(f"CPU: {cpu_kind()}")

    # Every weight trains: no adapter is wrapped around the model, and nothing is written (see the docstring).
    hf_student.get_peft_model = lambda model, _config: model
    hf_student.save_atomically = lambda _model, _out_dir: None
    student = ctx.local_student()
    for round_no in rounds:
        started = time.perf_counter()
        new = ctx.store.curriculum(run_id, round_no)
        earlier = [e for e in ctx.store.curriculum(run_id) if e.meta["round"] < round_no]
        train = training_set(new, earlier, ctx.config.loop.replay, ctx.config.seed, round_no)
        report = student.finetune(task, train, Path("unsaved"))
        what = (f"round {round_no}, every weight trained on {len(train)} examples ({len(new)} new, replay "
                f"{ctx.config.loop.replay}) from {'the untuned model' if round_no == 1 else f'round {round_no - 1} (the same)'}: "
                f"lr {student_config.learning_rate}, {student_config.epochs} epochs")
        print(f"{what}: fine-tuning {report.seconds:.0f} s, {report.steps} steps, last loss {report.final_loss:.3f}")
        calibrate_and_compare(ctx, student, task, round_no, stored[round_no], what, holdout, calibrate_on, started)


if __name__ == "__main__":
    main()
