"""The `mentor` command line. Each command parses its options, calls one library function, prints.

User-facing errors (bad data, bad config, unknown run...) become a one-line CLI error here, in one place,
with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal, Optional

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
from mentor.teachers import OFFLINE, TeacherError

# Plain (click) help, not Rich markup: Rich ate every "[default: ...]" in a help text and showed switches as
# `--json <bool>`. Help is wrapped at up to 120 columns so the command list is not cut at 80.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
                  help="Fine-tune small models with a teacher-student loop; rate code-review findings.")
# CI logs and pipes get a wide console, so tables are not squeezed to 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
USER_ERRORS = (ConfigError, DataError, StoreError, TaskError, TeacherError, StudentError, FileNotFoundError, PermissionError,
               ReviewError, JudgeError, LLMError)

HOME = typer.Option(None, "--home", envvar="MENTOR_HOME", metavar="DIR",
                    help="folder of the store and adapters [default: ./.mentor]")
SHELLS = ("bash", "zsh", "fish", "powershell")
# How `mentor show` names a reference teacher's label split (the weakness weights need no words).
_LABEL_QUOTA_WORDS = {"source": ", labels in the data source's proportions",
                      "tempered": ", labels by the square root of the data source's counts"}
# The environment variable the completion scripts set when they ask `mentor` for completions.
COMPLETE_VAR = "_MENTOR_COMPLETE"


def check_run_ref(value: Optional[str]) -> Optional[str]:
    """A run is chosen the same way in every command: its id, or 'latest'. Checked while parsing, so a typo is a
    usage error (exit 2) before anything is opened."""
    if value is not None and value != "latest" and not value.isdigit():
        raise typer.BadParameter(f"{value!r} is not a run: give a run id (see `mentor runs`) or 'latest'")
    return value


def run_option(help: str = "the run: its id (see `mentor runs`) or 'latest' [default: latest]") -> Any:
    """`--run ID|latest`, the one spelling of 'which run' (default: none given, the caller picks 'latest')."""
    return typer.Option(None, "--run", metavar="ID|latest", callback=check_run_ref, help=help)


def run_argument() -> Any:
    """The positional run of show/judge/report, kept beside `--run` (both mean the same)."""
    return typer.Argument(None, metavar="[RUN]", callback=check_run_ref, show_default=False,
                          help="run id or 'latest' (the same as --run)")


def hidden(name: str, default: Any = None, **kwargs: Any) -> Any:
    """An old spelling of an option, still accepted for a release but no longer shown in help."""
    return typer.Option(default, name, hidden=True, **kwargs)


def either(ctx: typer.Context, value: Any, old: Any, name: str, old_name: str) -> Any:
    """The value given under an option's name or under its old spelling (or positionally); both at once, with
    different values, is a usage error rather than a silent choice."""
    if value is not None and old is not None and value != old:
        raise typer.BadParameter(f"{old_name} is another spelling of {name}: give one of them", ctx=ctx,
                                 param_hint=f"'{name}'")
    return value if value is not None else old


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


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
    ctx: typer.Context,
    overrides: list[str] = typer.Argument(None, metavar="[KEY=VALUE]...", show_default=False,
                                          help="dotted config overrides, e.g. student.epochs=1 loop.patience=1"),
    config: Optional[str] = typer.Option(None, "--config", metavar="FILE|RECIPE",
                                         help="TOML config file, or a recipe's name (large-data)"),
    data: Optional[str] = typer.Option(None, "--data", metavar="FILE",
                                       help="the teacher's data source (JSONL) [default: bundled pool]"),
    holdout: Optional[str] = typer.Option(None, "--holdout", metavar="FILE",
                                          help="frozen held-out set (JSONL) [default: bundled holdout]"),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="most fine-tuning rounds [default: 3]"),
    task: Optional[str] = typer.Option(None, "--task", metavar="NAME|FILE",
                                       help="built-in task (severity, explain) or a task .toml file [default: severity]"),
    teacher: Optional[str] = typer.Option(None, "--teacher", metavar="NAME",
                                          help=f"{', '.join(OFFLINE)} or openai:MODEL [default: reference]"),
    student: Optional[str] = typer.Option(None, "--student", metavar="MODEL",
                                          help="bundled, a Hugging Face model folder or hub id, openai:MODEL or "
                                               "scripted [default: bundled]"),
    resume: bool = typer.Option(False, "--resume", help="resume a run after its last completed step (--run chooses "
                                                        "which; default: the latest)"),
    run_ref: Optional[str] = run_option("with --resume: the run to resume, its id or 'latest' [default: latest]"),
    old_run_id: Optional[str] = hidden("--run-id", callback=check_run_ref),
    help_config: bool = typer.Option(False, "--help-config", help="list every config key with its default and exit"),
    as_json: bool = typer.Option(False, "--json", help="print the finished run as one JSON object (as `mentor show "
                                                       "--json`) instead of the table"),
    home: Optional[str] = HOME,
) -> None:
    """Run the teacher-student loop: baseline, then exam, grade, curriculum, fine-tune, evaluate per round."""
    from mentor.runner import configure, open_store, resume_run, start_run
    from mentor.summary import round_table, run_overview

    if help_config:
        for key, default, text in describe(RunConfig):
            out.print(f"[bold]{key}[/] = {escape(repr(default))}\n    {escape(text)}", highlight=False)
        return
    ref = either(ctx, run_ref, old_run_id, "--run", "--run-id")
    if ref is not None and not resume:
        raise typer.BadParameter("--run chooses the run to resume: add --resume (a new run gets the next id)", ctx=ctx,
                                 param_hint="'--run'")
    if resume:
        result = resume_run(None if ref in (None, "latest") else int(ref), home)
    else:
        flags = {"data.pool": data, "data.holdout": holdout, "loop.rounds": rounds, "task": task,
                 "teacher.name": teacher, "student.model": student}
        extra = [f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in flags.items() if v is not None]
        result = start_run(configure(config, list(overrides or []) + extra, home), home)
    store = open_store(home)
    overview = run_overview(store, result["run_id"])
    if as_json:
        print_json(overview)
        return
    out.print(round_table(overview))
    best = store.rounds(result["run_id"])[result["best_round"]]
    out.print(f"best round {result['best_round']}: adapter {best['adapter'] or '(untuned base model)'}")


@app.command("runs")
def list_runs(as_json: bool = typer.Option(False, "--json", help="print a JSON list, one object per run"),
              home: Optional[str] = HOME) -> None:
    """List the runs in the store."""
    from rich.table import Table

    from mentor.runner import open_store

    runs = open_store(home).runs()
    if as_json:
        print_json(runs)
        return
    table = Table()
    for name in ("run", "created", "task", "status", "best round", "stop reason"):
        table.add_column(name)
    for r in runs:
        table.add_row(str(r["id"]), r["created"], r["task"], r["status"], str(r["best_round"] if r["best_round"] is not None else "-"),
                      r["stop_reason"] or "")
    out.print(table)


@app.command()
def show(ctx: typer.Context,
         run_arg: Optional[str] = run_argument(),
         run_ref: Optional[str] = run_option(),
         as_json: bool = typer.Option(False, "--json", help="print one JSON object (its keys: docs/cli.md)"),
         home: Optional[str] = HOME) -> None:
    """Per-round table of a run, with the teacher's feedback."""
    from mentor.runner import open_store
    from mentor.summary import round_table, run_overview

    store = open_store(home)
    overview = run_overview(store, _run_id(store, either(ctx, run_ref, run_arg, "--run", "RUN") or "latest"))
    if as_json:
        print_json(overview)
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
                    + (f", {aim['inconsistent']} not targeted or re-taught (their neighbours' labels disagree)"
                       if aim.get("inconsistent") else "")
                    + f", {aim['explore']:.0%} explored at random"
                    + _LABEL_QUOTA_WORDS.get(aim.get("label_quota"), ""))
                out.print(f"  targeting: {how}", highlight=False)
        if fit := r["calibration"]:
            offsets = ", ".join(f"{label} {value:+.1f}" for label, value in fit["offsets"].items())
            out.print(f"  calibration: macro-F1 on {fit['items']} calibration items {fit['macro_f1_before']:.3f} -> "
                      f"{fit['macro_f1_after']:.3f} (offsets {offsets})", highlight=False)


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", metavar="FILE", help="JSONL file in the task's format"),
    models: Optional[str] = typer.Option(None, "--models", metavar="A,B,...", help="systems to compare, comma-separated: base, best, "
                                         "round:N, tfidf, embed, majority (baselines on the run's curriculum), "
                                         "tfidf:all, embed:all, majority:all (on its whole data source), "
                                         "tfidf:calibrated, openai:MODEL, an adapter directory, or A+B (their label "
                                         "probabilities averaged, e.g. best+embed)"),
    run_ref: Optional[str] = run_option("the run whose adapters are scored (best, round:N): its id or 'latest' "
                                        "[default: latest]"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", metavar="DIR", help="score this adapter directory instead"),
    untuned: bool = typer.Option(False, "--untuned", help="score the untuned base model"),
    old_base: bool = hidden("--base", False),  # `--base` names a git ref in `mentor review`; here it meant --untuned
    task: Optional[str] = typer.Option(None, "--task", metavar="NAME|FILE",
                                       help="severity, explain or a task .toml file [default: the run's task, else "
                                            "severity]"),
    student: Optional[str] = typer.Option(None, "--student", metavar="MODEL", help="student model [default: the run's]"),
    limit: int = typer.Option(0, "--limit", min=0, help="score at most this many items (stratified by label; 0 = all)"),
    latency: int = typer.Option(0, "--latency", min=0, metavar="N",
                                help="also time N items as one-item requests, the model loaded: latency is then what one "
                                     "finding costs (0 = latency is each batch's time divided by its size)"),
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

    untuned = untuned or old_base
    if models and (adapter or untuned):
        raise StudentError("--models already names the systems: drop --adapter/--untuned (use 'base' or a directory "
                           "in --models)")
    specs = models.split(",") if models else [str(adapter) if adapter else "base" if untuned else "best"]
    if adapter is not None and not adapter.is_dir():
        raise FileNotFoundError(f"--adapter {adapter}: no such adapter directory")
    ctx_run = run_context(home, run_ref or "latest", need_run=needs_run(specs), task=task, student=student)
    examples = stratified_sample(ctx_run.task, load_examples(data, ctx_run.task), limit, ctx_run.config.seed)
    targets = resolve_systems(ctx_run, specs)
    result = compare(targets, examples, str(data), progress, latency_items=latency)
    if ctx_run.run_id is not None:
        ctx_run.store.save_evaluation(ctx_run.run_id, "eval", str(data), result)
    single = result["systems"][0] if len(result["systems"]) == 1 else None
    if as_json:
        print_json(single or result)
        return
    # One system: its headline row, then per class and confusion; several: headlines and F1 per class.
    tables = comparison_table(result)[:1] + metrics_table(single, "")[1:] if single else comparison_table(result)
    for table in tables:
        out.print(table)


@app.command("completion")
def completion_cmd(shell: Literal[SHELLS] = typer.Argument(..., metavar="SHELL", help="the shell to complete in")) -> None:
    """Print the shell completion script for bash, zsh, fish or powershell.

    bash: `mentor completion bash > ~/.local/share/bash-completion/completions/mentor`; zsh: `eval "$(mentor completion
    zsh)"` in ~/.zshrc; fish: `mentor completion fish > ~/.config/fish/completions/mentor.fish`."""
    from typer.completion import get_completion_script

    print(get_completion_script(prog_name="mentor", complete_var=COMPLETE_VAR, shell=shell))


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
    # transformers 5 deprecates a question PEFT and sentence-transformers still ask; users can do nothing about it.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    if os.environ.get(COMPLETE_VAR):  # a completion script asking for completions (see `mentor completion`)
        from typer.completion import completion_init

        completion_init()
    try:
        # Without standalone mode click returns (not raises) a command's exit code: pass it on.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except USER_ERRORS as err:
        # Not wrapped to the terminal: one line per problem, whole in CI logs and for grep. Messages quote logs: no markup.
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {escape(str(err))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True, soft_wrap=True).print("interrupted: every completed step is saved; continue with "
                                                   "`mentor run --resume`")
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

    message = err.format_message().replace(": Value error, ", ": ")  # typer's choice check words it like pydantic
    ctx = getattr(err, "ctx", None)
    where = ctx.command_path if ctx is not None else "mentor"
    if message.startswith("No such command") and "Did you mean" not in message:
        name = message.split("'")[1] if "'" in message else ""
        commands = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
        commands += [g.name for g in app.registered_groups if g.name]
        close = difflib.get_close_matches(name, commands, n=1)
        message += f" Did you mean '{close[0]}'?" if close else f" Commands: {', '.join(sorted(commands))}."
    console = Console(stderr=True, soft_wrap=True)
    console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    console.print(f"see '{escape(where)} -h'", highlight=False)
    sys.exit(2 if getattr(err, "exit_code", 2) in (1, 2) else err.exit_code)
