"""The code-review application: findings in, rated and explained findings out, in formats CI reads.

    diff.py      a unified diff (file, stdin, `git diff REF`, the staged change) -> files, added lines, the code hunks show
    findings.py  Finding / RatedFinding / ReviewReport; JSON comments files; code context
    sarif.py     SARIF 2.1.0 in (restricted to changed lines) and out
    reviewer.py  a reviewer LLM (any OpenAI-compatible server) proposing comments per hunk
    collect.py   every source together, de-duplicated, capped, each finding with its code
    rate.py      the student rates (and explains) all findings in one batch; threshold and CI gate
    formats.py   table, markdown, json, sarif, gitlab (Code Quality), rdjson (reviewdog)
"""

from mentor.review.collect import Sources, collect
from mentor.review.diff import Diff, ReviewError, parse_diff
from mentor.review.findings import Finding, RatedFinding, ReviewReport
from mentor.review.formats import FORMATS, render
from mentor.review.rate import build_report, gate, rate, rate_collected, review

__all__ = ["Diff", "Finding", "FORMATS", "RatedFinding", "ReviewError", "ReviewReport", "Sources", "build_report",
           "collect", "gate", "parse_diff", "rate", "rate_collected", "render", "review"]
