"""The `mentor` command line. Each command parses its options, calls one library function, prints.

User-facing errors (bad data, bad config, unknown run...) become a one-line CLI error here, in one place,
with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from mentor.config import ConfigError, RunConfig, describe
from mentor.data import DataError
from mentor.judge import JudgeError
from mentor.llm.client import LLMError
from mentor.review.diff import ReviewError
from mentor.store import StoreError
from mentor.students import StudentError
from mentor.tasks import TaskError
from mentor.teachers import TeacherError

app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Fine-tune small models with a teacher-student loop; rate code-review findings.")
# CI logs and pipes get a wide console, so tables are not squeezed to 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
USER_ERRORS = (ConfigError, DataError, StoreError, TaskError, TeacherError, StudentError, FileNotFoundError, ReviewError, JudgeError,
               LLMError)

HOME = typer.Option(None, "--home", envvar="MENTOR_HOME", help="folder of the store and adapters [default: ./.mentor]")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"mentor {version('mentor')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            print("mentor (not installed: run `pip install -e .`)")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="print mentor's version and exit")) -> None:
    """Fine-tune small models with a teacher-student loop; rate code-review findings."""


@app.command()
def run(
    overrides: list[str] = typer.Argument(None, help="dotted config overrides, e.g. student.epochs=1 loop.patience=1"),
    config: Optional[str] = typer.Option(None, "--config", help="TOML config file, or a recipe's name (large-data)"),
    data: Optional[str] = typer.Option(None, "--data", help="the teacher's data source (JSONL) [default: bundled pool]"),
    holdout: Optional[str] = typer.Option(None, "--holdout", help="frozen held-out set (JSONL) [default: bundled holdout]"),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="most fine-tuning rounds"),
    task: Optional[str] = typer.Option(None, "--task", help="built-in task name or task .toml file"),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="'reference' or 'openai:MODEL'"),
    student: Optional[str] = typer.Option(None, "--student", help="'bundled', a HF model dir or id, 'scripted'"),
    resume: bool = typer.Option(False, "--resume", help="resume the latest unfinished run (or --run-id)"),
    run_id: Optional[int] = typer.Option(None, "--run-id", help="with --resume: which run"),
    help_config: bool = typer.Option(False, "--help-config", help="list every config key with its default and exit"),
    home: Optional[str] = HOME,
) -> None:
    """Run the teacher-student loop: baseline, then exam, grade, curriculum, fine-tune, evaluate per round."""
    from mentor.runner import configure, open_store, resume_run, start_run
    from mentor.summary import round_table, run_overview

    if help_config:
        for key, default, text in describe(RunConfig):
            out.print(f"[bold]{key}[/] = {default!r}\n    {text}", highlight=False)
        return
    if resume:
        result = resume_run(run_id, home)
    else:
        flags = {"data.pool": data, "data.holdout": holdout, "loop.rounds": rounds, "task": task,
                 "teacher.name": teacher, "student.model": student}
        extra = [f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in flags.items() if v is not None]
        result = start_run(configure(config, list(overrides or []) + extra, home), home)
    store = open_store(home)
    out.print(round_table(run_overview(store, result["run_id"])))
    best = store.rounds(result["run_id"])[result["best_round"]]
    out.print(f"best round {result['best_round']}: adapter {best['adapter'] or '(untuned base model)'}")


@app.command("runs")
def list_runs(home: Optional[str] = HOME) -> None:
    """List the runs in the store."""
    from rich.table import Table

    from mentor.runner import open_store

    table = Table()
    for name in ("run", "created", "task", "status", "best round", "stop reason"):
        table.add_column(name)
    for r in open_store(home).runs():
        table.add_row(str(r["id"]), r["created"], r["task"], r["status"], str(r["best_round"] if r["best_round"] is not None else "-"),
                      r["stop_reason"] or "")
    out.print(table)


@app.command()
def show(run_ref: str = typer.Argument("latest", help="run id or 'latest'"),
         as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
         home: Optional[str] = HOME) -> None:
    """Per-round table of a run, with the teacher's feedback."""
    from mentor.runner import open_store
    from mentor.summary import round_table, run_overview

    store = open_store(home)
    overview = run_overview(store, _run_id(store, run_ref))
    if as_json:
        print(json.dumps(overview, indent=2))
        return
    out.print(round_table(overview))
    stats = overview["stats"] or {}
    if stats:
        out.print(f"pool {stats.get('pool')} items, holdout {stats.get('holdout')} items, "
                  f"{stats.get('pool_excluded_as_holdout', 0)} pool item(s) excluded as holdout duplicates"
                  + (f", {stats['calibration']} set aside for calibration" if stats.get("calibration") else ""))
    for r in overview["rounds"]:
        if r["feedback"]:
            cur = r["curriculum"] or {}
            out.print(f"\n[bold]round {r['round']}[/] teacher: {r['feedback']}", highlight=False)
            out.print(f"  curriculum: {cur.get('accepted', 0)} accepted, {cur.get('excluded', 0)} excluded (holdout), "
                      f"{cur.get('duplicate', 0)} duplicate, {cur.get('invalid', 0)} invalid", highlight=False)
            if aim := r["targeting"]:
                how = "drawn at random (the control)" if aim.get("random") else (
                    f"aimed by {' and '.join(aim['signals']) or 'label only'}"
                    + (f" ({aim['probed']} pool items probed in {r['seconds'].get('probe', 0):.0f} s)" if aim.get("probed") else "")
                    + f", {aim['explore']:.0%} explored at random"
                    + (", labels in the data source's proportions" if aim.get("label_quota") == "source" else ""))
                out.print(f"  targeting: {how}", highlight=False)
        if fit := r["calibration"]:
            offsets = ", ".join(f"{label} {value:+.1f}" for label, value in fit["offsets"].items())
            out.print(f"  calibration: macro-F1 on {fit['items']} calibration items {fit['macro_f1_before']:.3f} -> "
                      f"{fit['macro_f1_after']:.3f} (offsets {offsets})", highlight=False)


