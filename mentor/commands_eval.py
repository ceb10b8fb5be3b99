"""`mentor judge` (explanations of two systems compared pairwise, in both orders) and `mentor report`
(a run's HTML report). `mentor eval` itself lives in mentor.cli."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mentor.cli import HOME, app, either, hidden, out, print_json, run_argument, run_option


@app.command("judge")
def judge_cmd(
    ctx: typer.Context,
    run_arg: Optional[str] = run_argument(),
    run_ref: Optional[str] = run_option(),
    models: Optional[str] = typer.Option(None, "--models", metavar="A,B", help="the two systems to compare: base, best, "
                                         "round:N, openai:MODEL, an adapter directory, definition (the true level's "
                                         "canned meaning) or reference (the reference explanation) [default: best,base]"),
    old_systems: Optional[str] = hidden("--systems"),
    judge: str = typer.Option("offline", "--judge", metavar="offline|consequence|openai:MODEL", help="'offline' (sentence "
                              "embeddings against the reference explanation), 'consequence' (does it name the consequence "
                              "of the true severity level) or 'openai:MODEL' (a hosted LLM judge)"),
    limit: int = typer.Option(0, "--limit", min=0, help="judge at most this many holdout items (stratified; 0 = all)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (with every item's verdicts and reasons)"),
    home: Optional[str] = HOME,
) -> None:
    """Compare two systems' explanations on the run's holdout: wins, ties, losses, preference differential, the
    judge's position bias and its agreement with a second, independent judge."""
    from mentor.compare import judge_run
    from mentor.console import progress
    from mentor.judge import make_judge
    from mentor.targets import run_context

    systems = either(ctx, models, old_systems, "--models", "--systems") or "best,base"
    pair = tuple(s.strip() for s in systems.split(",") if s.strip())
    if len(pair) != 2:
        raise typer.BadParameter(f"needs exactly two systems, 'A,B' (e.g. best,base), got {systems!r}", ctx=ctx,
                                 param_hint="'--models'")
    run = run_context(home, either(ctx, run_ref, run_arg, "--run", "RUN") or "latest", need_run=True)
    run_id = run.need_run()

    def record(**call) -> None:
        run.store.record_call(run_id, call.pop("round_no"), **call)

    result = judge_run(run, pair, make_judge(judge, recorder=record), limit, progress)
    run.store.save_evaluation(run_id, "judge", result["data"], result)
    if as_json:
        print_json(result)
        return
    for line in judge_summary(result):
        out.print(line, highlight=False)


def judge_summary(result: dict) -> list[str]:
    """The text `mentor judge` prints: the counts, the judge's position bias, its agreement with the check."""
    ci = result["ci"]
    interval = f" (95% interval {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else ""
    lines = [f"judge: {result['judge']}",
             f"{result['a']} vs {result['b']} on {result['n']} holdout items ({result['data']}), asked in both orders:",
             f"  {result['wins']} wins, {result['ties']} ties, {result['losses']} losses; preference differential "
             f"{result['differential']:+.3f}{interval}"]
    bias = result["position_bias"]
    if bias["share_first"] is None:
        lines.append("  position bias: no decisive verdict to measure it on")
    else:
        lines.append(f"  position bias: {bias['share_first']:.2f} of {bias['decisive_verdicts']} decisive verdicts chose "
                     "the explanation shown first (0.50 = none)")
    if result["order_disagreements"]:
        lines.append(f"  {result['order_disagreements']} item(s) counted as ties because the two orders disagreed")
    if result["judge_unparseable"]:
        lines.append(f"  {result['judge_unparseable']} judge repl(ies) could not be read and counted as ties")
    check, agreed = result["check"], result["agreement"]
    if "skipped" in check:
        lines.append(f"check judge {check['judge']}: not run ({check['skipped']})")
    else:
        rate = "-" if agreed["rate"] is None else f"{agreed['rate']:.2f}"
        kappa = "undefined" if agreed["kappa"] is None else f"{agreed['kappa']:+.2f}"
        lines += [f"check judge: {check['judge']}",
                  f"  its verdict: {check['wins']} wins, {check['ties']} ties, {check['losses']} losses; differential "
                  f"{check['differential']:+.3f}",
                  f"  agreement with the judge: {rate} on the {agreed['both_decisive']} item(s) where both were decisive "
                  f"({agreed['agree']} agree); Cohen's kappa {kappa} over win/tie/loss on {agreed['items']} items"]
    lines += [f"note: {note}" for note in result.get("notes", [])]
    return lines


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    run_arg: Optional[str] = run_argument(),
    run_ref: Optional[str] = run_option(),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="DIR", help="folder for report.html and its "
                                          "charts [default: HOME/runs/RUN/report]"),
    old_out: Optional[Path] = hidden("--out"),
    home: Optional[str] = HOME,
) -> None:
    """Write a run's HTML report (charts beside it, opens from disk with no network)."""
    from mentor.cli import _run_id
    from mentor.report import build_report
    from mentor.runner import home_dir, open_store

    store = open_store(home)
    run_id = _run_id(store, either(ctx, run_ref, run_arg, "--run", "RUN") or "latest")
    store.run(run_id)  # an unknown run is a user error before anything is written
    folder = either(ctx, output, old_out, "--output", "--out")
    path = build_report(store, run_id, folder or home_dir(home) / "runs" / str(run_id) / "report")
    out.print(f"wrote {path}", highlight=False)
