"""`mentor study`: the loop run for several teachers and seeds on the same data and holdout, as learning curves.

A study is recorded in the store with its spec (teachers, seeds, config, overrides); each (teacher, seed) is
an ordinary run, tagged with the study in the same transaction that creates it, so an interrupted study
resumes where it stopped (`mentor study` with the same arguments again). A finished run with exactly the
same resolved config (another study's control, say) is reused instead of run again: settings added since it was
stored read as the value that reproduces its behaviour, and teacher settings its teacher never reads do not count.
The analysis reads only the store:
- per teacher and round: holdout macro-F1 against the examples trained on so far (the accepted curriculum),
  mean, min and max over seeds;
- at each round, every teacher against the control (`random` when studied): the mean over seeds of the
  paired macro-F1 difference, with a bootstrap interval over holdout items (resampled once for all runs, so
  item difficulty cancels; whole findings are drawn when items share a review or code) and the share of
  resamples in which the teacher is ahead;
- the examples each teacher needs to reach the control's final mean macro-F1 (linear between rounds);
- the classical baselines trained on each run's curriculum at each round and scored on the same holdout:
  TF-IDF and sentence embeddings (all-MiniLM-L6-v2), each + logistic regression (mentor.baselines). The
  embeddings are cached in the store, so only the first analysis of a study encodes anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mentor import console
from mentor.calibration import twin_groups
from mentor.metrics import BOOTSTRAP_RESAMPLES, percentile_interval, resampled_scores, resampler
from mentor.store import Store, StoreError

STUDY_RECIPE = "study"  # the recipe under a study's settings unless --config names another


@dataclass(frozen=True)
class StudySpec:
    teachers: tuple[str, ...]
    seeds: tuple[int, ...]
    config: str | None = None
    overrides: tuple[str, ...] = ()
    control: str | None = None  # the teacher the others are paired against; default: random, else the last one

    def resolved_control(self) -> str:
        if self.control:
            return self.control
        return "random" if "random" in self.teachers else self.teachers[-1]

    def check(self) -> None:
        if len(self.teachers) < 1 or len(set(self.teachers)) != len(self.teachers):
            raise StoreError(f"--teachers needs one or more distinct teachers, got {', '.join(self.teachers) or 'none'}")
        if not self.seeds:
            raise StoreError("--seeds must be at least 1")
        if self.control and self.control not in self.teachers:
            raise StoreError(f"--control {self.control!r} is not one of the studied teachers ({', '.join(self.teachers)})")
        for item in self.overrides:
            if item.split("=", 1)[0].strip() in ("teacher.name", "seed"):
                raise StoreError(f"override {item!r}: a study sets the teacher and the seed itself (--teachers, --seeds)")


def run_study(spec: StudySpec, home: str | Path | None = None) -> int:
    """Start or resume every run of the study; returns the study's id."""
    from mentor.config import load_config, to_dict
    from mentor.runner import configure, open_store, resume_run, start_run
    from mentor.teachers import make_teacher

    spec.check()
    for teacher in spec.teachers:  # an unknown teacher fails here, before any run is written
        make_teacher(load_config(overrides=[f"teacher.name={teacher}"]).teacher, 0)
    store = open_store(home, create=True)
    key = asdict(spec)
    study_id = store.find_study(key) or store.create_study(key)
    for seed in spec.seeds:
        for teacher in spec.teachers:
            run_id = store.study_runs(study_id).get((teacher, seed))
            if run_id is not None and store.run(run_id)["status"] == "finished":
                continue
            console.log(f"study {study_id}: teacher {teacher}, seed {seed}" + (f" (run {run_id}, resuming)" if run_id else ""))
            if run_id is not None:
                resume_run(run_id, home)
                continue
            config = _every_round(configure(spec.config or STUDY_RECIPE, [*spec.overrides, f"teacher.name={teacher}",
                                                                    f"seed={seed}"], home))
            twin = _finished_twin(store, to_dict(config))
            if twin is not None:
                with store.transaction():
                    store.add_study_run(study_id, teacher, seed, twin)
                console.log(f"  run {twin} already did exactly this (same resolved config, finished): reused")
                continue

            def tag(inner: Store, new_run: int, teacher: str = teacher, seed: int = seed) -> None:
                inner.add_study_run(study_id, teacher, seed, new_run)
            start_run(config, home, on_create=tag)
    store.close()
    return study_id


