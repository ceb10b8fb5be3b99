"""Several systems side by side: scored on the same labelled data (`mentor eval --models ...`) and their
explanations judged pairwise on a run's holdout (`mentor judge`, see mentor.judge).

Each system gets the full metrics report (mentor.metrics: accuracy, macro-F1 and their bootstrap
intervals, per class, confusion, quadratic-weighted kappa, critical recall, within-one accuracy,
unparseable) plus what it costs to run: latency per item, throughput (items per second of wall-clock
time for the whole batch) and cost per 1,000 items (0 for
local models; a hosted student reports what its calls cost). A classical baseline (mentor.baselines) also
reports what it was trained on ("training": items, the cross-validated C, near-twins left out); the `:all`
baselines are fitted here, once the evaluated items are known and before the clock starts, so their fit can
leave those items' near-twins out.

Latency is what one finding costs when it comes alone. Batches share their work, so the per-item time of a
batched pass (its time divided by its size, "latency_s.measured": "batch share") says nothing about one
request; with `latency_items` > 0 that many items are also answered one request at a time after the batched
pass, with the model loaded and warm, and "latency_s" holds those requests' median and p95
("measured": "one item per request").
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, ContextManager

import numpy as np

from mentor.calibration import twin_groups
from mentor.data import DataError, bundled_path, dedupe, load_examples
from mentor.evaluate import report, stratified_sample
from mentor.judge import FIXED_SYSTEMS, Judge, JudgeError, compare_explanations, cross_check, fixed_texts, second_judge
from mentor.metrics import paired_bootstrap
from mentor.records import Answer, Example
from mentor.targets import RunContext, Target, resolve_systems
from mentor.tasks import EXPLAIN, Task

Progress = Callable[[str, int], ContextManager[Callable[[int], None]]]


def measure(target: Target, examples: list[Example], progress: Progress | None = None,
            latency_items: int = 0) -> dict[str, Any]:
    """One system's metrics report with its latency, throughput and cost figures."""
    return _measure(target, examples, progress, latency_items)[0]


def _measure(target: Target, examples: list[Example], progress: Progress | None,
             latency_items: int = 0) -> tuple[dict[str, Any], list[str | None]]:
    task = target.task
    target.prepare()
    fit_for = getattr(target.student, "fit_for", None)  # a baseline that must know what it is scored on first
    if fit_for is not None:
        target.label = fit_for(task, [e.input for e in examples])  # the label now says what the fit left out
    spent_before = _spent(target.student)
    started = time.perf_counter()
    answers = _answers(target, task, examples, "scoring", progress)
    wall = time.perf_counter() - started
    correct = [task.is_correct(a.parsed, e.output) for a, e in zip(answers, examples)]
    seconds = np.array([a.seconds for a in answers], dtype=float)
    measured = "batch share"
    if latency_items > 0 and examples:
        seconds = np.array(_one_at_a_time(target, task, examples[:latency_items], progress), dtype=float)
        measured = "one item per request"
    n = len(examples)
    cost = _spent(target.student) - spent_before
    predicted = [(a.parsed or {}).get(task.label_field) if task.label_field else None for a in answers]
    training = getattr(target.student, "training", None)
    return {
        "system": target.label,
        "kind": target.kind,
        **({"training": training} if training else {}),
        **report(task, examples, answers, correct),
        "latency_s": {"median": float(np.median(seconds)) if n else None,
                      "p95": float(np.percentile(seconds, 95)) if n else None,
                      "measured": measured, "items": len(seconds)},
        "throughput_per_s": n / wall if wall > 0 else None,
        "cost_per_1k": 1000 * cost / n if n else 0.0,
    }, predicted


def compare(targets: list[Target], examples: list[Example], data: str, progress: Progress | None = None,
            latency_items: int = 0) -> dict[str, Any]:
    """Every target measured on the same examples: {"data", "task", "n", "systems": [per-system report]}.

    With a label set, every system after the first also gets "vs_first": its macro-F1 minus the first
    system's, with a paired bootstrap interval and the share of resamples in which it scores higher; the
    resamples draw whole findings (items sharing an input field) when some items share one.
    """
    measured = [_measure(t, examples, progress, latency_items) for t in targets]
    task = targets[0].task if targets else None
    if task is not None and task.label_field and examples:
        truths = [e.output[task.label_field] for e in examples]
        findings = twin_groups(task, examples)  # items of one finding are resampled together
        first_report, first_predicted = measured[0]
        for report_, predicted in measured[1:]:
            paired = paired_bootstrap(list(task.labels), truths, first_predicted, predicted, groups=findings)
            report_["vs_first"] = {"system": first_report["system"], **paired}
    return {"data": data, "task": task.name if task else None, "n": len(examples),
            "systems": [report_ for report_, _ in measured]}


def _answers(target: Target, task: Task, examples: list[Example], doing: str, progress: Progress | None,
             explain: bool = False) -> list[Answer]:
    inputs = [e.input for e in examples]
    if progress is None:
        return target.student.answer(task, inputs, explain=explain)
    with progress(f"{target.label}: {doing}", len(inputs)) as advance:
        return target.student.answer(task, inputs, advance, explain=explain)


def _one_at_a_time(target: Target, task: Task, examples: list[Example], progress: Progress | None) -> list[float]:
    """Wall-clock seconds of answering each item as a request of its own (the model already loaded)."""
    times = []
    quiet = contextlib.nullcontext(lambda _n: None)
    with progress(f"{target.label}: one-item requests", len(examples)) if progress else quiet as advance:
        for example in examples:
            started = time.perf_counter()
            target.student.answer(task, [example.input], explain=False)
            times.append(time.perf_counter() - started)
            advance(1)
    return times