@app.command("eval")
def eval_cmd(
    data: Path = typer.Option(..., "--data", help="JSONL file in the task's format"),
    models: Optional[str] = typer.Option(None, "--models", help="systems to compare, comma-separated: base, best, "
                                         "round:N, tfidf, tfidf:calibrated, openai:MODEL or an adapter directory"),
    run_ref: str = typer.Option("latest", "--run", help="run id or 'latest': its best adapter is scored"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="score this adapter directory instead"),
    base: bool = typer.Option(False, "--base", help="score the untuned base model"),
    task: Optional[str] = typer.Option(None, "--task", help="task (default: the run's task, else severity)"),
    student: Optional[str] = typer.Option(None, "--student", help="student model (default: the run's)"),
    limit: int = typer.Option(0, "--limit", help="score at most this many items (stratified by label; 0 = all)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    home: Optional[str] = HOME,
) -> None:
    """Score one or more systems on a labelled JSONL file: accuracy, macro-F1 with 95% intervals, per class,
    confusion, kappa, latency, cost. Results are kept with the run for `mentor report`."""
    from mentor.compare import compare
    from mentor.console import progress
    from mentor.data import load_examples
    from mentor.evaluate import stratified_sample
    from mentor.summary import comparison_table, metrics_table
    from mentor.targets import needs_run, resolve_systems, run_context

    if models and (adapter or base):
        raise StudentError("--models already names the systems: drop --adapter/--base (use 'base' or a directory in --models)")
    specs = models.split(",") if models else [str(adapter) if adapter else "base" if base else "best"]
    if adapter is not None and not adapter.is_dir():
        raise FileNotFoundError(f"--adapter {adapter}: no such adapter directory")
    ctx = run_context(home, run_ref, need_run=needs_run(specs), task=task, student=student)
    examples = stratified_sample(ctx.task, load_examples(data, ctx.task), limit, ctx.config.seed)
    targets = resolve_systems(ctx, specs)
    result = compare(targets, examples, str(data), progress)
    if ctx.run_id is not None:
        ctx.store.save_evaluation(ctx.run_id, "eval", str(data), result)
    single = result["systems"][0] if len(result["systems"]) == 1 else None
    if as_json:
        print(json.dumps(single or result, indent=2))
        return
    # One system: its headline row, then per class and confusion; several: headlines and F1 per class.
    tables = comparison_table(result)[:1] + metrics_table(single, "")[1:] if single else comparison_table(result)
    for table in tables:
        out.print(table)


def _run_id(store, ref: str) -> int:
    if ref == "latest":
        return store.latest_run_id()
    if not ref.isdigit():
        raise StoreError(f"run must be a number or 'latest', got {ref!r}")
    return int(ref)


# Commands that live in their own modules register themselves on `app` when imported (one line each).
COMMAND_MODULES: list[str] = ["mentor.commands_review", "mentor.commands_eval", "mentor.commands_train", "mentor.commands_study"]


def main() -> None:
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    try:
        # Without standalone mode click returns (not raises) a command's exit code: pass it on.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except USER_ERRORS as err:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(err))}", highlight=False)  # messages quote logs: no markup
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: every completed step is saved; continue with `mentor run --resume`")
        sys.exit(130)
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as err:  # usage errors: from click, or from the copy of click that typer bundles
        if not _is_click_error(err):
            raise
        _usage_error(err)


def _is_click_error(err: Exception) -> bool:
    import click

    try:
        from typer._click.exceptions import ClickException as TyperClickException
    except ImportError:  # a typer that uses click itself
        TyperClickException = click.ClickException
    return isinstance(err, (click.ClickException, TyperClickException))


def _usage_error(err) -> None:  # noqa: ANN001 - a click exception of either origin
    """Two lines on stderr (what was wrong, where help is) and exit 2: a typo must not look like a failed
    `review --fail-on` gate, which exits 1."""
    import difflib

    message = err.format_message()
    ctx = getattr(err, "ctx", None)
    where = ctx.command_path if ctx is not None else "mentor"
    if message.startswith("No such command") and "Did you mean" not in message:
        name = message.split("'")[1] if "'" in message else ""
        commands = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
        commands += [g.name for g in app.registered_groups if g.name]
        close = difflib.get_close_matches(name, commands, n=1)
        message += f" Did you mean '{close[0]}'?" if close else f" Commands: {', '.join(sorted(commands))}."
    console = Console(stderr=True)
    console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    console.print(f"see '{escape(where)} -h'", highlight=False)
    sys.exit(2 if getattr(err, "exit_code", 2) in (1, 2) else err.exit_code)
