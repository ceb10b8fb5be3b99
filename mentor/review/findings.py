"""Findings: what a reviewer said about a line of the change, before and after the student rated it.

A `Finding` comes from a source (an analyzer's SARIF, a JSON file of human comments, a reviewer LLM),
points at a file and a line of the new version, and carries the code it is about. A `RatedFinding` adds
the student's severity, its probability and an explanation. This module also reads the JSON comments
files that code hosts export (GitHub's and GitLab's review-comment shapes are understood as they are).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mentor.review.diff import Diff, ReviewError
from mentor.tasks import SEVERITY_LABELS

# Most severe first; the CLI's --min-severity and --fail-on compare by this order.
RANK = {label: len(SEVERITY_LABELS) - i for i, label in enumerate(SEVERITY_LABELS)}
MAX_TEXT_CHARS = 4_000  # a review comment longer than this is clipped (the student reads ~700 anyway)
MAX_FILE_BYTES = 2_000_000  # a working-tree file larger than this is not read for context
# What each level means (the original design's definitions): the explanation a severity-only model gets, SARIF rule text.
MEANING = {
    "critical": "A security vulnerability, or a bug that crashes the program or abruptly exits execution.",
    "major": "A severe bug that makes the system produce incorrect results.",
    "minor": "Unexpected or undesired behaviour that does not disrupt the system's function.",
    "trivial": "No noticeable breakdown: docstrings, comments, naming, style.",
    "unrated": "The reviewer model's answer could not be understood; look at this finding yourself.",
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    text: str  # the review comment or the analyzer's message
    source: str  # "sarif:bandit", "comments:review.json", "reviewer:openai:gpt-4o-mini", ...
    end_line: int | None = None
    rule: str = ""  # the analyzer's rule id, when there is one
    code: str = ""  # the code the finding is about (what the student reads)

    @property
    def id(self) -> str:
        """Stable across runs: feedback on a finding refers to it by this id."""
        key = f"{self.path}\x1f{self.line}\x1f{' '.join(self.text.split())}"
        return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class RatedFinding:
    finding: Finding
    severity: str | None  # None: the student's answer could not be understood (reported, never dropped)
    probability: float | None
    probs: dict[str, float] | None
    explanation: str
    explanation_source: str  # "student" (generated) or "definition" (the level's meaning: a severity-only model)

    def to_json(self) -> dict[str, Any]:
        f = asdict(self.finding)
        return {"id": self.finding.id, "path": f["path"], "line": f["line"], "end_line": f["end_line"],
                "source": f["source"], "rule": f["rule"], "review": f["text"], "code": f["code"],
                "severity": self.severity, "probability": self.probability, "probs": self.probs,
                "explanation": self.explanation, "explanation_source": self.explanation_source}


@dataclass
class ReviewReport:
    """What a review produced: the kept findings (most severe first) and what was left out, and why."""

    findings: list[RatedFinding]
    filtered_out: int
    model: str
    min_severity: str | None
    warnings: list[str] = field(default_factory=list)
    # Seconds spent: model_load_s (loading the model and adapter), rating_s (rating every finding, one batch),
    # per_finding_s (rating_s / findings rated), findings_rated. Empty when the caller did not time anything.
    timing: dict[str, float | int | None] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        levels = [*SEVERITY_LABELS, "unrated"]
        return {level: sum(1 for r in self.findings if (r.severity or "unrated") == level) for level in levels}


@dataclass
class Collected:
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def at_least(severity: str | None, threshold: str | None) -> bool:
    """Whether a severity is at or above a threshold (an unrated finding passes every filter: it is shown)."""
    if threshold is None or severity is None:
        return True
    return RANK.get(severity, 0) >= RANK[threshold]


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


def read_json_file(path: Path, what: str) -> Any:
    """A JSON file, with a clear error for a missing file, bad encoding or bad JSON."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReviewError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise ReviewError(f"{path}: is a directory, expected a {what} file") from None
    if len(raw) > 50_000_000:
        raise ReviewError(f"{path}: the {what} file is larger than 50 MB")
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise ReviewError(f"{path}: the {what} file is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ReviewError(f"{path}: the {what} file is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
    except RecursionError:
        raise ReviewError(f"{path}: the {what} file nests JSON too deeply to read") from None


def _pick(record: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        node: Any = record
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node not in (None, ""):
            return node
    return None


def load_comments(path: Path) -> Collected:
    """Review comments from a JSON list of {file|path, line, text|body} objects (or {"comments": [...]}).

    GitHub's pull-request review comments (path, line or original_line, body, diff_hunk) and GitLab's
    discussion notes (position.new_path, position.new_line, body) load as exported. A comment may carry
    its own `code`; otherwise the code comes from the diff or the working tree.
    """
    data = read_json_file(path, "comments")
    if isinstance(data, dict) and isinstance(data.get("comments"), list):
        data = data["comments"]
    if not isinstance(data, list):
        raise ReviewError(f"{path}: expected a JSON list of comments (each with file, line and text)")
    out = Collected()
    for number, record in enumerate(data, start=1):
        where = f"{path}: comment {number}"
        if not isinstance(record, dict):
            out.warnings.append(f"{where}: not a JSON object; skipped")
            continue
        file = _pick(record, "file", "path", "position.new_path", "new_path")
        line = _pick(record, "line", "new_line", "position.new_line", "original_line", "start_line")
        text = _pick(record, "text", "body", "comment", "note", "message")
        if not isinstance(file, str) or not isinstance(text, str) or not text.strip():
            out.warnings.append(f"{where}: needs a file (or path) and a text (or body); skipped")
            continue
        try:
            line = int(line)
        except (TypeError, ValueError):
            out.warnings.append(f"{where}: needs a line number; skipped")
            continue
        if line < 1:
            out.warnings.append(f"{where}: line {line} is not a line number; skipped")
            continue
        code = _pick(record, "code")
        if not isinstance(code, str):
            hunk = _pick(record, "diff_hunk")
            code = _hunk_tail(hunk) if isinstance(hunk, str) else ""
        out.findings.append(Finding(path=file.strip(), line=line, text=clip(text.strip()), source=f"comments:{path.name}",
                                    code=clip(code)))
    return out


def _hunk_tail(hunk: str, lines: int = 7) -> str:
    """GitHub's diff_hunk ends at the commented line: its last lines, minus the removed ones, are the code."""
    body = [line[1:] for line in hunk.splitlines() if line and not line.startswith(("@@", "-", "\\"))]
    return "\n".join(body[-lines:])


def attach_context(findings: list[Finding], diff: Diff | None, root: Path | None, radius: int = 3) -> Collected:
    """Give each finding its code: its own, else the lines the diff shows, else the working-tree file.

    A file is read only from inside `root` (a finding that names ../../etc/passwd gets no context), only
    when it is UTF-8 text of a sane size. A finding left with no code at all is skipped with a warning.
    """
    out = Collected()
    cache: dict[str, list[str] | None] = {}
    for finding in findings:
        code = finding.code
        if not code and diff is not None:
            code = diff.context(finding.path, finding.line, finding.end_line, radius)
        if not code and root is not None:
            lines = cache.setdefault(finding.path, _read_lines(root, finding.path))
            if lines:
                first = max(finding.line - radius, 1)
                code = "\n".join(lines[first - 1:(finding.end_line or finding.line) + radius]).strip("\n")
        if not code.strip():
            out.warnings.append(f"{finding.path}:{finding.line}: no code to rate this finding against "
                                f"(not in the diff, not a readable file); skipped")
            continue
        out.findings.append(Finding(**{**asdict(finding), "code": clip(code)}))
    return out


def _read_lines(root: Path, relative: str) -> list[str] | None:
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
        return None
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        return None
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (file, line, normalised text): two sources saying the same thing are rated once."""
    seen: set[str] = set()
    out = []
    for finding in findings:
        if finding.id not in seen:
            seen.add(finding.id)
            out.append(finding)
    return out
