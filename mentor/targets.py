"""Which models `mentor eval` and `mentor judge` score, from short specs.

Specs: `base` (the untuned student), `best` (the run's best adapter), `round:N` (round N's adapter),
the classical baselines of mentor.baselines: `tfidf`, `embed` (all-MiniLM-L6-v2 sentence embeddings) and
`majority` trained on the run's accepted curriculum up to its best round, `tfidf:all`, `embed:all` and
`majority:all` trained on the run's whole labelled data source (less the evaluated items' near-twins),
`tfidf:calibrated` (tfidf with decision calibration on the run's calibration set, as the student gets), `openai:MODEL` (a hosted
model through any OpenAI-compatible server), an adapter directory, or several of these joined by `+`
(`best+embed`: their label probabilities averaged, mentor.ensemble; a system of its own, never the student's). The task and the student's base
model come from the run's saved config when there is a run, so an adapter is always scored on the base
model and prompt format it was trained with. base, best and round:N share one loaded model and switch
adapters (`Target.prepare`) right before they are scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mentor.config import RunConfig, StudentConfig, stored_config
from mentor.runner import open_store
from mentor.store import Store, StoreError
from mentor.students import Student, StudentError, make_student
from mentor.tasks import Task, get_task

SPECS_HELP = ("base, best, round:N, tfidf, embed, majority, tfidf:all, embed:all, majority:all, tfidf:calibrated, "
              "openai:MODEL, an adapter directory, or A+B (their probabilities averaged, e.g. best+embed)")
BASELINE_SPECS = ("tfidf", "embed", "majority", "tfidf:all", "embed:all", "majority:all", "tfidf:calibrated")


@dataclass
class Target:
    label: str
    task: Task
    student: Student
    prepare: Callable[[], None] = field(default=lambda: None)  # loads this system's adapter into a shared model
    kind: str = "local"  # "local" (the run's student), a baseline ("tfidf", "embed", "majority") or "remote"
    run_id: int | None = None


@dataclass
class RunContext:
    """The run a set of specs refers to (none when the store has no run and none is needed)."""

    store: Store
    run_id: int | None
    config: RunConfig
    task: Task
    student_config: StudentConfig
    home: str | None = None
    _model: Student | None = None

    def local_student(self) -> Student:
        if self._model is None:
            self._model = make_student(self.student_config, self.config.seed)
        return self._model

    def rounds(self) -> dict[int, dict[str, Any]]:
        return {r["round"]: r for r in self.store.rounds(self.need_run())}

    def need_run(self) -> int:
        if self.run_id is None:
            raise StoreError("this needs a run: start one with `mentor run` or pass --run")
        return self.run_id


def run_context(home: str | None, run_ref: str, need_run: bool, task: str | None = None,
                student: str | None = None) -> RunContext:
    try:
        store = open_store(home)
    except StoreError:
        if need_run:
            raise
        store = Store(":memory:")  # the untuned model or an adapter folder needs no runs: write nothing to disk
    config, run_id = RunConfig(), None
    try:
        run_id = store.latest_run_id() if run_ref == "latest" else int(run_ref)
        config = stored_config(store.run(run_id)["config"], where=f"run {run_id}'s saved config")
    except StoreError:
        if need_run:
            raise
        run_id = None
    except ValueError:
        raise StoreError(f"--run must be a number or 'latest', got {run_ref!r}") from None
    student_config = config.student if student is None else StudentConfig(**{**config.student.__dict__, "model": student})
    return RunContext(store, run_id, config, get_task(task or config.task), student_config, home)


def needs_run(specs: list[str]) -> bool:
    parts = [p.strip() for s in specs for p in (s.split("+") if not Path(s).is_dir() else [s])]
    return any(s == "best" or s in BASELINE_SPECS or s.startswith("round:") for s in parts)


def resolve_systems(ctx: RunContext, specs: list[str]) -> list[Target]:
    """One Target per spec, in order; labels are unique."""
    targets = [resolve_spec(ctx, spec.strip()) for spec in specs if spec.strip()]
    if not targets:
        raise StudentError(f"--models is empty: name one or more of {SPECS_HELP}")
    labels = [t.label for t in targets]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise StudentError(f"--models names the same system twice: {', '.join(repeated)}")
    return targets


def resolve_spec(ctx: RunContext, spec: str) -> Target:
    task = ctx.task
    if spec == "base":
        return _local(ctx, f"base {ctx.student_config.model}", None)
    if spec == "best":
        run_id = ctx.need_run()
        best = ctx.store.run(run_id)["best_round"]
        if best is None:
            raise StoreError(f"run {run_id} has no best round yet; resume it with `mentor run --resume` or name a round:N")
        adapter = ctx.rounds()[best]["adapter"] if best else None
        return _local(ctx, f"best (run {run_id} round {best})", Path(adapter) if adapter else None)
    if spec.startswith("round:"):
        number = spec.partition(":")[2]
        rounds = ctx.rounds()
        if not number.isdigit() or int(number) not in rounds:
            raise StoreError(f"{spec!r}: run {ctx.run_id} has rounds {', '.join(map(str, sorted(rounds)))}")
        adapter = rounds[int(number)]["adapter"]
        if int(number) and not adapter:
            raise StoreError(f"{spec!r}: round {number} of run {ctx.run_id} saved no adapter (it did not finish fine-tuning)")
        return _local(ctx, f"round {number} (run {ctx.run_id})", Path(adapter) if adapter else None)
    if spec in BASELINE_SPECS:
        return _baseline(ctx, spec)
    if spec.startswith("openai:"):
        model = make_student(StudentConfig(**{**ctx.student_config.__dict__, "model": spec}), ctx.config.seed)
        return Target(spec, task, model, kind="remote", run_id=ctx.run_id)
    if Path(spec).is_dir():
        return _local(ctx, f"adapter {spec}", Path(spec))
    if "+" in spec:
        from mentor.ensemble import Ensemble

        members = [resolve_spec(ctx, part.strip()) for part in spec.split("+")]
        if not task.label_field:
            raise StudentError(f"{spec!r}: a combined system averages label probabilities; task {task.name!r} has none")
        return Target(" + ".join(m.label for m in members), task, Ensemble(members), kind="combined", run_id=ctx.run_id)
    raise StudentError(f"unknown system {spec!r} in --models: use {SPECS_HELP}")


def _baseline(ctx: RunContext, spec: str) -> Target:
    """A classical baseline (mentor.baselines). tfidf, embed, majority: on what the run's best adapter learned
    from (curriculum rounds up to the best one; the whole curriculum while the best is round 0). `:all`: on the
    run's labelled data source, fitted by mentor.compare once the evaluated items are known. `tfidf:calibrated`:
    with offsets and a temperature fitted on the run's calibration set, as the student's are."""
    from mentor import baselines

    kind, _, variant = spec.partition(":")
    run_id = ctx.need_run()
    encoder = baselines.CachedEncoder(ctx.store) if kind == "embed" else None  # vectors cached in the run's store
    if variant == "all":
        from mentor.runner import pool_of

        pool = pool_of(ctx.config, ctx.task, ctx.home, until=ctx.store.run(run_id)["created"])
        model = baselines.PoolBaseline(kind, ctx.task, pool, ctx.config.seed, encoder, where=f"run {run_id}'s data source")
        return Target(f"{spec} (run {run_id}'s data source)", ctx.task, model, kind=kind, run_id=run_id)
    best = ctx.store.run(run_id)["best_round"] or 0
    examples = [e for e in ctx.store.curriculum(run_id) if not best or e.meta["round"] <= best]
    model = baselines.train(kind, ctx.task, examples, ctx.config.seed, encoder)
    label = f"{kind} ({len(examples)} curriculum ex."
    if variant == "calibrated":
        if not (ctx.config.loop.calibration and ctx.task.label_field):
            raise StudentError(f"tfidf:calibrated: run {run_id} set no calibration set aside (loop.calibration=0)")
        from mentor import calibration
        from mentor.runner import calibration_set

        items = calibration_set(ctx.config, ctx.task, ctx.home, until=ctx.store.run(run_id)["created"])
        answers = model.answer(ctx.task, [e.input for e in items])
        # With a temperature: logistic regression's probabilities are too flat for offsets alone.
        fit = calibration.fit_offsets(ctx.task.labels, [a.probs for a in answers],
                                      [e.output[ctx.task.label_field] for e in items], temperature=True)
        model.offsets, model.temperature = fit.offsets, fit.temperature
        label += f", calibrated on {fit.items}"
    return Target(label + ")", ctx.task, model, kind=kind, run_id=run_id)


def _local(ctx: RunContext, label: str, adapter: Path | None) -> Target:
    model = ctx.local_student()
    return Target(label, ctx.task, model, prepare=lambda: model.use_adapter(adapter), run_id=ctx.run_id)


def resolve_target(home: str | None, run_ref: str, adapter: Path | None, base: bool,
                   task: str | None = None, student: str | None = None) -> Target:
    """The one system `mentor eval` scores without --models: --adapter, --base, else the run's best."""
    if adapter is not None and not Path(adapter).is_dir():
        raise FileNotFoundError(f"--adapter {adapter}: no such adapter directory")
    ctx = run_context(home, run_ref, need_run=not (adapter or base), task=task, student=student)
    target = resolve_spec(ctx, str(adapter) if adapter is not None else "base" if base else "best")
    target.prepare()
    return target