def _spent(student: Any) -> float:
    """Money a student has spent so far: hosted students count it in `usage.cost`; local ones spend none."""
    usage = getattr(student, "usage", None)
    return float(getattr(usage, "cost", 0.0) or 0.0) if usage is not None else 0.0


def explain_task(task: Task) -> Task:
    """The task whose answers carry an explanation: the run's own, or `explain` for a severity run."""
    if task.text_fields:
        return task
    if task.name == "severity":
        return EXPLAIN
    raise JudgeError(f"task {task.name!r} has no free-text output to judge; judging needs a task with one (e.g. explain)")


def judge_run(ctx: RunContext, specs: tuple[str, str], judge: Judge, limit: int = 0,
              progress: Progress | None = None, check: Judge | None = None) -> dict[str, Any]:
    """Explanations of two systems on the run's holdout, compared by `judge` in both orders, and by a second,
    independent judge (`check`, by default mentor.judge.second_judge) to measure how far the two agree.

    A spec is a system of mentor.targets, or `definition` / `reference` (mentor.judge.FIXED_SYSTEMS: texts
    that need no model). The result is compare_explanations' with, per item, both texts, the item's input
    fields (clipped) and the check's outcome; plus "check", "agreement", "notes" (systems a judge favours
    by construction), "data", "task" and the hosted judge's cost and unreadable replies.
    """
    config, run_task = ctx.config, ctx.task
    ctx.task = task = explain_task(run_task)
    path = config.data.holdout or str(bundled_path(task, "holdout"))
    try:
        holdout = load_examples(path, task, source="holdout")  # with reference explanations
    except DataError:
        # No reference explanations: a hosted judge does without; the offline judge says what it needs.
        holdout = load_examples(path, run_task, source="holdout")
    items = stratified_sample(task, dedupe(holdout, task), config.data.holdout_limit, config.seed)
    items = stratified_sample(task, items, limit, config.seed)
    field = task.text_fields[0]
    if getattr(judge, "needs_reference", False) and not all(e.output.get(field) for e in items):
        raise JudgeError(f"{judge.name} compares explanations with the reference {field!r}, and {path} has none: "
                         "use a holdout with reference explanations or a hosted judge (--judge openai:MODEL)")
    labels, texts = _judged_texts(ctx, task, specs, items, path, progress)
    result = compare_explanations(judge, task, items, texts[0], texts[1], labels, config.seed)
    check = check or second_judge(judge)
    result["check"], result["agreement"] = cross_check(check, result, task, items, texts[0], texts[1], config.seed)
    checked = result["check"].pop("outcomes", None) or [None] * len(items)
    check_reasons = result["check"].pop("reasons", None) or [None] * len(items)
    for row, item, a, b, outcome, why in zip(result["items"], items, texts[0], texts[1], checked, check_reasons):
        row.update(a_text=a, b_text=b, check_outcome=outcome, check_reason=why,
                   input={name: _clip(str(item.input.get(name, ""))) for name in task.input_fields})
    favoured = {j: [(spec, why) for spec, why in getattr(j, "favours", {}).items() if spec in specs] for j in (judge, check)}
    notes = [f"{spec}: {j.name} favours it by construction ({why}); "
             + ("read the other judge's figures for this pair" if not favoured[other] else
                "the other judge favours the other system, so neither judge's figures are a fair comparison here")
             for j, other in ((judge, check), (check, judge)) for spec, why in favoured[j]]
    return {**result, "notes": notes, "data": path, "task": task.name, "judge_cost": getattr(judge, "cost", 0.0),
            "judge_unparseable": getattr(judge, "unparseable", 0)}


def _judged_texts(ctx: RunContext, task: Task, specs: tuple[str, str], items: list[Example], path: str,
                  progress: Progress | None) -> tuple[tuple[str, str], list[list[str]]]:
    """Each system's label and explanations of `items`: fixed systems from the items themselves, the others
    resolved together by mentor.targets (they share one loaded model) and asked to explain."""
    if len(set(specs)) < len(specs):
        raise JudgeError(f"--models names the same system twice: {', '.join(specs)}")
    models = [spec for spec in specs if spec not in FIXED_SYSTEMS]
    targets = dict(zip(models, resolve_systems(ctx, models))) if models else {}
    for target in targets.values():
        if not getattr(target.student, "can_explain", True):
            raise JudgeError(f"{target.label}: a classical baseline or combined system predicts labels only and writes no explanations: "
                             "judge base, best, round:N, openai:MODEL, definition or reference")
    field = task.text_fields[0]
    labels, texts = [], []
    for spec in specs:
        if spec in FIXED_SYSTEMS:
            labels.append(FIXED_SYSTEMS[spec])
            texts.append(fixed_texts(spec, task, items, path))
            continue
        target = targets[spec]
        target.prepare()
        answers = _answers(target, task, items, "explaining", progress, explain=True)
        # An answer that could not be parsed is judged on its raw text: that is what a reader would see.
        labels.append(target.label)
        texts.append([(a.parsed or {}).get(field) or a.raw.strip() for a in answers])
    return (labels[0], labels[1]), texts


def _clip(text: str, limit: int = 300) -> str:
    """A short excerpt of an input field, kept with each judged item so the report can show what was judged."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
