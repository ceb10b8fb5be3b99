"""SARIF 2.1.0 in and out: analyzers' results become findings; rated findings become a SARIF log.

Reading keeps only results on lines the change added (an analyzer scanning the whole repository reports
old problems too, and a merge-request review is about the change). A file that is not SARIF 2.1.0 is a
clear error naming the file; a single result that lacks what we need (a location with a line, a message)
is skipped with a warning. Writing gives each result a `level` and, in its rule, the
`security-severity` score that GitHub code scanning reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mentor.review.diff import Diff, ReviewError
from mentor.review.findings import MEANING, Collected, Finding, ReviewReport, clip, read_json_file

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
# GitHub: over 9.0 is critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
SECURITY_SEVERITY = {"critical": "9.5", "major": "7.5", "minor": "5.0", "trivial": "2.0", "unrated": "5.0"}
LEVEL = {"critical": "error", "major": "error", "minor": "warning", "trivial": "note", "unrated": "warning"}


# ---- reading ------------------------------------------------------------------------------------


def load_sarif(path: Path, diff: Diff, root: Path | None) -> Collected:
    """Findings from a SARIF 2.1.0 file, restricted to lines `diff` added."""
    log = read_json_file(path, "SARIF")
    if not isinstance(log, dict) or not isinstance(log.get("runs"), list):
        raise ReviewError(f"{path}: not a SARIF log (expected a JSON object with a 'runs' list)")
    if log.get("version") != "2.1.0":
        raise ReviewError(f"{path}: SARIF version {log.get('version')!r} is not supported; mentor reads SARIF 2.1.0 "
                          f"(most analyzers write it: semgrep --sarif, codeql --format=sarif-latest, bandit -f sarif)")
    out = Collected()
    outside = 0
    for run_no, run in enumerate(log["runs"]):
        if not isinstance(run, dict):
            out.warnings.append(f"{path}: run {run_no} is not an object; skipped")
            continue
        tool = _get(run, "tool", "driver", "name") or "sarif"
        rules = _rules(run)
        bases = {k: _get(v, "uri") for k, v in (run.get("originalUriBaseIds") or {}).items() if isinstance(v, dict)}
        artifacts = run.get("artifacts") if isinstance(run.get("artifacts"), list) else []
        results = run.get("results") if isinstance(run.get("results"), list) else []
        for number, result in enumerate(results):
            where = f"{path}: run {run_no} result {number}"
            finding = _finding(result, rules, bases, artifacts, tool, root, diff, where, out.warnings)
            if finding is None:
                continue
            if not diff.touches(finding.path, finding.line, finding.end_line):
                outside += 1
                continue
            out.findings.append(finding)
    if outside:
        out.warnings.append(f"{path}: {outside} result(s) outside the lines this change added; left out")
    return out


def _finding(result: Any, rules: dict, bases: dict, artifacts: list, tool: str, root: Path | None, diff: Diff,
             where: str, warnings: list[str]) -> Finding | None:
    if not isinstance(result, dict):
        warnings.append(f"{where}: not an object; skipped")
        return None
    if any(isinstance(s, dict) and s.get("status", "accepted") == "accepted" for s in result.get("suppressions") or []):
        return None  # suppressed in the source: the author already decided
    rule_id = result.get("ruleId") or _get(result, "rule", "id") or ""
    rule = rules.get(rule_id) or (rules.get(result["ruleIndex"]) if isinstance(result.get("ruleIndex"), int) else None) or {}
    text = _message(result.get("message"), rule)
    location = _get(result, "locations", 0, "physicalLocation")
    artifact = _get(location, "artifactLocation") or {}
    uri = artifact.get("uri") if isinstance(artifact, dict) else None
    if uri is None and isinstance(_get(artifact, "index"), int) and artifact["index"] < len(artifacts):
        uri = _get(artifacts[artifact["index"]], "location", "uri")
    start, end = _get(location, "region", "startLine"), _get(location, "region", "endLine")
    if not isinstance(uri, str) or not isinstance(start, int) or start < 1:
        warnings.append(f"{where}: no file location with a start line; skipped")
        return None
    if not text:
        warnings.append(f"{where}: no message text; skipped")
        return None
    base = bases.get(artifact.get("uriBaseId")) if isinstance(artifact, dict) else None
    path = _repo_path(uri, base, root, diff)
    end = end if isinstance(end, int) and end >= start else None
    return Finding(path=path, line=start, end_line=end, text=clip(text), source=f"sarif:{tool}", rule=str(rule_id))


def _rules(run: dict) -> dict[Any, dict]:
    """Rules by id and by index, from the driver and its extensions (CodeQL keeps them in extensions)."""
    out: dict[Any, dict] = {}
    components = [_get(run, "tool", "driver")] + list(_get(run, "tool", "extensions") or [])
    for component in components:
        for index, rule in enumerate(_get(component, "rules") or []):
            if isinstance(rule, dict):
                out.setdefault(index, rule)
                if isinstance(rule.get("id"), str):
                    out[rule["id"]] = rule
    return out


def _message(message: Any, rule: dict) -> str:
    if not isinstance(message, dict):
        return ""
    text = message.get("text") or message.get("markdown")
    if not text and isinstance(message.get("id"), str):
        text = _get(rule, "messageStrings", message["id"], "text")
    if not isinstance(text, str):
        return ""
    arguments = message.get("arguments") or []
    # SARIF placeholders are {0}, {1}...; a missing argument stays as written.
    return re.sub(r"\{(\d+)\}", lambda m: str(arguments[int(m.group(1))]) if int(m.group(1)) < len(arguments) else m.group(0),
                  text).strip()


def _repo_path(uri: str, base: str | None, root: Path | None, diff: Diff) -> str:
    """The diff's name for a SARIF artifact URI (relative, %SRCROOT%-based, or an absolute file:// URI)."""
    if base and not urlparse(uri).scheme:
        uri = base.rstrip("/") + "/" + uri
    parsed = urlparse(uri)
    path = unquote(parsed.path if parsed.scheme in ("file", "") else uri)
    if root is not None and Path(path).is_absolute():
        try:
            path = str(Path(path).resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    while path.startswith("./"):
        path = path[2:]
    if path not in diff.files:
        # Analyzers run from another folder write longer or shorter paths; a unique suffix match settles it.
        matches = [name for name in diff.files if path.endswith("/" + name) or name.endswith("/" + path)]
        if len(matches) == 1:
            return matches[0]
    return path


def _get(node: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and len(node) > key else None
        else:
            node = node.get(key) if isinstance(node, dict) else None
    return node


# ---- writing ------------------------------------------------------------------------------------


def to_sarif(report: ReviewReport, version: str) -> dict[str, Any]:
    levels = sorted({r.severity or "unrated" for r in report.findings}, key=list(MEANING).index)
    rules = [{
        "id": f"mentor/{level}",
        "name": f"{level.capitalize()}Finding",
        "shortDescription": {"text": f"A {level} code-review finding"},
        "fullDescription": {"text": MEANING[level]},
        "defaultConfiguration": {"level": LEVEL[level]},
        "properties": {"security-severity": SECURITY_SEVERITY[level], "tags": ["code-review", level]},
    } for level in levels]
    results = []
    for rated in report.findings:
        f, level = rated.finding, rated.severity or "unrated"
        region: dict[str, int] = {"startLine": f.line}
        if f.end_line:
            region["endLine"] = f.end_line
        confidence = f" (p={rated.probability:.2f})" if rated.probability is not None else ""
        results.append({
            "ruleId": f"mentor/{level}",
            "ruleIndex": levels.index(level),
            "level": LEVEL[level],
            "message": {"text": f"{f.text}\n\n{level}{confidence}: {rated.explanation}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                                                "region": region}}],
            "partialFingerprints": {"mentorFinding/v1": f.id},
            "properties": {"severity": level, "security-severity": SECURITY_SEVERITY[level],
                           "probability": rated.probability, "source": f.source, "originalRule": f.rule,
                           "explanation": rated.explanation},
        })
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "mentor", "semanticVersion": version, "rules": rules,
                                "properties": {"model": report.model}}},
            "columnKind": "unicodeCodePoints",
            "results": results,
            "invocations": [{"executionSuccessful": True,
                             "toolExecutionNotifications": [{"message": {"text": w}, "level": "warning"}
                                                            for w in report.warnings]}],
        }],
    }
