"""Would a richer decision rule fitted on the calibration set beat the per-label offsets mentor ships?

Decision calibration (mentor.calibration) fits one offset per label on the calibration set. This loads a finished
run's adapter for one round, scores the run's own calibration set (rebuilt exactly as the run split it) and
reads the student's last hidden state at the end of every calibration and holdout prompt, then fits on the
calibration set, with the same class weighting as the offsets:

- the offsets, as the loop fits them (a check: this reproduces the run's stored holdout score);
- matrix scaling: a logistic regression on the four label log-scores (every label's score may move every other);
- a linear probe: a logistic regression on the standardised hidden state (a classification head), per C;
- with --blank FIELD: the offsets on the student's reading of each item with that input field left empty (say,
  the review without its code), and on the average of the two readings' label log-scores (test-time views).

Each is scored on the run's holdout against TF-IDF + logistic regression trained on the run's curriculum up to
that round (macro-F1, and the paired difference with a bootstrap interval, as `mentor eval` reports). The
holdout's label scores are the run's stored ones (offsets taken out), so only the calibration set is scored again
(and, with --blank, both sets' readings without the field).

    python benchmarks/decision_rules.py --home runs/ --run 1 --round 2
    python benchmarks/decision_rules.py --home runs/ --run 1 --round 2 --blank code
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_weighting import curriculum_tfidf_labels, stored_raw_scores  # noqa: E402
from throughput import cpu_kind  # noqa: E402

from mentor import calibration  # noqa: E402
from mentor.metrics import paired_bootstrap  # noqa: E402
from mentor.runner import calibration_set, holdout_of  # noqa: E402
from mentor.students.hf_scoring import left_pad  # noqa: E402
from mentor.targets import run_context  # noqa: E402


def last_hidden(student, task, items: list, batch: int = 16) -> np.ndarray:  # noqa: ANN001
    """The final layer's (normed) hidden state at each prompt's last token, prompts as the student scores them."""
    model = student.inference_model()
    prompts = student.scoring_prompts(task, [e.input for e in items])
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = np.zeros((len(items), model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        ids, mask = left_pad([prompts[i] for i in rows], student.pad_id, student.device)
        with torch.inference_mode():
            hidden = model.model(input_ids=ids, attention_mask=mask,
                                 position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).last_hidden_state
        out[rows] = hidden[:, -1].float().cpu().numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=None, help="the mentor home holding the run [default: MENTOR_HOME or ./.mentor]")
    parser.add_argument("--run", default="latest", help="run id [default: latest]")
    parser.add_argument("--round", type=int, default=None, help="round whose adapter to use [default: the best]")
    parser.add_argument("--probe-c", default="0.001,0.01,0.1", help="inverse regularisation strengths of the probe")
    parser.add_argument("--blank", metavar="FIELD", help="also score every item with this input field left empty, "
                                                          "alone and averaged with the full reading")
    args = parser.parse_args()

    ctx = run_context(args.home, args.run, need_run=True)
    run_id, round_no, labels, holdout_scores, truth, _ = stored_raw_scores(ctx, args.round)
    task, created = ctx.task, ctx.store.run(run_id)["created"]
    if args.blank is not None and args.blank not in task.input_fields:
        raise SystemExit(f"--blank {args.blank}: task {task.name!r} has no such input field "
                         f"(its input fields: {', '.join(task.input_fields)})")
    calib = calibration_set(ctx.config, task, ctx.home, until=created)
    if not calib:
        raise SystemExit(f"run {run_id} set no calibration set aside (loop.calibration = 0): nothing to fit on")
    holdout = holdout_of(ctx.config, task, ctx.home, until=created)
    adapter = Path(ctx.rounds()[round_no]["adapter"] or "")
    if not (adapter / "adapter_config.json").is_file():
        raise SystemExit(f"run {run_id} round {round_no}: its adapter folder ({adapter}) is gone")

    started = time.perf_counter()
    student = ctx.local_student()
    student.use_adapter(adapter)
    student.offsets = None  # the student's own scores: every rule below is fitted on them

    def label_scores(items: list, blank: str | None = None) -> np.ndarray:
        inputs = [{**e.input, blank: ""} if blank else e.input for e in items]
        return np.log(np.array([[max(a.probs[label], 1e-12) for label in labels]
                                for a in student.answer(task, inputs, explain=False)]))

    calib_scores = label_scores(calib)
    if args.blank:
        blank_scores = label_scores(calib, args.blank), label_scores(holdout, args.blank)
    calib_hidden, holdout_hidden = last_hidden(student, task, calib), last_hidden(student, task, holdout)
    seconds = time.perf_counter() - started
    calib_truth = np.array([labels.index(e.output[task.label_field]) for e in calib])
    weight = calibration.class_weights(calib_truth, len(labels))  # the offsets' own class weighting

    trained_on, tfidf_labels = curriculum_tfidf_labels(ctx, run_id, round_no, holdout)
    findings = calibration.twin_groups(task, holdout)  # resampled whole, as mentor eval does
    gold = [labels[t] for t in truth]

    kind = cpu_kind()
    print(f"run {run_id} round {round_no}: {len(calib)} calibration items, {len(holdout)} holdout items; "
          f"scored in {seconds:.0f} s on {kind['cores']} cores ({' '.join(kind['flags'])}), dtype {student.model.dtype}")
    print(f"  {'TF-IDF on the same ' + str(trained_on) + ' examples':<36} macro-F1 "
          f"{f1_score(gold, tfidf_labels, labels=labels, average='macro'):.3f}")

    def show(name: str, predicted: np.ndarray) -> None:
        chosen = [labels[i] for i in predicted]
        paired = paired_bootstrap(labels, gold, tfidf_labels, chosen, groups=findings)
        per_class = f1_score(gold, chosen, labels=labels, average=None, zero_division=0)
        print(f"  {name:<36} macro-F1 {f1_score(gold, chosen, labels=labels, average='macro'):.3f}  minus TF-IDF "
              f"{paired['macro_f1_diff']:+.3f} [{paired['ci'][0]:+.3f}, {paired['ci'][1]:+.3f}] "
              f"({paired['share_higher']:.0%} ahead)  per label "
              + " ".join(f"{label} {f:.2f}" for label, f in zip(labels, per_class)))

    def offsets_decide(calib_rows: np.ndarray, holdout_rows: np.ndarray) -> np.ndarray:
        probs = np.exp(calib_rows - calib_rows.max(1, keepdims=True))
        fit = calibration.fit_offsets(labels, [dict(zip(labels, row / row.sum())) for row in probs],
                                      [labels[t] for t in calib_truth])
        return (holdout_rows + np.array([fit.offsets[label] for label in labels])).argmax(1)

    show("no offsets", holdout_scores.argmax(1))
    show("offsets (what ships)", offsets_decide(calib_scores, holdout_scores))
    if args.blank:
        show(f"offsets, {args.blank} left empty", offsets_decide(*blank_scores))
        show("offsets, both readings averaged", offsets_decide((calib_scores + blank_scores[0]) / 2,
                                                                (holdout_scores + blank_scores[1]) / 2))
    matrix = LogisticRegression(max_iter=5000).fit(calib_scores, calib_truth, sample_weight=weight)
    show("matrix scaling", matrix.predict(holdout_scores))
    scaler = StandardScaler().fit(calib_hidden)
    calib_x, holdout_x = scaler.transform(calib_hidden), scaler.transform(holdout_hidden)
    for c in (float(x) for x in args.probe_c.split(",")):
        probe = LogisticRegression(C=c, max_iter=5000).fit(calib_x, calib_truth, sample_weight=weight)
        show(f"hidden-state probe, C={c:g}", probe.predict(holdout_x))


if __name__ == "__main__":
    main()
