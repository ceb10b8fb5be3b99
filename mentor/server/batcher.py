"""Concurrent requests batched on the model: a small queue in front of one worker thread.

HTTP handler threads put questions on the queue and wait; the worker takes the first one, waits up to
`max_wait` seconds for more (up to `max_batch`), groups them by model (adapter), task and whether free text is
wanted (a label-only question is never slowed down by another caller's explanation), and answers
each group with ONE `student.answer` call. Batching is what makes a CPU or GPU model serve many callers:
the forward pass over 16 questions costs far less than 16 passes. The student is touched only by the
worker thread, so backends need not be thread-safe. A full queue refuses new work at once (the server
answers 503) instead of letting callers pile up without bound.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from mentor.records import Answer
from mentor.students import Student
from mentor.tasks import Task


class Busy(RuntimeError):
    """The queue is full: the caller should retry later."""


@dataclass
class _Job:
    model: str
    task: Task
    inputs: dict[str, str]
    explain: bool = True
    future: Future = field(default_factory=Future)


class Batcher:
    def __init__(self, student: Student, models: dict[str, Callable[[], None]], max_batch: int = 16,
                 max_wait: float = 0.01, max_queue: int = 1024) -> None:
        """`models` maps each served model name to what loads its adapter into `student` (Target.prepare)."""
        self.student, self.models = student, models
        self.max_batch, self.max_wait = max(1, max_batch), max(0.0, max_wait)
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "batches": 0, "largest_batch": 0, "model_seconds": 0.0}
        self._worker = threading.Thread(target=self._run, name="mentor-batcher", daemon=True)
        self._worker.start()

    def submit(self, model: str, task: Task, inputs: list[dict[str, str]], explain: bool = True) -> list[Future]:
        """Queue questions for one model; their futures resolve to `Answer`s (or raise the model's error)."""
        jobs = [_Job(model, task, item, explain) for item in inputs]
        for job in jobs:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                error = Busy("the model's queue is full; retry shortly")
                for pending in jobs:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                break
        return [job.future for job in jobs]

    def answer(self, model: str, task: Task, inputs: list[dict[str, str]], timeout: float = 600,
               explain: bool = True) -> list[Answer]:
        return [future.result(timeout=timeout) for future in self.submit(model, task, inputs, explain)]

    def student_for(self, model: str) -> "QueuedStudent":
        """The served model seen as a Student (answers only), for code that rates with one: mentor.review.rate."""
        return QueuedStudent(self, model)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(job)
            self._answer(batch)

    def _answer(self, batch: list[_Job]) -> None:
        groups: dict[tuple[str, str, bool], list[_Job]] = {}
        for job in batch:
            groups.setdefault((job.model, job.task.name, job.explain), []).append(job)
        for (model, _, explain), jobs in groups.items():
            started = time.monotonic()
            try:
                self.models[model]()  # switches adapters only when the group's model is not the loaded one
                answers = self.student.answer(jobs[0].task, [job.inputs for job in jobs], explain=explain)
            except Exception as err:  # noqa: BLE001 - handed to every waiting caller, who reports it; never swallowed
                for job in jobs:
                    job.future.set_exception(err)
                continue
            for job, answer in zip(jobs, answers):
                job.future.set_result(answer)
            with self._lock:
                self.stats["requests"] += len(jobs)
                self.stats["batches"] += 1
                self.stats["largest_batch"] = max(self.stats["largest_batch"], len(jobs))
                self.stats["model_seconds"] += time.monotonic() - started

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            per_answer = self.stats["model_seconds"] / self.stats["requests"] if self.stats["requests"] else None
            return {**self.stats, "seconds_per_answer": per_answer, "queued": self._queue.qsize()}


@dataclass
class QueuedStudent:
    """One served model behind the batcher, with the Student protocol's `answer` (it cannot be trained)."""

    batcher: Batcher
    model: str
    can_finetune = False

    @property
    def name(self) -> str:
        return self.model

    def answer(self, task: Task, inputs: list[dict[str, str]], progress: Callable[[int], None] | None = None,
               explain: bool = True) -> list[Answer]:
        answers = self.batcher.answer(self.model, task, inputs, explain=explain)
        if progress:
            progress(len(inputs))
        return answers
