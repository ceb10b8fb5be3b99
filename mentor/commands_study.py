"""`mentor study`: several teachers and seeds on the same data, run (or resumed) and compared as learning curves."""

from __future__ import annotations

import json
from typing import Optional

import typer

from mentor.cli import HOME, app, out, print_json
from mentor.teachers import OFFLINE


@app.command("study")
def study_cmd(
    overrides: list[str] = typer.Argument(None, metavar="[KEY=VALUE]...", show_default=False,
                                          help="dotted config overrides for every run, e.g. loop.rounds=4"),
    data: Optional[str] = typer.Option(None, "--data", metavar="FILE",
                                       help="the teachers' data source (JSONL) [default: bundled pool]"),
    holdout: Optional[str] = typer.Option(None, "--holdout", metavar="FILE",
                                          help="frozen held-out set (JSONL) [default: bundled holdout]"),
    teachers: str = typer.Option("reference,random", "--teachers", metavar="A,B,...", help="comma-separated teachers to "
                                 f"compare: {', '.join(OFFLINE)}"),
    seeds: int = typer.Option(3, "--seeds", min=1, help="runs per teacher, seeds 0..N-1"),
    control: Optional[str] = typer.Option(None, "--control", metavar="TEACHER", help="the teacher the others are paired "
                                          "against [default: random when studied, else the last teacher]"),
    config: Optional[str] = typer.Option(None, "--config", metavar="FILE|RECIPE", help="TOML config file or recipe name "
                                         "for every run [default: the 'study' recipe]"),
    show: Optional[int] = typer.Option(None, "--show", metavar="STUDY", min=1,
                                       help="print study N from the store without running anything"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    home: Optional[str] = HOME,
) -> None:
    """Run the loop for each teacher and seed on the same data and holdout (stored, resumable: the same command
    again continues it), then print learning curves: macro-F1 against examples trained, paired differences with
    the control, the examples each teacher needs to reach the control's final score, and TF-IDF on each curriculum."""
    from mentor.runner import open_store
    from mentor.study import StudySpec, analyse, run_study, save
    from mentor.summary import study_tables

    if show is None:
        names = tuple(t.strip() for t in teachers.split(",") if t.strip())
        extra = [f"data.pool={json.dumps(data)}"] if data else []
        extra += [f"data.holdout={json.dumps(holdout)}"] if holdout else []
        spec = StudySpec(teachers=names, seeds=tuple(range(seeds)), config=config,
                         overrides=tuple(list(overrides or []) + extra), control=control)
        study_id = run_study(spec, home)
    else:
        study_id = show
    store = open_store(home)
    result = analyse(store, study_id, home)
    folder = save(result, home)
    if as_json:
        print_json(result)
        return
    for table in study_tables(result):
        out.print(table)
    out.print(f"chart and JSON: {folder}/learning-curves.png, {folder}/study.json", highlight=False)
