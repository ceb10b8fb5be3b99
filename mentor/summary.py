"""Plain-text views of runs and evaluations for terminals and CI logs (rich tables, no colour needed)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from mentor import explanations
from mentor.store import Store

STEPS = ("probe", "exam", "answer", "grade", "curriculum", "finetune", "calibrate", "evaluate")


def run_overview(store: Store, run_id: int) -> dict[str, Any]:
    """What `mentor show` prints, and its --json output: the run, its best round, one dict per round, the data
    statistics and the resolved config."""
    run = store.run(run_id)
    seconds = store.step_seconds(run_id)
    calls = store.call_totals(run_id)
    rounds = []
    for row in store.rounds(run_id):
        r = row["round"]
        metrics = row["metrics"] or {}
        stats = row["stats"] or {}
        rounds.append({
            "round": r,
            "proficiency": row["proficiency"],
            "accuracy": metrics.get("accuracy"),
            "macro_f1": metrics.get("macro_f1"),
            "unparseable": metrics.get("unparseable"),
            "explanation_similarity": (metrics.get("explanation") or {}).get("similarity"),
            "criterion_value": metrics.get("selection"),
            "compute": metrics.get("compute"),
            "exam_questions": stats.get("exam_questions"),
            "curriculum": stats.get("curriculum"),
            "trained_on": (row["train"] or {}).get("examples"),
            "final_loss": (row["train"] or {}).get("final_loss"),
            "calibration": stats.get("calibration") if r else None,  # offsets fitted after fine-tuning
            "targeting": (row["grade_detail"] or {}).get("targeting"),
            "seconds": {s: round(seconds[(r, s)], 1) for s in STEPS if (r, s) in seconds},
            "teacher": calls.get(r),
            "teacher_vetting": (row["grade_detail"] or {}).get("vetting"),
            "feedback": row["feedback"],
            "adapter": row["adapter"],
            "best": run["best_round"] == r,
        })
    best = next((r for r in rounds if r["best"]), None)
    loop = (run["config"] or {}).get("loop", {})
    explained = next((row["metrics"]["explanation"]["items"] for row in store.rounds(run_id)
                      if (row["metrics"] or {}).get("explanation")), 0)
    criterion = explanations.criterion(loop.get("metric", "macro_f1"), loop.get("explanation_weight", 0.0), explained,
                                       bool(explained))
    # The top-level keys are a scripting interface (`mentor show --json`, docs/cli.md): add keys, never rename them.
    return {"run": run["id"], "created": run["created"], "task": run["task"], "status": run["status"],
            "stop_reason": run["stop_reason"], "best_round": run["best_round"], "criterion": criterion,
            "best": {key: best[key] for key in ("round", "accuracy", "macro_f1", "adapter")} if best else None,
            "rounds": rounds, "stats": (store.rounds(run_id)[0]["stats"] if rounds else None), "config": run["config"]}


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def round_table(overview: dict[str, Any]) -> Table:
    table = Table(title=f"run {overview['run']} ({overview['task']}): {overview['status']}"
                        + (f", {overview['stop_reason']}" if overview["stop_reason"] else ""))
    hosted = any(r["teacher"] for r in overview["rounds"])  # a hosted teacher's calls: tokens, cost, latency
    calibrated = any("calibrate" in r["seconds"] for r in overview["rounds"])
    probed = any("probe" in r["seconds"] for r in overview["rounds"])
    explained = any(r["explanation_similarity"] is not None for r in overview["rounds"])
    for name in ("round", "proficiency", "holdout acc", "macro-F1") + (("expl. sim", "criterion") if explained else ()) + ("exam", "new ex.", "trained on", "loss") \
            + (("s probe",) if probed else ()) + ("s exam", "s answer", "s grade", "s finetune") + (("s calib",) if calibrated else ()) + ("s eval",) \
            + (TEACHER_COLUMNS if hosted else ()):
        table.add_column(name, justify="right")
    for r in overview["rounds"]:
        sec = r["seconds"]
        accepted = (r["curriculum"] or {}).get("accepted")
        table.add_row(f"{r['round']}{' *' if r['best'] else ''}", _fmt(r["proficiency"], "d"), _fmt(r["accuracy"]),
                      _fmt(r["macro_f1"]),
                      *((_fmt(r["explanation_similarity"]), _fmt(r["criterion_value"])) if explained else ()),
                      _fmt(r["exam_questions"], "d"), _fmt(accepted, "d"), _fmt(r["trained_on"], "d"),
                      _fmt(r["final_loss"], ".3f"), *((_fmt(sec.get("probe"), ".1f"),) if probed else ()),
                      _fmt(sec.get("exam"), ".1f"), _fmt(sec.get("answer"), ".1f"),
                      _fmt(sec.get("grade"), ".1f"), _fmt(sec.get("finetune"), ".1f"),
                      *((_fmt(sec.get("calibrate"), ".1f"),) if calibrated else ()), _fmt(sec.get("evaluate"), ".1f"),
                      *(_teacher_cells(r["teacher"]) if hosted else ()))
    table.caption = f"* best round (its adapter is the run's result), picked by {overview['criterion']}"
    if hosted:
        table.caption += "; k tok, cost $, s teach: the hosted teacher's tokens (thousands), USD and reply seconds"
    computed = {r["round"]: r["compute"] for r in overview["rounds"] if r.get("compute")}
    if len(set(computed.values())) == 1:
        table.caption += f"; the student computed in {next(iter(computed.values()))}"
    elif computed:  # rounds resumed on another machine
        table.caption += "; the student computed in " + ", ".join(f"{c} (round {r})" for r, c in computed.items())
    return table


TEACHER_COLUMNS = ("k tok", "cost $", "s teach")


def _teacher_cells(totals: dict[str, Any] | None) -> list[str]:
    """Thousands of tokens (in + out; `--json` has them apart), USD, and summed reply seconds."""
    if not totals:
        return ["-"] * len(TEACHER_COLUMNS)
    tokens = (totals["tokens_in"] or 0) + (totals["tokens_out"] or 0)
    return [f"{tokens / 1000:.1f}", _fmt(totals["cost"] or 0.0, ".3f"), _fmt(totals["seconds"] or 0.0, ".1f")]


def metrics_table(report: dict[str, Any], title: str) -> list[Table]:
    head = Table(title=title)
    for name in ("n", "accuracy", "macro-F1", "unparseable"):
        head.add_column(name, justify="right")
    head.add_row(str(report["n"]), _fmt(report["accuracy"]), _fmt(report["macro_f1"]), str(report["unparseable"]))
    tables = [head]
    if report["per_class"]:
        per = Table(title="per class")
        for name in ("label", "precision", "recall", "F1", "support"):
            per.add_column(name, justify="right")
        for label, m in report["per_class"].items():
            per.add_row(label, _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]), str(m["support"]))
        confusion = Table(title="confusion (rows: truth, columns: prediction)")
        columns = list(report["per_class"]) + ["(unparseable)"]
        confusion.add_column("")
        for c in columns:
            confusion.add_column(c, justify="right")
        for truth in report["per_class"]:
            row = report["confusion"].get(truth, {})
            confusion.add_row(truth, *[str(row.get(c, 0)) for c in columns])
        tables += [per, confusion]
    return tables


def _with_ci(value: Any, ci: list[float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{value:.3f}"


def comparison_table(result: dict[str, Any]) -> list[Table]:
    """`mentor eval` over one or more systems: headline figures with 95% intervals, then F1 per class."""
    lat0 = (result["systems"][0].get("latency_s") or {}) if result["systems"] else {}
    timing = (f"s/item: one-item requests ({lat0['items']} per system)" if lat0.get("measured") == "one item per request"
              else "s/item: batch time / batch size (--latency N times one-item requests)")
    head = Table(title=f"{result['data']} ({result['task']}, n={result['n']})",
                 caption=f"[95% bootstrap interval]; QWK: quadratic-weighted kappa; {timing}; $/1k: cost per 1,000 items")
    for name in ("system", "accuracy", "macro-F1", "QWK", "crit. recall", "within 1", "unparsed",
                 "s/item med", "s/item p95", "items/s", "$/1k"):
        head.add_column(name, justify="left" if name == "system" else "right", no_wrap=name != "system")
    labels: list[str] = []
    for s in result["systems"]:
        ci = s.get("ci") or {}
        lat = s.get("latency_s") or {}
        head.add_row(s["system"], _with_ci(s["accuracy"], ci.get("accuracy")), _with_ci(s["macro_f1"], ci.get("macro_f1")),
                     _fmt(s.get("qwk")), _fmt(s.get("critical_recall")), _fmt(s.get("within_one")), str(s["unparseable"]),
                     _fmt(lat.get("median"), ".4f"), _fmt(lat.get("p95"), ".4f"), _fmt(s.get("throughput_per_s"), ".1f"),
                     _fmt(s.get("cost_per_1k"), ".4f"))
        labels += [lab for lab in s["per_class"] if lab not in labels]
    tables = [head]
    if labels:
        per = Table(title="F1 per class (precision / recall)")
        per.add_column("system")
        for lab in labels:
            per.add_column(lab, justify="right")
        for s in result["systems"]:
            cells = []
            for lab in labels:
                m = s["per_class"].get(lab)
                cells.append(f"{m['f1']:.3f} ({m['precision']:.2f}/{m['recall']:.2f})" if m else "-")
            per.add_row(s["system"], *cells)
        tables.append(per)
    paired = [s for s in result["systems"] if s.get("vs_first")]
    if paired:
        v0 = paired[0]["vs_first"]
        first = v0["system"]
        drawn = (f"resamples of the {v0['groups']} findings (items sharing a review or code drawn together)"
                 if v0.get("unit") == "finding" else "resamples")
        diff = Table(title=f"macro-F1 against {first}, paired on the same items",
                     caption=f"[95% paired bootstrap interval]; higher in: share of {v0['resamples']} {drawn} "
                             "in which the system scores higher")
        for name in ("system", "difference", "higher in"):
            diff.add_column(name, justify="left" if name == "system" else "right")
        for s in paired:
            v = s["vs_first"]
            diff.add_row(s["system"], f"{v['macro_f1_diff']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}]", f"{v['share_higher']:.0%}")
        tables.append(diff)
    return tables


def study_tables(study: dict[str, Any]) -> list[Table]:
    """`mentor study`: learning curves per teacher, paired differences with the control, examples to reach it."""
    teachers = list(study["curves"])
    curves = Table(title=f"study {study['study']} ({study['task']}): holdout macro-F1 (n={study['holdout']}) against "
                         "examples trained", caption="mean \\[min, max] over seeds; TF-IDF, embed (all-MiniLM-L6-v2): "
                                                      "logistic regression on the same curricula, mean over seeds")
    curves.add_column("round", justify="right")
    for teacher in teachers:
        curves.add_column(f"{teacher}: examples", justify="right")
        curves.add_column(f"{teacher}: student", justify="right")
        curves.add_column(f"{teacher}: TF-IDF", justify="right")
        curves.add_column(f"{teacher}: embed", justify="right")
    short = study.get("short_runs") or []
    if short:  # a teacher's curve stops at its shortest run (the mean needs every seed)
        deepest = max(len(r["points"]) for r in study["runs"])
        curves.caption += "; cut short by " + ", ".join(
            f"run {r['run']} ({r['teacher']}, seed {r['seed']}: {r['points'] - 1} of {deepest - 1} rounds, "
            f"{'stopped early' if r['status'] == 'finished' else r['status']})" for r in short)
    depth = max((len(c) for c in study["curves"].values()), default=0)
    for k in range(depth):
        cells = []
        for teacher in teachers:
            curve = study["curves"][teacher]
            if k >= len(curve):
                cells += ["-", "-", "-", "-"]
                continue
            p = curve[k]
            cells += [f"{p['examples']:.0f}", f"{p['mean']:.3f} [{p['min']:.2f}, {p['max']:.2f}]", _fmt(p["tfidf_mean"]),
                      _fmt(p.get("embed_mean"))]
        curves.add_row(str(k), *cells)
    tables = [curves]
    if study["paired"]:
        drawn = study.get("resampled") or {"unit": "item"}
        over = f"the {drawn['groups']} findings" if drawn["unit"] == "finding" else "items"
        paired = Table(title=f"against {study['control']} at equal examples, paired on the same holdout items",
                       caption=f"difference of macro-F1, mean over seeds \\[95% bootstrap interval over {over}]; ahead in: "
                               "share of resamples where the teacher scores higher")
        for name in ("teacher", "round", "examples", "difference", "ahead in", "seeds"):
            paired.add_column(name, justify="left" if name == "teacher" else "right")
        for teacher, rows in study["paired"].items():
            for row in rows:
                paired.add_row(teacher, str(row["round"]), f"{row['examples']:.0f}",
                               f"{row['diff']:+.3f} [{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]", f"{row['share_higher']:.0%}",
                               str(row["seeds"]))
        tables.append(paired)
    if study["control_final"] is not None:
        reach = Table(title=f"examples needed to reach {study['control']}'s final mean macro-F1 ({study['control_final']:.3f})")
        reach.add_column("teacher")
        reach.add_column("examples", justify="right")
        reach.add_column("share of the control's", justify="right")
        control_examples = (study["curves"][study["control"]] or [{}])[-1].get("examples")
        for teacher, needed in study["examples_to_reach"].items():
            share = f"{needed / control_examples:.0%}" if needed is not None and control_examples else "-"
            reach.add_row(teacher, "not reached" if needed is None else f"{needed:.0f}", share)
        tables.append(reach)
    return tables