def _every_round(config: Any) -> Any:
    """The run's config with early stopping off: a learning curve needs every round, and one run that stops early
    cuts every teacher's curve at its depth (patience is raised to the number of rounds, and the study says so)."""
    if config.loop.patience >= config.loop.rounds:
        return config
    console.log(f"  loop.patience {config.loop.patience} raised to loop.rounds={config.loop.rounds}: a study trains "
                "every round, so that no run's early stop cuts the learning curves short")
    return replace(config, loop=replace(config.loop, patience=config.loop.rounds))


def _finished_twin(store: Store, config: dict[str, Any]) -> int | None:
    """A finished run whose resolved config equals `config`. A stored config is read the way `mentor run
    --resume` reads it (mentor.config.stored_config: a setting added since it was stored takes the value that
    reproduces the old behaviour, so runs from before an explain-only setting existed still twin), and teacher
    settings the run's teacher never reads do not count; a stored config that no longer parses is skipped."""
    from mentor.config import ConfigError, stored_config, to_dict
    from mentor.teachers import unused_settings

    def normalised(data: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(to_dict(stored_config(data, where=""))))  # as stored: tuples become lists
        for key in unused_settings(out["teacher"]["name"]):
            del out["teacher"][key]
        return out

    wanted = normalised(config)
    for row in store.runs():
        if row["status"] != "finished":
            continue
        try:
            stored = normalised(store.run(row["id"])["config"])
        except ConfigError:
            continue
        if stored == wanted:
            return row["id"]
    return None


def analyse(store: Store, study_id: int, home: str | Path | None = None, resamples: int = BOOTSTRAP_RESAMPLES,
            encoder: Any = None) -> dict[str, Any]:
    """Learning curves, paired differences, examples-to-reach and the TF-IDF and embed baselines per point, from
    the stored runs. `encoder` (a mentor.baselines.CachedEncoder): default all-MiniLM-L6-v2 cached in `store`."""
    from mentor.baselines import CachedEncoder, train
    from mentor.config import stored_config
    from mentor.runner import holdout_of
    from mentor.tasks import get_task

    study = store.study(study_id)
    spec = StudySpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in study["spec"].items()})
    control = spec.resolved_control()
    members = store.study_runs(study_id)
    if not members:
        raise StoreError(f"study {study_id} has no runs yet: run `mentor study` with its arguments to start them")
    first = store.run(next(iter(members.values())))
    config = stored_config(first["config"], where=f"run {first['id']}'s saved config")
    task = get_task(config.task)
    if task.label_field is None:
        raise StoreError(f"study {study_id}: task {task.name!r} has no labels, so there are no macro-F1 curves to draw")
    holdout = holdout_of(config, task, home, until=first["created"])
    truths = [e.output[task.label_field] for e in holdout]
    labels = list(task.labels)
    t = np.array([labels.index(x) for x in truths])
    # Items of one finding (the same review on several snippets) are resampled together, as mentor eval does.
    score, unit, findings = resampler(labels, truths, resamples, seed=0, groups=twin_groups(task, holdout))
    encoder = encoder or CachedEncoder(store)

    def baseline_f1(kind: str, taught: list, seed: int) -> float:
        said = [a.parsed[task.label_field] for a in train(kind, task, taught, seed, encoder).answer(task, [e.input for e in holdout])]
        return float(resampled_scores(labels, t, said, np.arange(len(t))[None, :])[1][0])

    runs: list[dict[str, Any]] = []
    for (teacher, seed), run_id in sorted(members.items(), key=lambda kv: (kv[0][1], spec.teachers.index(kv[0][0]))):
        run = store.run(run_id)
        curriculum = store.curriculum(run_id)
        points = []
        for row in store.rounds(run_id):
            if not row["metrics"]:
                continue
            predictions = [a.parsed.get(task.label_field) if a.parsed else None for a, _ in store.predictions(run_id, row["round"])]
            if len(predictions) != len(truths):
                raise StoreError(f"run {run_id} round {row['round']} scored {len(predictions)} holdout items, the study's "
                                 f"holdout has {len(truths)}: its runs must share one holdout")
            taught = [e for e in curriculum if e.meta["round"] <= row["round"]]
            fitted = row["round"] > 0 and len({e.output[task.label_field] for e in taught}) > 1
            points.append({"round": row["round"], "examples": len(taught), "macro_f1": row["metrics"]["macro_f1"],
                           "accuracy": row["metrics"]["accuracy"],
                           "tfidf_macro_f1": baseline_f1("tfidf", taught, seed) if fitted else None,
                           "embed_macro_f1": baseline_f1("embed", taught, seed) if fitted else None,
                           "predictions": predictions})
        seconds = sum(store.step_seconds(run_id).values())
        runs.append({"teacher": teacher, "seed": seed, "run": run_id, "status": run["status"], "points": points,
                     "seconds": seconds})

    curves = {teacher: _curve([r for r in runs if r["teacher"] == teacher]) for teacher in spec.teachers}
    deepest = max((len(r["points"]) for r in runs), default=0)
    short = [{"teacher": r["teacher"], "seed": r["seed"], "run": r["run"], "status": r["status"], "points": len(r["points"])}
             for r in runs if len(r["points"]) < deepest]
    paired = {teacher: _paired(labels, t, score, runs, teacher, control)
              for teacher in spec.teachers if teacher != control}
    final = curves[control][-1]["mean"] if curves.get(control) else None
    reach = {teacher: _examples_to_reach(curve, final) for teacher, curve in curves.items()} if final is not None else {}
    for run in runs:
        for point in run["points"]:
            point.pop("predictions")
    return {"study": study_id, "created": study["created"], "spec": study["spec"], "control": control, "task": task.name,
            "holdout": len(truths), "runs": runs, "curves": curves, "paired": paired, "control_final": final,
            "examples_to_reach": reach, "resampled": {"unit": unit, "groups": findings}, "short_runs": short}


