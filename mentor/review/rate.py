"""Rating findings with the student: one batched `student.answer` call for all of them.

The finding's code and comment go into the task's input fields as data; the label is chosen by the
student (scored, so always one of the four levels for the Hugging Face student) and nothing in the
finding can change the shape of what comes out. A model trained on the `explain` task writes the
explanation, only for the findings the threshold keeps (rating is one scoring pass; writing costs a
generated token at a time), and the text is cleaned (mentor.review.sanitize) before any format sees it;
a severity-only model, or an explanation with nothing usable left, gets the level's meaning, marked as such.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

from mentor.explanations import text_of
from mentor.records import Answer
from mentor.review.collect import Sources, collect
from mentor.review.diff import ReviewError
from mentor.review.findings import MEANING, RANK, Collected, Finding, RatedFinding, ReviewReport, at_least
from mentor.review.sanitize import clean_explanation
from mentor.students import Student
from mentor.tasks import Task

REVIEW_FIELDS = ("code", "review")


def review(sources: Sources, student: Student, task: Task, model: str, min_severity: str | None,
           progress: Callable[[int], None] | None = None) -> ReviewReport:
    """The whole review: gather the findings, rate them in one batch, filter by the threshold."""
    check_task(task)
    return rate_collected(collect(sources), student, task, model, min_severity, progress)


def rate_collected(found: Collected, student: Student, task: Task, model: str, min_severity: str | None,
                   progress: Callable[[int], None] | None = None, model_load_s: float | None = None) -> ReviewReport:
    """Rate findings already gathered (the CLI gathers them before loading the model, so a bad input file
    fails fast) and report how long the rating took, with the model's load time when the caller measured it."""
    started = time.perf_counter()
    written: list[float] = []
    rated = rate(student, task, found.findings, progress, min_severity, written)
    report = build_report(rated, model, min_severity, found.warnings)
    report.timing = timing(len(rated), time.perf_counter() - started, model_load_s, written)
    return report


def timing(findings: int, seconds: float, model_load_s: float | None = None,
           written: list[float] | None = None) -> dict[str, float | int | None]:
    """The timing block of a report (JSON `timing`, the stderr line after a table). `written`: [explanations, seconds]
    when the model wrote explanations (their time is part of `rating_s`)."""
    values = {"model_load_s": None if model_load_s is None else round(model_load_s, 3), "rating_s": round(seconds, 3),
              "findings_rated": findings, "per_finding_s": round(seconds / findings, 4) if findings else None}
    if written:
        count, spent = int(written[0]), written[1]
        values.update(explanations_written=count, explaining_s=round(spent, 3),
                      per_explanation_s=round(spent / count, 4) if count else None)
    return values


def describe_timing(values: dict[str, float | int | None]) -> str:
    """One line for humans: 'model loaded in 2.1 s; 12 finding(s) rated in 0.84 s (0.070 s each)'."""
    parts = []
    if values.get("model_load_s") is not None:
        parts.append(f"model loaded in {values['model_load_s']:.1f} s")
    if "rating_s" in values:
        each = f" ({values['per_finding_s']:.3f} s each)" if values.get("per_finding_s") is not None else ""
        parts.append(f"{values['findings_rated']} finding(s) rated in {values['rating_s']:.2f} s{each}")
    if values.get("explanations_written"):
        parts.append(f"of which {values['explanations_written']} explanation(s) written in {values['explaining_s']:.2f} s "
                     f"({values['per_explanation_s']:.2f} s each)")
    return "; ".join(parts)


def check_task(task: Task) -> None:
    if tuple(task.input_fields) != REVIEW_FIELDS or task.label_field is None or not set(task.labels) <= set(RANK):
        raise ReviewError(f"task {task.name!r} cannot rate review findings: it needs the inputs code and review "
                          f"and a severity label (use the built-in 'severity' or 'explain' task)")


def rate(student: Student, task: Task, findings: list[Finding], progress: Callable[[int], None] | None = None,
         min_severity: str | None = None, written: list[float] | None = None) -> list[RatedFinding]:
    """Rate every finding; with a task that explains, write explanations for those at or above `min_severity`
    only (nobody reads the others). `written`, when given, receives [explanations written, their seconds]."""
    check_task(task)
    if not findings:
        return []
    inputs = [{"code": f.code, "review": f.text} for f in findings]
    answers = student.answer(task, inputs, progress, explain=False)
    if task.text_fields:
        shown = [i for i, a in enumerate(answers) if at_least(_severity(task, a), min_severity)]
        started = time.perf_counter()
        full = student.answer(task, [inputs[i] for i in shown], explain=True) if shown else []
        for i, answer in zip(shown, full):  # the label stays the scoring pass's; the text is added to it
            answers[i] = replace(answers[i], raw=answer.raw,
                                 parsed={**(answers[i].parsed or {}), task.text_fields[0]: text_of(task, answer)})
        if written is not None:
            written[:] = [len(shown), time.perf_counter() - started]
    return [rated_from(task, f, a) for f, a in zip(findings, answers)]


def _severity(task: Task, answer: Answer) -> str | None:
    severity = (answer.parsed or {}).get(task.label_field or "")
    if severity is None and answer.probs:
        severity = max(answer.probs, key=answer.probs.get)
    return severity


def rated_from(task: Task, finding: Finding, answer: Answer) -> RatedFinding:
    parsed = answer.parsed or {}
    severity = _severity(task, answer)  # an unparseable free-text tail still has a scored label
    probs = {k: round(float(v), 4) for k, v in answer.probs.items()} if answer.probs else None
    probability = probs.get(severity) if probs and severity else None
    explanation = clean_explanation(parsed.get("explanation") or "", finding.code, finding.text)
    if explanation:
        source = "student"
    else:
        explanation, source = MEANING[severity or "unrated"], "definition"
    return RatedFinding(finding, severity, probability, probs, explanation, source)


def build_report(rated: list[RatedFinding], model: str, min_severity: str | None,
                 warnings: list[str]) -> ReviewReport:
    """Keep what is at or above the threshold, most severe (then most probable) first."""
    kept = [r for r in rated if at_least(r.severity, min_severity)]
    kept.sort(key=lambda r: (-RANK.get(r.severity or "", 0), -(r.probability or 0.0), r.finding.path, r.finding.line))
    unrated = sum(1 for r in rated if r.severity is None)
    notes = list(warnings)
    if unrated:
        notes.append(f"{unrated} finding(s) could not be rated (the model's answer was not understood); shown as unrated")
    return ReviewReport(kept, len(rated) - len(kept), model, min_severity, notes)


def gate(report: ReviewReport, fail_on: str | None) -> list[RatedFinding]:
    """The kept findings at or above `fail_on` (a CI job fails when there are any)."""
    if fail_on is None:
        return []
    return [r for r in report.findings if r.severity is not None and RANK[r.severity] >= RANK[fail_on]]
