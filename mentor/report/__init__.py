"""`mentor report RUN`: one self-contained HTML page about a run, with its charts as PNG files beside it.

It shows what the store holds: per-round holdout scores and proficiency, confusion matrices of round 0
and the best round, the latest `mentor eval` comparison, the explanation preferences from `mentor judge`
(mentor.report.judging: with position bias, two judges' agreement and examples side by side),
the curriculum per round by class and source, the teacher's feedback, tokens, cost and time, and the learning curves of every `mentor study` the
run belongs to. Classical baselines (mentor.baselines) in a comparison are shaded reference rows and dotted
reference lines. A section whose data is missing says which command fills it. matplotlib is imported only here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mentor.report import charts
from mentor.report.data import gather
from mentor.report.judging import preference_section
from mentor.report.page import esc, image, note, num, page, pair, section, table, with_ci
from mentor.store import Store


def build_report(store: Store, run_id: int, out_dir: Path) -> Path:
    """Write report.html and the charts (PNG) into out_dir; returns the HTML file's path."""
    data = gather(store, run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs: dict[str, bytes] = {}

    def chart(name: str, png: bytes, alt: str) -> str:
        pngs[name] = png
        (out_dir / name).write_bytes(png)
        return image(png, alt)

    run = data["run"]
    sections = [_progress(data, chart), _confusion(data, chart), _models(data, run_id, chart), preference_section(data, run_id, chart),
                _curriculum(data, chart), _feedback(data), _costs(data, chart), *_studies(store, run_id, chart)]
    config = run["config"]
    stats = data["overview"]["stats"] or {}
    header = (f"<h1>mentor run {run['id']}: {esc(run['task'])}</h1>"
              f"<p class=\"meta\">created {esc(run['created'])}; {esc(run['status'])}"
              f"{', ' + esc(run['stop_reason']) if run['stop_reason'] else ''}; teacher <code>{esc(config['teacher']['name'])}</code>, "
              f"student <code>{esc(config['student']['model'])}</code>; holdout {esc(stats.get('holdout', '?'))} items, "
              f"pool {esc(stats.get('pool', '?'))} items</p>" + _headline(data))
    footer = f"written by mentor on {esc(time.strftime('%Y-%m-%d %H:%M'))} from {esc(store.path)}; charts also saved beside this file."
    path = out_dir / "report.html"
    path.write_text(page(f"mentor run {run['id']} report", header, sections, footer), encoding="utf-8")
    return path


def _headline(data: dict[str, Any]) -> str:
    rounds = {r["round"]: r for r in data["rounds"]}
    best = data["best_round"]
    if 0 not in rounds or rounds[0]["macro_f1"] is None:
        return ""
    base = rounds[0]
    if best is None or best not in rounds:
        return f'<p class="headline">The run has no best round yet; the untuned student scored macro-F1 {num(base["macro_f1"])}.</p>'
    top = rounds[best]
    ci = (top.get("ci") or {}).get("macro_f1")
    if best == 0:
        text = (f"No fine-tuned round beat the untuned student: its holdout macro-F1 {with_ci(base['macro_f1'], ci)} "
                "stays the run's result.")
    else:
        text = (f"Best round {best}: holdout macro-F1 {with_ci(top['macro_f1'], ci)} and accuracy {num(top['accuracy'])}, "
                f"against {num(base['macro_f1'])} and {num(base['accuracy'])} for the untuned student (round 0).")
    return f'<p class="headline">{text} <small>(95% bootstrap interval in brackets)</small></p>'


def _progress(data: dict[str, Any], chart) -> str:
    rows, classes = [], []
    for r in data["rounds"]:
        ci = r.get("ci") or {}
        cur = r["curriculum"] or {}
        rows.append([f"{r['round']}{' *' if r['best'] else ''}", num(r["proficiency"], "d"), with_ci(r["accuracy"], ci.get("accuracy")),
                     with_ci(r["macro_f1"], ci.get("macro_f1")), num(r["qwk"]), num(r["critical_recall"]), num(r["within_one"]),
                     num(r["unparseable"], "d"), num(cur.get("accepted"), "d"), num(r["trained_on"], "d"), num(r["final_loss"])])
        classes.append("best" if r["best"] else "")
    head = ["round", "proficiency", "accuracy", "macro-F1", "QWK", "critical recall", "within one", "unparsed",
            "new examples", "trained on", "loss"]
    return section("progress", "Progress per round",
                   chart("progress.png", charts.progress_chart(data["rounds"], data["best_round"]),
                         "holdout accuracy and macro-F1 per round with the teacher's proficiency"),
                   table(head, rows, row_classes=classes),
                   note("* best round: its adapter is the run's result. Round 0 is the untuned student. QWK: "
                        "quadratic-weighted kappa over the ordered labels; within one: answers at most one level off."))


def _confusion(data: dict[str, Any], chart) -> str:
    if not data["confusions"]:
        return section("confusion", "Confusion matrices", note("This task has no label set, so there is no confusion matrix."))
    return section("confusion", "Confusion matrices on the holdout",
                   chart("confusion.png", charts.confusion_chart(data["confusions"]), "confusion matrices of round 0 and the best round"))


def _models(data: dict[str, Any], run_id: int, chart) -> str:
    comparison = data["comparison"]
    if not comparison:
        return section("models", "Model comparison", note(
            f"No comparison saved yet: run <code>mentor eval --run {run_id} --data FILE --models best,tfidf,embed,majority</code> "
            "(add <code>openai:MODEL</code> for a hosted model)."))
    result = comparison["result"]
    rows = [[esc(s["system"]), esc(_trained_on(s)), with_ci(s["accuracy"], (s.get("ci") or {}).get("accuracy")),
             with_ci(s["macro_f1"], (s.get("ci") or {}).get("macro_f1")), num(s.get("qwk")), num(s.get("critical_recall")),
             num(s.get("within_one")), num(s["unparseable"], "d"), num((s.get("latency_s") or {}).get("median"), ".4f"),
             num((s.get("latency_s") or {}).get("p95"), ".4f"), num(s.get("throughput_per_s"), ".1f"), num(s.get("cost_per_1k"), ".4f")]
            for s in result["systems"]]
    references = [s for s in result["systems"] if s.get("kind") in charts.BASELINE_KINDS]
    classes = ["reference" if s.get("kind") in charts.BASELINE_KINDS else "" for s in result["systems"]]
    head = ["system", "trained on", "accuracy", "macro-F1", "QWK", "critical recall", "within one", "unparsed", "s/item median",
            "s/item p95", "items/s", "cost per 1k"]
    return section("models", "Model comparison",
                   chart("models.png", charts.models_chart(result), "accuracy and macro-F1 per system"),
                   table(head, rows, text_columns={0, 1}, row_classes=classes),
                   _reference_note(result, references, run_id),
                   note(f"Data: <code>{esc(comparison['data'])}</code>, {result['n']} items, saved {esc(comparison['created'])} "
                        "by <code>mentor eval</code>. Cost is per 1,000 items (0 for local models)."))


def _trained_on(system: dict[str, Any]) -> str:
    """A baseline's training: items, where from, near-twins left out, the cross-validated C."""
    training = system.get("training")
    if not training:
        return ""
    parts = [f"{training['items']} ex." + (f" of {training['source']}" if training.get("source") else "")]
    if training.get("left_out_near_evaluated") is not None:
        parts.append(f"{training['left_out_near_evaluated']} near evaluated left out")
    if training.get("C") is not None:
        parts.append(f"C={training['C']:g}" + (f" ({training['cv_folds']}-fold CV)" if training.get("cv_folds") else ""))
    if training.get("label"):
        parts.append(f"always {training['label']}")
    return "; ".join(parts)


def _reference_note(result: dict[str, Any], references: list[dict[str, Any]], run_id: int) -> str:
    """The reference rows' meaning and the strongest baseline against the first system."""
    if not references:
        return note(f"No classical baseline in this comparison: add <code>tfidf,embed,majority</code> (or their "
                    f"<code>:all</code> variants) to <code>mentor eval --run {run_id} --models</code> as reference lines.")
    strongest = max(references, key=lambda s: s["macro_f1"])
    first = result["systems"][0]
    against = ""
    if strongest is not first and strongest.get("vs_first"):
        v = strongest["vs_first"]
        against = (f" Against {esc(first['system'])}: {v['macro_f1_diff']:+.3f} macro-F1 "
                   f"[{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}], higher in {v['share_higher']:.0%} of paired resamples.")
    return note(f"Shaded rows and dotted lines are classical baselines (reference lines): tfidf, embed (all-MiniLM-L6-v2 "
                f"sentence embeddings) and majority, trained on the run's curriculum up to its best round, or with "
                f"<code>:all</code> on its whole labelled data source less the evaluated items' near-twins. The strongest "
                f"here is {esc(strongest['system'])} (macro-F1 {strongest['macro_f1']:.3f}).{against}")


def _curriculum(data: dict[str, Any], chart) -> str:
    cur = data["curriculum"]
    if not cur["by_class"]:
        return section("curriculum", "Curriculum per round", note("No curriculum was accepted in this run."))
    statuses = [[str(r["round"]), *(num((r["curriculum"] or {}).get(k), "d") for k in ("accepted", "invalid", "excluded", "duplicate"))]
                for r in data["rounds"] if r["curriculum"]]
    return section("curriculum", "Curriculum per round", pair(
                   chart("curriculum_class.png", charts.stacked_chart(cur["by_class"], "Accepted training examples by class",
                                                                      "examples"), "accepted curriculum per round by class"),
                   chart("curriculum_source.png", charts.stacked_chart(cur["by_source"], "Accepted training examples by source",
                                                                       "examples"), "accepted curriculum per round by source")),
                   table(["round", "accepted", "invalid", "excluded (holdout)", "duplicate"], statuses),
                   note("Every example the teacher proposed is kept in the store with its status; only accepted ones are trained on."))


def _feedback(data: dict[str, Any]) -> str:
    rows = [[str(r["round"]), num(r["proficiency"], "d"), esc(r["feedback"])] for r in data["rounds"] if r["feedback"]]
    if not rows:
        return section("feedback", "Teacher feedback", note("The teacher has not graded an exam yet."))
    return section("feedback", "Teacher feedback per round", table(["round", "proficiency", "feedback"], rows, text_columns={2}))


def _costs(data: dict[str, Any], chart) -> str:
    rows, seconds = [], {}
    for r in data["rounds"]:
        calls = r["teacher"] or {}
        seconds[r["round"]] = r["seconds"]
        rows.append([str(r["round"]), num(calls.get("calls"), "d"), num(calls.get("tokens_in"), "d"), num(calls.get("tokens_out"), "d"),
                     num(calls.get("cost"), ".4f"), *(num(r["seconds"].get(s), ".1f") for s in data["steps"]),
                     num(sum(r["seconds"].values()), ".1f")])
    head = ["round", "teacher calls", "tokens in", "tokens out", "cost", *(f"s {s}" for s in data["steps"]), "s total"]
    total = sum(sum(s.values()) for s in seconds.values())
    return section("costs", "Tokens, cost and time",
                   chart("time.png", charts.stacked_chart(seconds, "Seconds per step", "seconds", list(data["steps"])),
                         "seconds per loop step per round"),
                   table(head, rows),
                   note(f"{total:.1f} s of recorded step time in all. Teacher columns are empty for the offline reference "
                        "teacher, which makes no model calls."))


def _studies(store: Store, run_id: int, chart) -> list[str]:
    """The learning curves of each study this run is part of (`mentor study`)."""
    from mentor.study import analyse

    out = []
    for study_id in store.studies_of_run(run_id):
        study = analyse(store, study_id, home=store.path.parent)
        rows = [[esc(teacher), num(p["examples"], ".0f"), f"{num(p['mean'])} [{num(p['min'], '.2f')}, {num(p['max'], '.2f')}]",
                 num(p["tfidf_mean"]), num(p.get("embed_mean"))] for teacher, curve in study["curves"].items() for p in curve]
        paired = [[esc(teacher), num(row["examples"], ".0f"), f"{row['diff']:+.3f} [{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]",
                   f"{row['share_higher']:.0%}"] for teacher, rows_ in study["paired"].items() for row in rows_]
        out.append(section(f"study-{study_id}", f"Study {study_id}: learning curves of {', '.join(study['curves'])}",
                           chart(f"study-{study_id}.png", charts.learning_curves_chart(study),
                                 "holdout macro-F1 against curriculum examples per teacher"),
                           table(["teacher", "examples", "student macro-F1, mean [min, max] over seeds", "TF-IDF, same curricula",
                                  "embed, same curricula"],
                                 rows, text_columns={0}),
                           table([f"teacher against {study['control']}", "examples", "paired difference [95% interval]",
                                  "ahead in"], paired, text_columns={0}) if paired else "",
                           note(f"This run is one of {len(study['runs'])} in study {study_id} (<code>mentor study --show "
                                f"{study_id}</code>); every run of a study is scored on the same {study['holdout']} holdout items.")))
    return out