def _curve(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round index: examples (mean over seeds), macro-F1 mean/min/max, the baselines' means, seeds counted."""
    out = []
    depth = min((len(r["points"]) for r in runs), default=0)  # rounds every seed has reached
    for k in range(depth):
        pts = [r["points"][k] for r in runs]
        f1 = [p["macro_f1"] for p in pts]
        tf = [p["tfidf_macro_f1"] for p in pts if p["tfidf_macro_f1"] is not None]
        em = [p["embed_macro_f1"] for p in pts if p.get("embed_macro_f1") is not None]
        out.append({"round": pts[0]["round"], "examples": float(np.mean([p["examples"] for p in pts])),
                    "mean": float(np.mean(f1)), "min": float(min(f1)), "max": float(max(f1)),
                    "std": float(np.std(f1)), "seeds": len(pts), "tfidf_mean": float(np.mean(tf)) if tf else None,
                    "embed_mean": float(np.mean(em)) if em else None})
    return out


def _paired(labels: list[str], t: np.ndarray, score: Callable[[list], np.ndarray], runs: list[dict[str, Any]],
            teacher: str, control: str) -> list[dict[str, Any]]:
    """Per round: the teacher's macro-F1 minus the control's, averaged over the seeds both have, with a
    bootstrap interval (`score`: the same resamples of items or findings for every run) and the share of
    resamples above zero."""
    mine = {r["seed"]: r["points"] for r in runs if r["teacher"] == teacher}
    theirs = {r["seed"]: r["points"] for r in runs if r["teacher"] == control}
    seeds = sorted(set(mine) & set(theirs))
    out = []
    whole = np.arange(len(t))[None, :]
    depth = min((min(len(mine[s]), len(theirs[s])) for s in seeds), default=0)
    for k in range(1, depth):  # round 0 is the same untuned student for every teacher
        diffs, points = [], []
        for s in seeds:
            a, b = mine[s][k]["predictions"], theirs[s][k]["predictions"]
            diffs.append(score(a) - score(b))
            points.append(resampled_scores(labels, t, a, whole)[1][0] - resampled_scores(labels, t, b, whole)[1][0])
        diff = np.mean(diffs, axis=0)
        out.append({"round": mine[seeds[0]][k]["round"], "examples": float(np.mean([mine[s][k]["examples"] for s in seeds])),
                    "control_examples": float(np.mean([theirs[s][k]["examples"] for s in seeds])),
                    "diff": float(np.mean(points)), "ci": percentile_interval(diff), "share_higher": float(np.mean(diff > 0)),
                    "seeds": len(seeds)})
    return out


def _examples_to_reach(curve: list[dict[str, Any]], target: float) -> float | None:
    """The first example count at which the mean curve reaches `target`, linear between rounds; None if never."""
    for before, after in zip(curve, curve[1:]):
        if after["mean"] >= target:
            if before["mean"] >= target:
                return before["examples"]
            share = (target - before["mean"]) / (after["mean"] - before["mean"])
            return before["examples"] + share * (after["examples"] - before["examples"])
    return curve[0]["examples"] if curve and curve[0]["mean"] >= target else None


def save(result: dict[str, Any], home: str | Path | None = None) -> Path:
    """study.json and learning-curves.png under <home>/studies/<id>/; returns the folder."""
    from mentor.report.charts import learning_curves_chart
    from mentor.runner import home_dir

    folder = home_dir(home) / "studies" / str(result["study"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (folder / "learning-curves.png").write_bytes(learning_curves_chart(result))
    return folder
