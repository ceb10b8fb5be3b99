"""The teacher-student loop: the five steps of mentor's design, top to bottom, in `run_loop`.

Round 0 scores the untuned student on the holdout, so every run shows its own baseline. Each later
round: a targeting teacher has the student score some unseen pool items (the probe), the teacher writes an exam, the student takes it, the teacher grades it and proposes training
examples, the curriculum is vetted and merged, the student is LoRA-tuned, its decisions are calibrated (when
the run set a calibration set aside: mentor.calibration), and the holdout is scored (a task with free text also
writes explanations for a fixed sample of it, which weigh in on the best round: mentor.explanations).
Every step is a `_step` whose result and done-marker commit together, so `mentor run --resume` picks up
after the last completed step. The best round's adapter is the run's result; a round that scores worse
is rolled back (the next round starts again from the best adapter).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from mentor import calibration, console, explanations, launch
from mentor.config import RunConfig
from mentor.curriculum import summarise, training_set, vet
from mentor.evaluate import score, stratified_sample
from mentor.records import Example, ExamResult, Grade, TrainReport
from mentor.store import Store
from mentor.students import Student
from mentor.tasks import Task
from mentor.teachers import Teacher


@dataclass
class RunInputs:
    """Everything `run_loop` works on, prepared (and validated) by `mentor.runner`."""

    run_id: int
    config: RunConfig
    task: Task
    pool: list[Example]  # the teacher's data source, holdout items already removed
    holdout: list[Example]  # the items scored each round
    holdout_keys: set[str]  # never shown to the teacher: the holdout's and the calibration set's items
    teacher: Teacher
    student: Student
    home: Path
    calibration: list[Example] = field(default_factory=list)  # labelled items that fit decision offsets
    encode: Callable[[list[str]], Any] | None = None  # sentence embeddings for explanations (default: MiniLM, cached)


def run_loop(store: Store, r: RunInputs) -> dict[str, Any]:
    cfg, task, run_id = r.config, r.task, r.run_id
    started = time.monotonic()
    spent_before = sum(store.step_seconds(run_id).values())
    adapters = r.home / "runs" / str(run_id)

    def step(round_no: int, name: str, work: Callable[[], Any], save: Callable[[Any], None]) -> None:
        """Run one step unless the store says it is done; its rows and done-marker commit together."""
        if name in store.done_steps(run_id, round_no):
            return
        t0 = time.monotonic()
        result = work()
        with store.transaction():
            save(result)
            store.mark_step(run_id, round_no, name, time.monotonic() - t0)
        console.log(f"  round {round_no} {name:<10} {time.monotonic() - t0:6.1f}s")

    def over_budget(teacher: bool = True) -> str | None:
        """Why the run must stop now, or None. Teacher tokens and money are checked only before a round:
        once a round's teacher calls are paid for, the round is finished and trained on."""
        if cfg.loop.max_minutes and spent_before + time.monotonic() - started > cfg.loop.max_minutes * 60:
            return f"wall-clock budget of {cfg.loop.max_minutes:g} min spent"
        if teacher and (cfg.teacher.max_tokens or cfg.teacher.max_cost):
            totals = store.call_totals(run_id).values()
            tokens = sum((t["tokens_in"] or 0) + (t["tokens_out"] or 0) for t in totals)
            cost = sum(t["cost"] or 0.0 for t in totals)
            if cfg.teacher.max_tokens and tokens >= cfg.teacher.max_tokens:
                return f"teacher token budget of {cfg.teacher.max_tokens} spent ({tokens} used)"
            if cfg.teacher.max_cost and cost >= cfg.teacher.max_cost:
                return f"teacher cost budget of ${cfg.teacher.max_cost:g} spent (${cost:.4f} used)"
        return None

    # A task with free text: each round the student also writes explanations for a fixed sample of the holdout.
    explaining = explanations.explains(task, cfg.loop.explain_sample)
    chosen = {id(e) for e in stratified_sample(task, r.holdout, cfg.loop.explain_sample, cfg.seed)} if explaining else set()
    explained = [i for i, e in enumerate(r.holdout) if id(e) in chosen]
    encoder: list[Callable[[list[str]], Any]] = []

    def encode(texts: list[str]) -> Any:
        if not encoder:
            from mentor.baselines.embed import CachedEncoder
            encoder.append(r.encode or CachedEncoder(store))
        return encoder[0](texts)

    def evaluate(round_no: int) -> None:
        def work():
            with console.progress(f"round {round_no}: scoring the holdout", len(r.holdout)) as advance:
                answers, correct, report = score(r.student, task, r.holdout, advance)
            if explaining:
                items = [r.holdout[i] for i in explained]
                with console.progress(f"round {round_no}: writing {len(items)} explanations", len(items)) as advance:
                    written = r.student.answer(task, [e.input for e in items], advance)
                for i, full in zip(explained, written):  # the label and its correctness stay the scoring pass's
                    answers[i] = replace(answers[i], raw=full.raw, parsed={**(full.parsed or {}), **(answers[i].parsed or {})})
                report["explanation"] = explanations.explanation_report(task, items, written, encode)
                report["selection"] = explanations.selection_value(
                    report[cfg.loop.metric], report["explanation"]["similarity"], cfg.loop.explanation_weight)
            return answers, correct, report

        def save(res):
            answers, correct, report = res
            if getattr(r.student, "compute", None):  # a resumed run may score its later rounds on another machine
                report["compute"] = r.student.compute
            store.save_predictions(run_id, round_no, answers, correct)
            store.update_round(run_id, round_no, metrics=report)
        step(round_no, "evaluate", work, save)

    def calibrate(round_no: int, adapter: Path) -> None:
        """Fit per-label decision offsets on the calibration set and save them with the adapter."""
        def work() -> calibration.Calibration | None:
            calibration.remove(adapter)  # left by a run killed after writing it: fit on raw scores again
            r.student.use_adapter(adapter)
            with console.progress(f"round {round_no}: scoring the calibration set", len(r.calibration)) as advance:
                answers = r.student.answer(task, [e.input for e in r.calibration], advance, explain=False)
            if any(a.probs is None for a in answers):
                return None  # a student without label probabilities has no scores to shift
            fit = calibration.fit_offsets(task.labels, [a.probs for a in answers],
                                          [e.output[task.label_field] for e in r.calibration])
            calibration.save(adapter, fit)
            return fit

        def save(fit: calibration.Calibration | None) -> None:
            stats = store.rounds(run_id)[round_no]["stats"] or {}
            store.update_round(run_id, round_no, stats={**stats, "calibration": asdict(fit) if fit else None})
            if fit:
                console.log(f"  calibration: macro-F1 on {fit.items} calibration items {fit.macro_f1_before:.3f} -> "
                            f"{fit.macro_f1_after:.3f} (offsets {', '.join(f'{k} {v:+.1f}' for k, v in fit.offsets.items())})")
        step(round_no, "calibrate", work, save)

    def metric(round_no: int) -> float:
        """The criterion that picks the best round: the holdout metric, with explanations weighed in when written."""
        metrics = {row["round"]: row for row in store.rounds(run_id)}[round_no]["metrics"]
        if "explanation" not in metrics:
            return metrics[cfg.loop.metric]
        return explanations.selection_value(metrics[cfg.loop.metric], metrics["explanation"]["similarity"],
                                            cfg.loop.explanation_weight)

    criterion = explanations.criterion(cfg.loop.metric, cfg.loop.explanation_weight, len(explained), explaining)
    if explaining:
        console.log(f"best round picked by {criterion}")

    # Round 0: the untuned student's baseline.
    r.student.use_adapter(None)
    evaluate(0)
    best_round, best_value, stale = 0, metric(0), 0
    console.log(f"round 0: {_figures(store, run_id, 0, cfg.loop.metric)} (untuned baseline)")
    reason = f"all {cfg.loop.rounds} round(s) run"

    for round_no in range(1, cfg.loop.rounds + 1):
        if why := over_budget():
            reason = why
            break
        best_adapter = store.rounds(run_id)[best_round]["adapter"] if best_round else None
        r.student.use_adapter(Path(best_adapter) if best_adapter else None)
        previous = _previous_grade(store, run_id, round_no)
        avoid = r.holdout_keys | {task.key(q) for q in store.all_exam_keys(run_id)} | _curriculum_keys(store, task, run_id)

        # 0. A targeting teacher first has the current student score some unseen pool items.
        probed: list[ExamResult] = []
        if r.teacher.probe_size and r.student.can_finetune:  # a student that cannot learn is only measured
            def probe():
                unseen = [e for e in r.pool if task.key(e.input) not in avoid]
                items = random.Random(f"{cfg.seed}:probe:{round_no}").sample(unseen, min(len(unseen), r.teacher.probe_size))
                with console.progress(f"round {round_no}: scoring {len(items)} pool items for the teacher", len(items)) as advance:
                    answers = r.student.answer(task, [e.input for e in items], advance, explain=False)
                return items, answers, [task.is_correct(a.parsed, e.output) for a, e in zip(answers, items)]
            step(round_no, "probe", probe, lambda res: store.save_probes(run_id, round_no, *res))
            probed = [ExamResult(e, a, c) for e, a, c in store.probes(run_id, round_no)]

        # 1. The teacher writes an exam.
        def write_exam():
            exam = r.teacher.write_exam(task, r.pool, cfg.teacher.exam_size, previous, avoid, round_no, probed)
            kept = [q for q in exam if task.key(q.input) not in r.holdout_keys and task.validate_example(q) is None]
            return kept, len(exam) - len(kept)

        def save_exam(res):
            store.save_exam(run_id, round_no, res[0])
            store.update_round(run_id, round_no, stats={"exam_questions": len(res[0]), "exam_dropped": res[1]})
        step(round_no, "exam", write_exam, save_exam)
        questions = [q for q, _, _ in store.exam(run_id, round_no)]
        if not questions:
            reason = "the data source has no unseen items left for an exam"
            break

        # 2. The student takes it.
        def take_exam():
            with console.progress(f"round {round_no}: taking the exam", len(questions)) as advance:
                # The offline teachers grade labels against the data; an LLM teacher reads the explanations too.
                answers = r.student.answer(task, [q.input for q in questions], advance, explain=not r.teacher.needs_labels)
            return answers, [task.is_correct(a.parsed, q.output) for a, q in zip(answers, questions)]
        step(round_no, "answer", take_exam, lambda res: store.save_answers(run_id, round_no, *res))
        results = [ExamResult(q, a, bool(c)) for q, a, c in store.exam(run_id, round_no)]

        # 3. The teacher grades it and writes new examples aimed at the weaknesses.
        def grade():
            return r.teacher.grade(task, results, r.pool, cfg.teacher.new_examples,
                                   r.holdout_keys | _curriculum_keys(store, task, run_id), round_no, probed)

        def save_grade(g: Grade):
            store.update_round(run_id, round_no, proficiency=g.proficiency, feedback=g.feedback, grade_detail=g.detail)
            store.save_proposals(run_id, round_no, g.dataset)
        step(round_no, "grade", grade, save_grade)
        console.log(f"  teacher: {store.rounds(run_id)[round_no]['feedback']}")

        # 4. Curriculum: vet the proposals and merge the accepted ones.
        def merge():
            proposals = store.curriculum(run_id, round_no, status=None)
            earlier = {task.key(e.input) for e in store.curriculum(run_id) if e.meta["round"] < round_no}
            return vet(task, proposals, r.holdout_keys, earlier)

        def save_merge(statuses: list[str]):
            store.set_curriculum_status(run_id, round_no, statuses)
            stats = store.rounds(run_id)[round_no]["stats"] or {}
            store.update_round(run_id, round_no, stats={**stats, "curriculum": summarise(statuses)})
        step(round_no, "curriculum", merge, save_merge)

        # 5. Fine-tune from the current (best) adapter on the new examples plus a replay sample, or (loop.warm_start
        # false) a fresh adapter on the whole curriculum so far.
        new = store.curriculum(run_id, round_no)
        earlier = [e for e in store.curriculum(run_id) if e.meta["round"] < round_no]
        train = training_set(new, earlier, cfg.loop.replay if cfg.loop.warm_start else None, cfg.seed, round_no)
        start = Path(best_adapter) if best_adapter and cfg.loop.warm_start else None
        if not train:
            reason = "the teacher proposed no usable training examples"
            break
        if not r.student.can_finetune:
            reason = f"student {r.student.name} cannot be fine-tuned: it was measured on the holdout and an exam"
            break
        if (why := over_budget(teacher=False)) and "finetune" not in store.done_steps(run_id, round_no):
            reason = why
            break

        def finetune() -> TrainReport:
            if cfg.student.launcher:  # several GPUs: a launched `mentor train` trains, this process waits
                return launch.train(cfg, train, adapters / f"round-{round_no}", start)
            r.student.use_adapter(start)  # the probe and the exam used the best adapter, a fresh start drops it
            with console.progress(f"round {round_no}: fine-tuning on {len(train)} examples", None) as advance:
                return r.student.finetune(task, train, adapters / f"round-{round_no}", advance)

        def save_train(rep: TrainReport):
            store.update_round(run_id, round_no, adapter=rep.adapter_dir, train={
                "examples": rep.examples, "steps": rep.steps, "final_loss": rep.final_loss, "seconds": rep.seconds})
        step(round_no, "finetune", finetune, save_train)
        adapter = Path(store.rounds(run_id)[round_no]["adapter"])
        if r.calibration:
            calibrate(round_no, adapter)
        r.student.use_adapter(adapter)

        # The holdout decides which adapter is kept.
        evaluate(round_no)
        value = metric(round_no)
        if value > best_value:
            best_round, best_value, stale = round_no, value, 0
            verdict = "new best"
        else:
            stale += 1
            verdict = f"no better than round {best_round} ({best_value:.3f}): rolled back"
        console.log(f"round {round_no}: {_figures(store, run_id, round_no, cfg.loop.metric)}, {verdict}")
        if stale >= cfg.loop.patience:
            reason = f"no improvement for {stale} round(s) (patience {cfg.loop.patience})"
            break

    store.finish_run(run_id, "finished", reason, best_round)
    return {"run_id": run_id, "best_round": best_round, "best": best_value, "reason": reason}


def _figures(store: Store, run_id: int, round_no: int, metric: str) -> str:
    metrics = {row["round"]: row for row in store.rounds(run_id)}[round_no]["metrics"]
    text = f"holdout {metric} {metrics[metric]:.3f}"
    if "explanation" in metrics:
        text += (f", explanation similarity {metrics['explanation']['similarity']:.3f} "
                 f"({metrics['explanation']['items']} items), criterion {metrics['selection']:.3f}")
    return text


def _previous_grade(store: Store, run_id: int, round_no: int) -> Grade | None:
    rows = {row["round"]: row for row in store.rounds(run_id)}
    prev = rows.get(round_no - 1)
    if round_no == 1 or prev is None or prev["proficiency"] is None:
        return None
    return Grade(prev["proficiency"], prev["feedback"] or "", [], prev["grade_detail"] or {})


def _curriculum_keys(store: Store, task: Task, run_id: int) -> set[str]:
    return {task.key(e.input) for e in store.curriculum(run_id)}

