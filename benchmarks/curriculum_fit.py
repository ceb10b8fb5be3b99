"""Where does a finished round's student lose to TF-IDF: on what it was taught, or on what is new?

Two views of one stored round (its adapter and offsets, its run's curriculum and holdout):
1. the student scored on the curriculum examples it was trained on, per round they came from (how much of its
   own curriculum it still gets right; logistic regression on TF-IDF fits its training examples almost exactly);
2. the holdout split by how near each item's review text is to the nearest curriculum example (cosine
   similarity of TF-IDF vectors), with the accuracy there of the student's stored answers, of TF-IDF + logistic
   regression trained on the same curriculum, and of simply copying the nearest example's label.

    python benchmarks/curriculum_fit.py --home runs/ --run 1 --round 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_weighting import curriculum_tfidf_labels, stored_raw_scores  # noqa: E402
from throughput import cpu_kind  # noqa: E402

from mentor.runner import holdout_of  # noqa: E402
from mentor.targets import run_context  # noqa: E402

BANDS = ((0.0, 0.5), (0.5, 0.8), (0.8, 1.0))  # similarity to the nearest curriculum example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="the mentor home holding the run")
    parser.add_argument("--run", required=True, help="run id")
    parser.add_argument("--round", type=int, required=True, help="a fine-tuned round with a stored adapter")
    parser.add_argument("--field", default="review", help="the input field whose text decides nearness (default: review)")
    args = parser.parse_args()

    ctx = run_context(args.home, args.run, need_run=True)
    run_id, task = ctx.need_run(), ctx.task
    _, round_no, labels, scores, gold, offsets = stored_raw_scores(ctx, args.round)
    adapter = ctx.rounds()[round_no].get("adapter")
    if not adapter:
        raise SystemExit(f"run {run_id}: round {round_no} stored no adapter")
    curriculum = [e for e in ctx.store.curriculum(run_id) if e.meta.get("round", 0) <= round_no]
    if any(args.field not in e.input for e in curriculum):
        raise SystemExit(f"--field {args.field}: not an input field of this task ({', '.join(task.input_fields)})")
    print(f"CPU: {cpu_kind()}")

    student = ctx.local_student()
    student.use_adapter(Path(adapter))  # with the offsets the run fitted
    print(f"\n1. round {round_no}'s student on the curriculum it was trained on (with its offsets)")
    for r in sorted({e.meta.get("round", 0) for e in curriculum}):
        part = [e for e in curriculum if e.meta.get("round", 0) == r]
        predicted = [a.parsed.get(task.label_field) for a in student.answer(task, [e.input for e in part], explain=False)]
        truth = [e.output[task.label_field] for e in part]
        per_label = f1_score(truth, predicted, labels=labels, average=None)
        print(f"  round {r}'s {len(part)} examples: {np.mean([p == t for p, t in zip(predicted, truth)]):.0%} right; F1 "
              + ", ".join(f"{label} {v:.2f}" for label, v in zip(labels, per_label)))

    created = ctx.store.run(run_id)["created"]
    holdout = holdout_of(ctx.config, task, ctx.home, until=created)
    truth = np.array([labels[i] for i in gold])
    student_labels = np.array([labels[i] for i in (scores + np.array([offsets.get(k, 0.0) for k in labels])).argmax(1)])
    _, tfidf = curriculum_tfidf_labels(ctx, run_id, round_no, holdout)
    tfidf_labels = np.array(tfidf)
    texts = [e.input[args.field] for e in curriculum]
    vectors = TfidfVectorizer().fit(texts + [e.input[args.field] for e in holdout])
    similarity = (vectors.transform([e.input[args.field] for e in holdout]) @ vectors.transform(texts).T).toarray()
    nearest = similarity.max(1)
    copied = np.array([curriculum[j].output[task.label_field] for j in similarity.argmax(1)])
    print(f"\n2. holdout accuracy by similarity of its {args.field} to the nearest of the {len(curriculum)} curriculum examples")
    for low, high in BANDS:
        band = (nearest >= low) & ((nearest < high) if high < 1 else (nearest <= high))
        if band.any():
            print(f"  {low:.1f}-{high:.1f}: {band.sum():4d} items; student {np.mean(student_labels[band] == truth[band]):.0%}, "
                  f"TF-IDF {np.mean(tfidf_labels[band] == truth[band]):.0%}, nearest example's label "
                  f"{np.mean(copied[band] == truth[band]):.0%}")


if __name__ == "__main__":
    main()
