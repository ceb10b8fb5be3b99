"""Gathering a change's findings from every source the user named, each tied to its code.

Sources: SARIF files (restricted to the lines the change added), JSON comments files, and reviewer LLMs
that read each hunk. Findings saying the same thing about the same line are rated once. The number of
findings is capped (rating is the expensive step); going over the cap is an error, never a silent cut,
because a CI gate must not pass on findings it did not look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mentor.review.diff import Diff, ReviewError
from mentor.review.findings import Collected, attach_context, dedupe, load_comments
from mentor.review.sarif import load_sarif

MAX_FINDINGS = 1000


@dataclass
class Sources:
    diff: Diff | None = None
    sarif: list[Path] = field(default_factory=list)
    comments: list[Path] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)  # "openai:MODEL" specs
    root: Path | None = None  # where working-tree files are read for context
    context_lines: int = 3
    max_findings: int = MAX_FINDINGS


def collect(sources: Sources) -> Collected:
    if not (sources.sarif or sources.comments or sources.reviewers):
        raise ReviewError("no findings source: pass --sarif FILE, --comments FILE or --reviewer openai:MODEL (repeatable)")
    if (sources.sarif or sources.reviewers) and sources.diff is None:
        raise ReviewError("--sarif and --reviewer need the change itself: give a diff file, '-' for stdin, or --base REF")
    out = Collected(warnings=list(sources.diff.warnings) if sources.diff else [])
    for path in sources.sarif:
        _add(out, load_sarif(path, sources.diff, sources.root))
    for path in sources.comments:
        _add(out, load_comments(path))
    for spec in sources.reviewers:
        from mentor.review.reviewer import review_change

        _add(out, review_change(spec, sources.diff))
    unique = dedupe(out.findings)
    if len(unique) < len(out.findings):
        out.warnings.append(f"{len(out.findings) - len(unique)} duplicate finding(s) merged")
    if len(unique) > sources.max_findings:
        raise ReviewError(f"{len(unique)} findings is more than the limit of {sources.max_findings}; review a smaller "
                          f"change, narrow the analyzers' rules, or raise the limit with --max-findings")
    placed = attach_context(unique, sources.diff, sources.root, sources.context_lines)
    return Collected(placed.findings, out.warnings + placed.warnings)


def _add(into: Collected, more: Collected) -> None:
    into.findings += more.findings
    into.warnings += more.warnings
