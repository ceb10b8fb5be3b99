"""The data flywheel: developers' verdicts on rated findings, stored, exported, and trained on.

A verdict is "agree" (the rating was right) or the severity the finding should have had, with an
optional comment. It reaches the store through `mentor feedback add` or the server's /v1/feedback, and
comes back out as training data: `mentor run --data feedback` (or `feedback+more.jsonl`) uses it as the
teacher's data source. An item whose rating a developer corrected carries a higher `weight`, which the
reference teacher honours when it samples exams, so the next round is examined on its own mistakes first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mentor.data import DataError, dedupe, load_examples
from mentor.records import Example
from mentor.review.diff import ReviewError
from mentor.review.findings import MAX_TEXT_CHARS, MEANING
from mentor.store import Store
from mentor.tasks import SEVERITY_LABELS, Task

VERDICTS = ("agree", *SEVERITY_LABELS)
CORRECTED_WEIGHT = 3.0  # how much likelier a corrected item is to be drawn into an exam than an agreed one
FEEDBACK = "feedback"  # the --data name of the stored feedback


@dataclass(frozen=True)
class Feedback:
    code: str
    review: str
    verdict: str  # "agree" or the severity the finding should have had
    predicted: str | None = None  # the severity the model gave
    comment: str = ""
    explanation: str = ""  # the model's explanation, kept for the record
    finding_id: str = ""
    path: str = ""
    line: int | None = None
    source: str = "cli"  # "cli", "server", ...
    model: str = ""

    @property
    def severity(self) -> str:
        return self.predicted if self.verdict == "agree" else self.verdict  # type: ignore[return-value]

    @property
    def corrected(self) -> bool:
        return self.verdict != "agree" and self.verdict != self.predicted


def check(feedback: Feedback) -> Feedback:
    """The feedback itself, or ReviewError saying what is wrong with it."""
    problems = []
    for name in ("code", "review"):
        value = getattr(feedback, name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"'{name}' must be a non-empty string")
        elif len(value) > MAX_TEXT_CHARS * 5:
            problems.append(f"'{name}' is longer than {MAX_TEXT_CHARS * 5} characters")
    if feedback.verdict not in VERDICTS:
        problems.append(f"verdict {feedback.verdict!r} must be one of {', '.join(VERDICTS)}")
    if feedback.predicted is not None and feedback.predicted not in SEVERITY_LABELS:
        problems.append(f"predicted {feedback.predicted!r} must be one of {', '.join(SEVERITY_LABELS)}")
    if feedback.verdict == "agree" and feedback.predicted is None:
        problems.append("'agree' needs the severity the model gave ('predicted'); or give the right severity as the verdict")
    if not isinstance(feedback.comment, str) or len(feedback.comment) > MAX_TEXT_CHARS:
        problems.append(f"'comment' must be a string of at most {MAX_TEXT_CHARS} characters")
    if problems:
        raise ReviewError("feedback: " + "; ".join(problems))
    return feedback


def from_json(data: Any, source: str) -> Feedback:
    """Feedback from a JSON object: {code, review, verdict, predicted?, comment?, ...}, or a rated finding
    as `mentor review --format json` and /v1/review write it (its `severity` is the prediction) plus a verdict."""
    if not isinstance(data, dict):
        raise ReviewError("feedback must be a JSON object with code, review and verdict")
    finding = data.get("finding") if isinstance(data.get("finding"), dict) else data
    line = finding.get("line")
    return check(Feedback(
        code=finding.get("code"), review=finding.get("review"), verdict=data.get("verdict"),
        predicted=data.get("predicted") or finding.get("severity"), comment=data.get("comment") or "",
        explanation=str(finding.get("explanation") or ""), finding_id=str(finding.get("id") or ""),
        path=str(finding.get("path") or ""), line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        source=source, model=str(data.get("model") or "")))


def from_review_file(path: Path, finding_id: str, verdict: str, comment: str, source: str = "cli") -> Feedback:
    """Feedback on one finding of a `mentor review --format json` report, found by its id."""
    from mentor.review.findings import read_json_file

    report = read_json_file(path, "review report")
    findings = report.get("findings") if isinstance(report, dict) else None
    if not isinstance(findings, list):
        raise ReviewError(f"{path}: not a `mentor review --format json` report (no 'findings' list)")
    matches = [f for f in findings if isinstance(f, dict) and str(f.get("id", "")).startswith(finding_id)]
    if len(matches) != 1:
        known = ", ".join(str(f.get("id")) for f in findings if isinstance(f, dict))
        raise ReviewError(f"{path}: {'no' if not matches else 'more than one'} finding with id {finding_id!r} (ids: {known})")
    return from_json({"finding": matches[0], "verdict": verdict, "comment": comment,
                      "model": report.get("model", "")}, source)


def add(store: Store, feedback: Feedback) -> int:
    return store.add_feedback(asdict(check(feedback)))


def to_example(row: dict[str, Any], weight: float = CORRECTED_WEIGHT) -> Example:
    """A stored verdict as a training item; a corrected one is weighted up, and its comment explains it."""
    feedback = Feedback(**{k: row[k] for k in Feedback.__dataclass_fields__})
    if feedback.comment.strip():
        explanation = feedback.comment.strip()
    elif not feedback.corrected and feedback.explanation.strip():
        explanation = feedback.explanation.strip()
    else:
        explanation = MEANING[feedback.severity]
    meta = {"weight": weight if feedback.corrected else 1.0,
            "meta": {"feedback_id": row["id"], "created": row["created"], "verdict": feedback.verdict,
                     "predicted": feedback.predicted, "path": feedback.path, "line": feedback.line,
                     "source": feedback.source}}
    return Example({"code": feedback.code, "review": feedback.review},
                   {"issue_type": feedback.severity, "explanation": explanation}, source=FEEDBACK, meta=meta)


def examples(store: Store, task: Task, until: str | None = None) -> list[Example]:
    """Stored feedback as the task's examples, newest verdict first when an item was judged twice."""
    if tuple(task.input_fields) != ("code", "review") or task.label_field != "issue_type":
        raise ReviewError(f"feedback trains the severity and explain tasks, not {task.name!r}")
    items = [to_example(row) for row in store.feedback(until=until)][::-1]
    items = [Example(e.input, {k: e.output[k] for k in task.output_fields}, e.source, e.meta) for e in items]
    return dedupe(items, task)


def export_jsonl(store: Store) -> tuple[str, int]:
    """All feedback as JSONL in the data format (`--data` reads it back, weights included), and the count."""
    items = [to_example(row) for row in store.feedback()]
    return "".join(json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in items), len(items)


def is_pool_spec(spec: str) -> bool:
    return FEEDBACK in spec.split("+")


def load_pool(spec: str, task: Task, store: Store, until: str | None = None) -> list[Example]:
    """The teacher's data source for `--data feedback` or `--data feedback+file.jsonl[+more.jsonl]`."""
    pool: list[Example] = []
    for part in spec.split("+"):
        if part == FEEDBACK:
            found = examples(store, task, until)
            if not found:
                raise DataError([(FEEDBACK, 0, "no feedback stored yet: add some with `mentor feedback add` or "
                                               "POST /v1/feedback to `mentor serve`")])
            pool += found
        else:
            pool += load_examples(Path(part), task)
    return pool
