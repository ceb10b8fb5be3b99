"""The code-review commands: `mentor review`, `mentor serve`, `mentor feedback add|export`, `mentor export`.

Each parses its options, calls one library function and prints. `mentor review` exits 1 when `--fail-on`
finds something (a CI gate), 2 on a user error (cli.USER_ERRORS), 0 otherwise.

The vocabulary is the one every mentor command uses: `--run ID|latest` picks a run (a positional run
stays accepted where there was one), `-o/--output` names what is written (the old `--out` is a hidden
alias), `--adapter DIR` rates with an adapter folder (one written by `mentor export` included),
`--untuned` with the untuned model, `--base REF` is only ever a git ref, `--json` prints JSON.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Literal, Optional

import typer

from mentor.cli import HOME, app, out
from mentor.review.formats import FORMATS
from mentor.tasks import SEVERITY_LABELS

VERDICTS = ("agree", *SEVERITY_LABELS)
RUN = typer.Option("latest", "--run", metavar="ID|latest", help="run id or 'latest': its best adapter rates the findings")
ADAPTER = typer.Option(None, "--adapter", metavar="DIR", help="rate with this adapter folder instead (one written by `mentor export`, "
                                               "or a round's adapter)")
UNTUNED = typer.Option(False, "--untuned", help="rate with the untuned base model")
TASK = typer.Option(None, "--task", metavar="NAME|FILE", help="'severity' or 'explain' (default: the run's or the exported adapter's task)")
STUDENT = typer.Option(None, "--student", metavar="MODEL", help="student model (default: the run's or the exported adapter's)")


def _one(new: Optional[str | Path], old: Optional[str | Path], names: str) -> Optional[str | Path]:
    """A value given under its new name or its old alias (or positionally), not two different ones."""
    from mentor.review import ReviewError

    if new is not None and old is not None and str(new) != str(old):
        raise ReviewError(f"{names}: given twice with different values ({new} and {old}); give it once")
    return new if new is not None else old


def _model_context(home: Optional[str], run_ref: str, adapter: Optional[Path], untuned: bool, task: Optional[str],
                   student: Optional[str], need_run: bool):  # noqa: ANN202 - a RunContext
    """The run context the model comes from. Without --adapter or --untuned that is a run in the store; where
    there is none (CI, another repository) the error says how to rate without one."""
    from mentor.export import adapter_context
    from mentor.review import ReviewError
    from mentor.store import StoreError

    try:
        return adapter_context(adapter, home, run_ref, need_run=need_run, task=task, student=student)
    except StoreError as err:
        if adapter is not None or untuned or run_ref != "latest":
            raise
        reason = str(err).split(": ")[0]
        raise ReviewError(f"no trained model here ({reason}).\nRate with an exported adapter: --adapter PATH "
                          f"(a folder written by `mentor export`), or with the untuned model: --untuned") from None


def _prepare_output(output: Path) -> None:
    """The report's folder exists (created if need be) before any work, so a typo in -o fails in a second."""
    from mentor.review import ReviewError

    if output.is_dir():
        raise ReviewError(f"-o {output}: is a folder; give a file path for the report")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReviewError(f"-o {output}: cannot create its folder {output.parent}: {err.strerror or err}") from None


