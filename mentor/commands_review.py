"""The code-review commands: `mentor review`, `mentor serve`, `mentor feedback add|export`, `mentor export`.

Each parses its options, calls one library function and prints. `mentor review` exits 1 when `--fail-on`
finds something (a CI gate), 2 on a user error (cli.USER_ERRORS), 0 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mentor.cli import HOME, app, out
from mentor.tasks import SEVERITY_LABELS

LEVELS = ", ".join(SEVERITY_LABELS)
RUN = typer.Option("latest", "--run", help="run id or 'latest': its best adapter rates the findings")
ADAPTER = typer.Option(None, "--adapter", help="rate with this adapter directory instead")
UNTUNED = typer.Option(False, "--untuned", help="rate with the untuned base model")
TASK = typer.Option(None, "--task", help="'severity' or 'explain' (default: the run's task)")
STUDENT = typer.Option(None, "--student", help="student model (default: the run's)")


def _level(value: Optional[str], option: str) -> Optional[str]:
    from mentor.review import ReviewError

    if value is not None and value not in SEVERITY_LABELS:
        raise ReviewError(f"{option} {value!r}: use one of {LEVELS}")
    return value


@app.command()
def review(
    diff: Optional[str] = typer.Argument(None, help="unified diff file, or '-' to read it from stdin"),
    base: Optional[str] = typer.Option(None, "--base", help="review `git diff REF` of the repository here instead"),
    sarif: list[Path] = typer.Option(None, "--sarif", help="SARIF 2.1.0 file from an analyzer (repeatable)"),
    comments: list[Path] = typer.Option(None, "--comments", help="JSON list of review comments: file, line, text (repeatable)"),
    reviewer: list[str] = typer.Option(None, "--reviewer", help="reviewer LLM 'openai:MODEL' reading each hunk (repeatable)"),
    min_severity: Optional[str] = typer.Option(None, "--min-severity", help=f"hide findings below this level ({LEVELS})"),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="exit 1 when a shown finding is at or above this level"),
    fmt: str = typer.Option("table", "--format", help="table, markdown, json, sarif, gitlab or rdjson"),
    output: Optional[Path] = typer.Option(None, "--output", help="write the report here instead of stdout"),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="encoding of diff files that are not UTF-8 (e.g. latin-1)"),
    context_lines: int = typer.Option(3, "--context", help="lines of code around a finding that the model reads"),
    max_diff_bytes: int = typer.Option(5_000_000, "--max-diff-bytes", help="refuse larger diffs"),
    max_findings: int = typer.Option(1000, "--max-findings", help="refuse to rate more findings than this"),
    run_ref: str = RUN, adapter: Optional[Path] = ADAPTER, untuned: bool = UNTUNED,
    task: Optional[str] = TASK, student: Optional[str] = STUDENT,
    home: Optional[str] = HOME,
) -> None:
    """Rate, explain and filter a change's findings (from analyzers' SARIF, comments, or a reviewer LLM)."""
    from mentor.console import progress
    from mentor.review import FORMATS, ReviewError, Sources, gate, parse_diff, render
    from mentor.review import review as run_review
    from mentor.review.diff import git_diff_bytes, git_root, read_diff_bytes
    from mentor.targets import resolve_target

    if fmt not in FORMATS:
        raise ReviewError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    min_severity, fail_on = _level(min_severity, "--min-severity"), _level(fail_on, "--fail-on")
    if diff is not None and base is not None:
        raise ReviewError("give either a diff file (or '-') or --base REF, not both")
    root = Path.cwd()
    if base is not None:
        root = git_root(Path.cwd())
        raw = git_diff_bytes(base, root, max_diff_bytes, context=max(context_lines, 3))
    else:
        raw = read_diff_bytes(diff, max_diff_bytes) if diff is not None else None
    sources = Sources(diff=parse_diff(raw, encoding) if raw is not None else None, sarif=list(sarif or []),
                      comments=list(comments or []), reviewers=list(reviewer or []), root=root,
                      context_lines=context_lines, max_findings=max_findings)
    target = resolve_target(home=home, run_ref=run_ref, adapter=adapter, base=untuned, task=task, student=student)
    with progress("rating findings", None) as advance:
        report = run_review(sources, target.student, target.task, target.label, min_severity, advance)
    text = render(report, fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {len(report.findings)} finding(s) as {fmt} to {output}", file=sys.stderr)
    elif fmt == "table":
        out.print(text, markup=False, highlight=False, end="")
    else:
        sys.stdout.write(text)
    failing = gate(report, fail_on)
    if failing:
        print(f"{len(failing)} finding(s) at or above {fail_on}: failing (--fail-on {fail_on})", file=sys.stderr)
        # SystemExit, not typer.Exit: cli.main runs click with standalone_mode=False, which swallows Exit codes.
        raise SystemExit(1)


feedback_app = typer.Typer(no_args_is_help=True, help="Developers' verdicts on rated findings: the training data of the next run.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("add")
def feedback_add(
    verdict: str = typer.Option(..., "--verdict", help=f"'agree', or the severity it should have had ({LEVELS})"),
    report: Optional[Path] = typer.Option(None, "--from", help="a `mentor review --format json` report ..."),
    finding_id: Optional[str] = typer.Option(None, "--id", help="... and the id (or its start) of the finding in it"),
    code: Optional[str] = typer.Option(None, "--code", help="or: the code the finding is about (@FILE reads a file)"),
    review_text: Optional[str] = typer.Option(None, "--review", help="and the finding's text"),
    predicted: Optional[str] = typer.Option(None, "--predicted", help="and the severity the model gave"),
    comment: str = typer.Option("", "--comment", help="why (becomes the explanation the model learns)"),
    home: Optional[str] = HOME,
) -> None:
    """Store a verdict on a rated finding; `mentor run --data feedback` trains on it."""
    from mentor import feedback
    from mentor.review import ReviewError
    from mentor.runner import open_store

    if report is not None:
        if finding_id is None or code is not None or review_text is not None:
            raise ReviewError("with --from REPORT give --id ID (and not --code/--review)")
        item = feedback.from_review_file(report, finding_id, verdict, comment)
    else:
        if code is None or review_text is None:
            raise ReviewError("give --code and --review (or --from REPORT --id ID)")
        if code.startswith("@"):
            code = Path(code[1:]).read_text(encoding="utf-8")
        item = feedback.check(feedback.Feedback(code=code, review=review_text, verdict=verdict,
                                                predicted=_level(predicted, "--predicted"), comment=comment))
    store = open_store(home, create=True)
    number = feedback.add(store, item)
    what = "agreed" if item.verdict == "agree" else f"{item.predicted or '?'} -> {item.severity}"
    out.print(f"feedback {number} stored ({what}); `mentor run --data feedback` trains on it", highlight=False)


@feedback_app.command("export")
def feedback_export(path: Path = typer.Argument(..., help="JSONL file to write ('-' for stdout)"),
                    home: Optional[str] = HOME) -> None:
    """Write all feedback as JSONL in the training-data format (corrected items carry a higher weight)."""
    from mentor import feedback
    from mentor.runner import open_store

    text, count = feedback.export_jsonl(open_store(home))
    if str(path) == "-":
        sys.stdout.write(text)
        return
    path.write_text(text, encoding="utf-8")
    print(f"wrote {count} feedback item(s) to {path}", file=sys.stderr)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, "--port", help="port to listen on"),
    token: Optional[str] = typer.Option(None, "--token", envvar="MENTOR_SERVE_TOKEN",
                                        help="require 'Authorization: Bearer TOKEN' (also $MENTOR_SERVE_TOKEN)"),
    model: list[str] = typer.Option(None, "--model", help="serve another model too: NAME=SPEC (best, base, round:N, adapter dir)"),
    max_request_bytes: int = typer.Option(1_000_000, "--max-request-bytes", help="refuse larger request bodies (413)"),
    max_batch: int = typer.Option(16, "--max-batch", help="most questions the model answers in one batch"),
    max_wait_ms: float = typer.Option(10.0, "--max-wait-ms", help="how long a batch waits for more questions"),
    run_ref: str = RUN, adapter: Optional[Path] = ADAPTER, untuned: bool = UNTUNED,
    task: Optional[str] = TASK, student: Optional[str] = STUDENT,
    home: Optional[str] = HOME,
) -> None:
    """Serve the student over HTTP: OpenAI-compatible /v1/chat/completions and /v1/models, /v1/review, /v1/feedback."""
    import logging

    from mentor.server import build_server, parse_models

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = build_server(parse_models(list(model or []), adapter, untuned), home=home, run_ref=run_ref, task=task,
                          student=student, token=token, host=host, port=port, max_request_bytes=max_request_bytes,
                          max_batch=max_batch, max_wait=max_wait_ms / 1000)
    auth = "bearer token required" if token else "no token: anyone who can reach it may use it"
    print(f"mentor serve: {server.url} ({auth}); models: {', '.join(server.api.labels)}; Ctrl-C stops", file=sys.stderr)
    if not token and host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: listening beyond this machine without --token", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.api.batcher.close()


@app.command("export")
def export_cmd(
    run_ref: str = typer.Argument("latest", help="run id or 'latest'"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="folder to export into [default: HOME/export/run-N]"),
    name: Optional[str] = typer.Option(None, "--name", help="adapter (and served model) name [default: mentor-runN]"),
    merged: bool = typer.Option(False, "--merged", help="also write the base model with the adapter merged in"),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="base model id the engines load [default: the run's]"),
    home: Optional[str] = HOME,
) -> None:
    """Export a run's best adapter for vLLM (--lora-modules) and NVIDIA NIM (NIM_PEFT_SOURCE)."""
    from mentor.export import export_run, serving_commands

    result = export_run(home, run_ref, out_dir, name, merged, base_model)
    print(f"adapter {result.name} -> {result.adapter}" + (f"; merged model -> {result.merged}" if result.merged else ""),
          file=sys.stderr)
    out.print(serving_commands(result), markup=False, highlight=False)
