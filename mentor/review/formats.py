"""Output formats that code hosts and CI already read: table, markdown, json, sarif, gitlab, rdjson.

Each renderer turns a `ReviewReport` into text. The findings' own text (code, comments, explanations)
is data: in markdown it is escaped so it can neither break the table nor inject HTML or @-mentions into
a merge-request comment; in the JSON formats it is a string value like any other.
"""

from __future__ import annotations

import io
import json
from typing import Any, Callable

from mentor.review.findings import ReviewReport
from mentor.review.sarif import LEVEL, to_sarif

FORMATS = ("table", "markdown", "json", "sarif", "gitlab", "rdjson")
# GitLab Code Quality severities: info, minor, major, critical, blocker.
GITLAB_SEVERITY = {"critical": "critical", "major": "major", "minor": "minor", "trivial": "info", "unrated": "minor"}
GITLAB_CATEGORY = {"critical": "Security", "major": "Bug Risk", "minor": "Bug Risk", "trivial": "Style", "unrated": "Bug Risk"}
# reviewdog's rdjson severities: UNKNOWN_SEVERITY, ERROR, WARNING, INFO.
RDJSON_SEVERITY = {"error": "ERROR", "warning": "WARNING", "note": "INFO"}
ICON = {"critical": "🔴", "major": "🟠", "minor": "🟡", "trivial": "⚪", "unrated": "❔"}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("mentor")
    except PackageNotFoundError:
        return "0.0.0"


def render(report: ReviewReport, fmt: str) -> str:
    try:
        renderer: Callable[[ReviewReport], str] = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}") from None
    return renderer(report)


def _level(severity: str | None) -> str:
    return severity or "unrated"


def _summary(report: ReviewReport) -> str:
    counts = ", ".join(f"{n} {level}" for level, n in report.counts().items() if n)
    below = f"; {report.filtered_out} below {report.min_severity} not shown" if report.filtered_out else ""
    return f"{len(report.findings)} finding(s){' (' + counts + ')' if counts else ''}{below}"


def to_table(report: ReviewReport) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"mentor review ({report.model}): {_summary(report)}", show_lines=True)
    for name in ("severity", "p", "location", "source", "finding", "why"):
        table.add_column(name, overflow="fold")
    for rated in report.findings:
        f = rated.finding
        p = f"{rated.probability:.2f}" if rated.probability is not None else "-"
        # Text(...) keeps rich from reading markup like [red] inside a comment.
        table.add_row(_level(rated.severity), p, f"{f.path}:{f.line}", f.source, Text(f.text), Text(rated.explanation))
    buffer = io.StringIO()
    Console(file=buffer, width=160, color_system=None, soft_wrap=False).print(table)
    for warning in report.warnings:
        buffer.write(f"warning: {warning}\n")
    return buffer.getvalue()


def _md(text: str) -> str:
    """Safe inside a markdown table cell: no HTML, no pipes or line breaks, no @-mentions, no images."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "&#124;")
    text = text.replace("@", "&#64;").replace("!", "&#33;").replace("`", "&#96;")
    return "<br>".join(line.strip() for line in text.strip().splitlines())


def to_markdown(report: ReviewReport) -> str:
    lines = [f"### mentor review: {_summary(report)}", "", f"<sub>model: {_md(report.model)}</sub>", ""]
    if report.findings:
        lines += ["| Severity | Location | Finding | Why |", "| --- | --- | --- | --- |"]
        for rated in report.findings:
            f, level = rated.finding, _level(rated.severity)
            p = f" ({rated.probability:.2f})" if rated.probability is not None else ""
            location = f"{_md(f.path)}:{f.line}"
            lines.append(f"| {ICON[level]} **{level}**{p} | {location} | {_md(f.text)}<br><sub>{_md(f.source)}</sub> "
                         f"| {_md(rated.explanation)} |")
    else:
        lines.append("No findings at or above the threshold.")
    if report.warnings:
        lines += ["", f"<details><summary>{len(report.warnings)} warning(s)</summary>", ""]
        lines += [f"- {_md(w)}" for w in report.warnings]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def to_json(report: ReviewReport) -> str:
    return json.dumps({
        "tool": "mentor", "version": version(), "model": report.model, "min_severity": report.min_severity,
        "counts": report.counts(), "filtered_out": report.filtered_out,
        "findings": [r.to_json() for r in report.findings], "warnings": report.warnings, "timing": report.timing,
    }, indent=2, ensure_ascii=False) + "\n"


def to_sarif_text(report: ReviewReport) -> str:
    return json.dumps(to_sarif(report, version()), indent=2, ensure_ascii=False) + "\n"


def to_gitlab(report: ReviewReport) -> str:
    """GitLab Code Quality report (the Code Climate issue subset GitLab reads)."""
    issues: list[dict[str, Any]] = []
    for rated in report.findings:
        f, level = rated.finding, _level(rated.severity)
        lines = {"begin": f.line} | ({"end": f.end_line} if f.end_line else {})
        issues.append({
            "type": "issue",
            "description": f"[{level}] {f.text}",
            "check_name": f"mentor/{level}",
            "fingerprint": f.id,
            "severity": GITLAB_SEVERITY[level],
            "categories": [GITLAB_CATEGORY[level]],
            "engine_name": "mentor",
            "content": {"body": rated.explanation},
            "location": {"path": f.path, "lines": lines},
        })
    return json.dumps(issues, indent=2, ensure_ascii=False) + "\n"


def to_rdjson(report: ReviewReport) -> str:
    """reviewdog's Diagnostic Format (rdjson): `reviewdog -f=rdjson` posts these on the merge request."""
    diagnostics = []
    for rated in report.findings:
        f, level = rated.finding, _level(rated.severity)
        location: dict[str, Any] = {"path": f.path, "range": {"start": {"line": f.line}}}
        if f.end_line:
            location["range"]["end"] = {"line": f.end_line}
        diagnostics.append({
            "message": f"[{level}] {f.text}\n{rated.explanation}",
            "location": location,
            "severity": RDJSON_SEVERITY[LEVEL[level]],
            "source": {"name": f.source},
            "code": {"value": f"mentor/{level}"},
        })
    return json.dumps({"source": {"name": "mentor"}, "diagnostics": diagnostics}, indent=2, ensure_ascii=False) + "\n"


RENDERERS: dict[str, Callable[[ReviewReport], str]] = {
    "table": to_table, "markdown": to_markdown, "json": to_json, "sarif": to_sarif_text,
    "gitlab": to_gitlab, "rdjson": to_rdjson,
}
