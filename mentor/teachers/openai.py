"""The hosted teacher (`openai:MODEL`): an LLM behind any OpenAI-compatible server writes and grades exams.

It follows steps 1 and 3 of the loop with our prompts (`prompts.py`) and trusts nothing it is sent:
- a data source of any size is shown as a sample within `source_tokens`, and the work is split into
  requests of at most `batch_size` items (each with its own sample), run `concurrency` at a time;
- a reply that is not usable JSON is sent back with the problem, `parse_retries` times;
- every item is vetted (`vetting.py`): invalid, seen and near-duplicate items are dropped and counted;
  an exam whose labels are badly skewed, or that came up short, is topped up by asking again for the
  missing labels, at most `passes` times;
- a proficiency that is missing or outside 1-10 is an unusable reply, asked again, never guessed; when
  no usable grade comes back the step fails (TeacherError) and `mentor run --resume` retries it.
Every request goes through `ChatClient`, which records it raw and serves repeated requests from the cache.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from mentor import console
from mentor.config import TeacherConfig
from mentor.llm import ChatClient, client_from_spec, parse_prices
from mentor.llm.client import ReplyCache
from mentor.llm.replies import ReplyError, integer_in, json_reply
from mentor.records import Example, ExamResult, Grade
from mentor.tasks import Task
from mentor.teachers import TeacherError, prompts
from mentor.teachers.vetting import Vetter, balanced, deficits, skew

CHARS_PER_TOKEN = 4


class TeacherReplyError(TeacherError):
    """No usable reply after the parse retries (the run stops; `mentor run --resume` tries again)."""


def build(config: TeacherConfig, seed: int, record: Callable[..., None] | None = None,
          cache: ReplyCache | None = None) -> "OpenAITeacher":
    client = client_from_spec(config.name, base_url=config.base_url or None, api_key_env=config.api_key_env or None,
                              timeout=config.timeout, max_retries=config.retries, concurrency=config.concurrency,
                              recorder=record, cache=cache if config.cache else None,
                              prices=parse_prices(config.prices), json_schema=config.structured_output,
                              backoff=config.backoff)
    return OpenAITeacher(client, config, seed)


class OpenAITeacher:
    needs_labels = False
    probe_size = 0  # it judges from its exam and the data source, not from probes

    def __init__(self, client: ChatClient, config: TeacherConfig, seed: int = 0) -> None:
        self.client, self.config, self.seed = client, config, seed
        self.name = f"openai:{client.model}"
        self._exam_report: dict[int, dict[str, Any]] = {}

    # ---- step 1: the exam ------------------------------------------------------------------

    def write_exam(self, task: Task, source: list[Example], n: int, previous: Grade | None,
                   avoid: set[str], round_no: int, probed: Sequence[ExamResult] = ()) -> list[Example]:
        fresh = [e for e in source if task.key(e.input) not in avoid]
        vetter = Vetter(task, avoid, self.config.near_duplicate)
        pool: list[Example] = []
        unusable, per_label = 0, None
        for attempt in range(max(1, self.config.passes)):
            want = sum(per_label.values()) if per_label else n - len(pool)
            requests = [(attempt, b, k) for b, k in enumerate(self._batches(want))]

            def ask(req: tuple[int, int, int]) -> list[Any] | None:
                p, b, k = req
                text = self._source_text(task, fresh, f"exam:{round_no}:{p}:{b}")
                split = _share(per_label, k, want) if per_label else None
                messages = self._messages(prompts.exam_prompt(task, text, previous, k, split))
                return self._ask_items(messages, "exam", "exam", prompts.exam_schema(task), round_no)

            for items in self.client.map(ask, requests):
                unusable += items is None
                pool += [e for e in (vetter.admit(i, self.name) for i in items or []) if e is not None]
            chosen = balanced(task, pool, n)
            counts = skew(task, chosen, self.config.label_skew)
            if len(chosen) >= n and counts is None:
                break
            per_label = deficits(task, pool, n) if task.label_field else None
            if per_label == {}:  # every label has its share already; only the total is short
                per_label = None
        exam = balanced(task, pool, n)
        if not exam:
            raise TeacherReplyError(f"teacher {self.name} wrote no usable exam question for round {round_no} "
                                    f"({unusable} unusable replies; see the teacher calls in the store)")
        report = {**vetter.report(), "unusable_replies": unusable, "skewed": skew(task, exam, self.config.label_skew)}
        self._exam_report[round_no] = report
        console.log(f"  teacher: exam of {len(exam)}; {_describe(report)}")
        return exam

    # ---- step 3: grade the exam, write new examples ------------------------------------------------

    def grade(self, task: Task, results: list[ExamResult], source: list[Example], n_new: int,
              avoid: set[str], round_no: int, probed: Sequence[ExamResult] = ()) -> Grade:
        if not results:
            return Grade(1, "No exam questions were answered, so there is nothing to grade.", [], {})
        vetter = Vetter(task, avoid, self.config.near_duplicate)
        first = min(n_new, self.config.batch_size)
        text = self._source_text(task, source, f"grade:{round_no}")
        messages = self._messages(prompts.grade_prompt(task, results, text, first))
        try:
            reply = self._ask(messages, "grade", "proficiency", prompts.grade_schema(task), _check_grade, round_no)
        except TeacherReplyError as err:
            raise TeacherReplyError(f"teacher {self.name} gave no usable grade for round {round_no}: {err}. "
                               "Its replies are in the store; continue with `mentor run --resume`") from None
        grade = Grade(reply["proficiency"], reply["feedback"].strip(), [])
        dataset = [e for e in (vetter.admit(i, self.name) for i in reply["dataset"]) if e is not None]
        mistakes = [r for r in results if not r.correct]
        unusable = 0
        for attempt in range(max(1, self.config.passes)):
            want = n_new - len(dataset)
            if want <= 0:
                break
            requests = [(attempt, b, k) for b, k in enumerate(self._batches(want))]

            def ask(req: tuple[int, int, int]) -> list[Any] | None:
                p, b, k = req
                sample = self._source_text(task, source, f"examples:{round_no}:{p}:{b}")
                prompt = prompts.more_examples_prompt(task, mistakes, grade, sample, k)
                return self._ask_items(self._messages(prompt), "examples", "dataset", prompts.dataset_schema(task), round_no)

            for items in self.client.map(ask, requests):
                unusable += items is None
                dataset += [e for e in (vetter.admit(i, self.name) for i in items or []) if e is not None]
        dataset = dataset[:n_new]
        report = {**vetter.report(), "unusable_replies": unusable}
        console.log(f"  teacher: {len(dataset)} new examples; {_describe(report)}")
        detail = {"teacher": self.name, "correct": sum(r.correct for r in results), "n": len(results),
                  "vetting": {"exam": self._exam_report.get(round_no), "dataset": report}}
        return Grade(grade.proficiency, grade.feedback, dataset, detail)

    # ---- requests --------------------------------------------------------------------------------

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": prompt}]

    def _ask(self, messages: list[dict], purpose: str, key: str, schema: dict, check: Callable[[dict], dict],
             round_no: int) -> dict:
        """A checked JSON object; an unusable reply goes back to the model with the problem, a few times."""
        problem = ""
        for _ in range(self.config.parse_retries + 1):
            reply = self.client.complete(messages, purpose=purpose, json_schema=schema, temperature=self.config.temperature,
                                         max_tokens=self.config.max_reply_tokens or None, round_no=round_no)
            try:
                return check(json_reply(reply.text, key, reply.finish_reason))
            except ReplyError as err:
                problem = str(err)
            messages = messages + [{"role": "assistant", "content": reply.text},
                                   {"role": "user", "content": prompts.fix_prompt(problem)}]
        raise TeacherReplyError(f"no usable reply after {self.config.parse_retries + 1} tries (last problem: {problem})")

    def _ask_items(self, messages: list[dict], purpose: str, key: str, schema: dict, round_no: int) -> list[Any] | None:
        """The item list of one exam or examples request; None (counted by the caller) when unusable."""
        try:
            return self._ask(messages, purpose, key, schema, lambda obj: _check_list(obj, key), round_no)["items"]
        except TeacherReplyError:
            return None

    def _batches(self, total: int) -> list[int]:
        size = max(1, self.config.batch_size)
        return [min(size, total - start) for start in range(0, max(0, total), size)]

    def _source_text(self, task: Task, source: list[Example], salt: str) -> str:
        """A reproducible random sample of the data source within the token budget (same salt, same sample:
        a resumed run sends the same requests and is served from the cache)."""
        order = list(range(len(source)))
        random.Random(f"{self.seed}:{salt}").shuffle(order)
        budget = self.config.source_tokens * CHARS_PER_TOKEN
        lines: list[str] = []
        for i in order:
            line = prompts.item_json(task, source[i])
            if lines and budget - len(line) < 0:
                break
            budget -= len(line)
            lines.append(line)
        unlabelled = any('"answer"' not in line for line in lines)
        return prompts.source_section(lines, len(source), unlabelled)


def _check_list(obj: dict, key: str) -> dict:
    if not isinstance(obj.get(key), list):
        raise ReplyError(f'"{key}" must be a list of {{"question": ..., "answer": ...}} objects')
    return {"items": obj[key]}


def _check_grade(obj: dict) -> dict:
    proficiency = integer_in(obj.get("proficiency"), 1, 10)
    if proficiency is None:
        raise ReplyError(f'"proficiency" must be an integer from 1 to 10, got {obj.get("proficiency")!r}')
    if not isinstance(obj.get("feedback"), str) or not obj["feedback"].strip():
        raise ReplyError('"feedback" must be a non-empty string')
    if not isinstance(obj.get("dataset"), list):
        raise ReplyError('"dataset" must be a list of {"question": ..., "answer": ...} objects')
    return {"proficiency": proficiency, "feedback": obj["feedback"], "dataset": obj["dataset"]}


def _share(per_label: dict[str, int], k: int, want: int) -> dict[str, int]:
    """This request's part of the per-label counts when `want` items are split over several requests."""
    if k == want:
        return per_label
    share = {label: round(n * k / want) for label, n in per_label.items()}
    return {label: n for label, n in share.items() if n > 0} or per_label


def _describe(report: dict[str, Any]) -> str:
    parts = [f"dropped {report['invalid']} invalid, {report['duplicate']} duplicate, "
             f"{report['near_duplicate']} near-duplicate"]
    if report.get("unusable_replies"):
        parts.append(f"{report['unusable_replies']} unusable replies")
    if report.get("skewed"):
        parts.append(f"labels still skewed {report['skewed']}")
    if report.get("problems"):
        parts.append("invalid because: " + "; ".join(f"{p} (x{c})" for p, c in report["problems"].items()))
    return ", ".join(parts)