@app.command()
def review(
    diff: Optional[str] = typer.Argument(None, metavar="[DIFF]", show_default=False, help="unified diff file, or '-' to read it from stdin"),
    base: Optional[str] = typer.Option(None, "--base", metavar="REF", help="review what this branch changes since it left REF (a git ref): the working tree against the merge base of REF and HEAD"),
    staged: bool = typer.Option(False, "--staged", help="review the staged change (`git diff --cached`): a pre-commit hook"),
    sarif: list[Path] = typer.Option(None, "--sarif", metavar="FILE", help="SARIF 2.1.0 file from an analyzer (repeatable)"),
    comments: list[Path] = typer.Option(None, "--comments", metavar="FILE", help="JSON list of review comments: file, line, text (repeatable)"),
    reviewer: list[str] = typer.Option(None, "--reviewer", metavar="openai:MODEL", help="reviewer LLM 'openai:MODEL' reading each hunk (repeatable)"),
    min_severity: Optional[Literal[SEVERITY_LABELS]] = typer.Option(None, "--min-severity", help="hide findings below this level"),
    fail_on: Optional[Literal[SEVERITY_LABELS]] = typer.Option(None, "--fail-on", help="exit 1 when a shown finding is at or above this level"),
    fmt: Literal[FORMATS] = typer.Option("table", "--format", help="report format: gitlab is GitLab Code Quality, "
                                                                    "rdjson is reviewdog's"),
    as_json: bool = typer.Option(False, "--json", help="the same as --format json"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FILE", help="write the report here instead of stdout"),
    encoding: Optional[str] = typer.Option(None, "--encoding", metavar="NAME", help="encoding of diff files that are not UTF-8 (e.g. latin-1)"),
    context_lines: int = typer.Option(3, "--context", metavar="N", help="lines of code around a finding that the model reads"),
    max_diff_bytes: int = typer.Option(5_000_000, "--max-diff-bytes", metavar="N", help="refuse larger diffs"),
    max_findings: int = typer.Option(1000, "--max-findings", metavar="N", help="refuse to rate more findings than this"),
    run_ref: str = RUN, adapter: Optional[Path] = ADAPTER, untuned: bool = UNTUNED,
    task: Optional[str] = TASK, student: Optional[str] = STUDENT,
    home: Optional[str] = HOME,
) -> None:
    """Rate, explain and filter a change's findings (from analyzers' SARIF, comments, or a reviewer LLM)."""
    from mentor.console import progress
    from mentor.review import ReviewError, Sources, collect, gate, parse_diff, rate_collected, render
    from mentor.review.diff import git_diff_bytes, git_root, git_staged_bytes, read_diff_bytes
    from mentor.review.rate import describe_timing
    from mentor.targets import resolve_spec

    if as_json:
        if fmt not in ("table", "json"):
            raise ReviewError(f"--json is --format json: drop one of --json and --format {fmt}")
        fmt = "json"
    if len([given for given in (diff, base, staged or None) if given is not None]) > 1:
        raise ReviewError("give one change: a diff file (or '-'), --base REF or --staged")
    if adapter is not None and untuned:
        raise ReviewError("give --adapter DIR or --untuned, not both")
    root = Path.cwd()
    if base is not None or staged:
        root = git_root(Path.cwd())
        context = max(context_lines, 3)
        raw = git_diff_bytes(base, root, max_diff_bytes, context) if base else git_staged_bytes(root, max_diff_bytes, context)
    else:
        raw = read_diff_bytes(diff, max_diff_bytes) if diff is not None else None
    sources = Sources(diff=parse_diff(raw, encoding) if raw is not None else None, sarif=list(sarif or []),
                      comments=list(comments or []), reviewers=list(reviewer or []), root=root,
                      context_lines=context_lines, max_findings=max_findings)
    found = collect(sources)  # before the model loads: a bad input file fails in a second, not after the load
    if output is not None:
        _prepare_output(output)
    started = time.perf_counter()
    ctx = _model_context(home, run_ref, adapter, untuned, task, student, need_run=not (adapter or untuned))
    if adapter is None and not untuned:
        from mentor.export import refuse_untuned_best

        refuse_untuned_best(ctx, "rate with another run's adapter (--run ID, --adapter PATH), or with the untuned "
                                 "model on purpose (--untuned)")
    target = resolve_spec(ctx, str(adapter) if adapter is not None else "base" if untuned else "best")
    target.prepare()
    loaded = time.perf_counter() - started
    with progress("rating findings", None) as advance:
        report = rate_collected(found, target.student, target.task, target.label, min_severity, advance, loaded)
    text = render(report, fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {len(report.findings)} finding(s) as {fmt} to {output}", file=sys.stderr)
    elif fmt == "table":
        out.print(text, markup=False, highlight=False, end="")
    else:
        sys.stdout.write(text)
    print(describe_timing(report.timing), file=sys.stderr)
    failing = gate(report, fail_on)
    if failing:
        print(f"{len(failing)} finding(s) at or above {fail_on}: failing (--fail-on {fail_on})", file=sys.stderr)
        # SystemExit, not typer.Exit: cli.main runs click with standalone_mode=False, which swallows Exit codes.
        raise SystemExit(1)


feedback_app = typer.Typer(no_args_is_help=True, help="Developers' verdicts on rated findings: the training data of the next run.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("add")
def feedback_add(
    verdict: Literal[VERDICTS] = typer.Option(..., "--verdict", help="'agree', or the severity it should have had"),
    report: Optional[Path] = typer.Option(None, "--from", metavar="FILE", help="a `mentor review --format json` report ..."),
    finding_id: Optional[str] = typer.Option(None, "--id", metavar="ID", help="... and the id (or its start) of the finding in it"),
    code: Optional[str] = typer.Option(None, "--code", metavar="TEXT|@FILE", help="or: the code the finding is about (@FILE reads a file)"),
    review_text: Optional[str] = typer.Option(None, "--review", metavar="TEXT", help="and the finding's text"),
    predicted: Optional[Literal[SEVERITY_LABELS]] = typer.Option(None, "--predicted", help="and the severity the model gave"),
    comment: str = typer.Option("", "--comment", metavar="TEXT", help="why (becomes the explanation the model learns)"),
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
                                                predicted=predicted, comment=comment))
    store = open_store(home, create=True)
    number = feedback.add(store, item)
    what = "agreed" if item.verdict == "agree" else f"{item.predicted or '?'} -> {item.severity}"
    out.print(f"feedback {number} stored ({what}); `mentor run --data feedback` trains on it", highlight=False)


@feedback_app.command("export")
def feedback_export(path: Optional[Path] = typer.Argument(None, metavar="[PATH]", help="JSONL file to write (same as -o)",
                                                          show_default=False),
                    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FILE", help="JSONL file to write ('-' or none: stdout)"),
                    home: Optional[str] = HOME) -> None:
    """Write all feedback as JSONL in the training-data format (corrected items carry a higher weight)."""
    from mentor import feedback
    from mentor.runner import open_store

    target = _one(output, path, "-o/--output (or the positional PATH)")
    text, count = feedback.export_jsonl(open_store(home))
    if target is None or str(target) == "-":
        sys.stdout.write(text)
        return
    Path(target).write_text(text, encoding="utf-8")
    print(f"wrote {count} feedback item(s) to {target}", file=sys.stderr)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, "--port", metavar="N", help="port to listen on"),
    token: Optional[str] = typer.Option(None, "--token", metavar="TOKEN", envvar="MENTOR_SERVE_TOKEN",
                                        help="require 'Authorization: Bearer TOKEN' (also $MENTOR_SERVE_TOKEN)"),
    model: list[str] = typer.Option(None, "--model", metavar="NAME=SPEC", help="serve another model too: NAME=SPEC (best, base, round:N, adapter dir)"),
    max_request_bytes: int = typer.Option(1_000_000, "--max-request-bytes", metavar="N", help="refuse larger request bodies (413)"),
    max_batch: int = typer.Option(16, "--max-batch", metavar="N", help="most questions the model answers in one batch"),
    max_wait_ms: float = typer.Option(10.0, "--max-wait-ms", metavar="MS", help="how long a batch waits for more questions"),
    run_ref: str = RUN, adapter: Optional[Path] = ADAPTER, untuned: bool = UNTUNED,
    task: Optional[str] = TASK, student: Optional[str] = STUDENT,
    home: Optional[str] = HOME,
) -> None:
    """Serve the student over HTTP: OpenAI-compatible /v1/chat/completions and /v1/models, /v1/review, /v1/feedback."""
    import logging

    from mentor.review import ReviewError
    from mentor.server import build_server, parse_models
    from mentor.store import StoreError

    if adapter is not None and untuned:
        raise ReviewError("give --adapter DIR or --untuned, not both")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        server = build_server(parse_models(list(model or []), adapter, untuned), home=home, run_ref=run_ref, task=task,
                              student=student, token=token, host=host, port=port, max_request_bytes=max_request_bytes,
                              max_batch=max_batch, max_wait=max_wait_ms / 1000)
    except StoreError as err:
        if adapter is not None or untuned or run_ref != "latest" or model:
            raise
        raise ReviewError(f"no trained model here ({str(err).split(': ')[0]}).\nServe an exported adapter: --adapter PATH "
                          f"(a folder written by `mentor export`), or the untuned model: --untuned") from None
    auth = "bearer token required" if token else "no token: anyone who can reach it may use it"
    print(f"mentor serve: {server.url} ({auth}); models: {', '.join(server.api.labels)}; "
          f"model loaded in {server.api.model_load_s:.1f} s; Ctrl-C stops", file=sys.stderr)
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
    run_arg: Optional[str] = typer.Argument(None, metavar="[RUN]", help="run id or 'latest' (same as --run)", show_default=False),
    run_ref: Optional[str] = typer.Option(None, "--run", metavar="ID|latest", help="run id or 'latest' [default: latest]"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="DIR", help="folder to export into [default: HOME/export/run-N]"),
    old_output: Optional[Path] = typer.Option(None, "--out", hidden=True),  # the old spelling, kept for a release
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="adapter (and served model) name [default: mentor-runN]"),
    merged: bool = typer.Option(False, "--merged", help="also write the base model with the adapter merged in"),
    base_model: Optional[str] = typer.Option(None, "--base-model", metavar="MODEL", help="base model id the engines load [default: the run's]"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as one JSON object instead of the commands"),
    home: Optional[str] = HOME,
) -> None:
    """Export a run's best adapter for vLLM (--lora-modules), NVIDIA NIM (NIM_PEFT_SOURCE) and `mentor review --adapter`."""
    import json

    from mentor.export import export_run, serving_commands

    run = _one(run_ref, run_arg, "--run (or the positional RUN)") or "latest"
    folder = _one(output, old_output, "-o/--output (or the old --out)")
    result = export_run(home, str(run), Path(folder) if folder is not None else None, name, merged, base_model)
    print(f"adapter {result.name} -> {result.adapter}" + (f"; merged model -> {result.merged}" if result.merged else ""),
          file=sys.stderr)
    if as_json:
        print(json.dumps({"name": result.name, "adapter": str(result.adapter.resolve()), "root": str(result.root.resolve()),
                          "base_model": result.base_model, "rank": result.rank,
                          "merged": str(result.merged.resolve()) if result.merged else None}, indent=2))
        return
    out.print(serving_commands(result), markup=False, highlight=False)
