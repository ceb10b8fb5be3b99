"""The scripted student: a real, deterministic Student with no model behind it, for tests and dry runs.

It answers from a rule (a dict from input key to label or output, a callable, a fixed default label, or
else a stable hash of the question, which behaves like guessing), and it "learns" by memorising: after
`finetune` it answers every trained question with the trained output, so a loop visibly improves. Its
"adapter" is a small JSON file holding what it memorised, saved and reloaded like a real one.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Callable

from mentor import calibration
from mentor.records import Answer, Example, TrainReport
from mentor.tasks import Task, normalise_text

ADAPTER_FILE = "adapter_config.json"
KIND = "mentor-scripted"

Rule = dict[str, str | dict[str, str]] | Callable[[dict[str, str]], str | dict[str, str]]


class ScriptedStudent:
    can_finetune = True

    def __init__(self, rule: Rule | None = None, default: str | None = None, confidence: float = 0.7,
                 batch_size: int = 16, name: str = "scripted") -> None:
        """`rule` maps a question to a label or to output fields: a dict keyed by `task.key(inputs)` (or
        by the normalised text of any one input field), or a callable on the inputs. Questions the rule
        does not cover get `default`, else a label picked by a stable hash of the question.
        `confidence` is the probability given to the chosen label (the rest is shared by the others).
        """
        self.name, self.rule, self.default = name, rule, default
        self.confidence, self.batch_size = confidence, batch_size
        self.learned: dict[str, dict[str, str]] = {}
        self.trained: list[list[Example]] = []  # each finetune call's examples, in order
        self.adapter: Path | None = None
        self.offsets: dict[str, float] | None = None  # the loaded adapter's calibration (mentor.calibration)

    def answer(self, task: Task, inputs: list[dict[str, str]], progress: Callable[[int], None] | None = None,
               explain: bool = True) -> list[Answer]:
        answers = []
        for item in inputs:
            output = self._output(task, item)
            label = output.get(task.label_field) if task.label_field else None
            probs = None
            if label in task.labels:
                rest = (1.0 - self.confidence) / (len(task.labels) - 1)
                probs = {name: self.confidence if name == label else rest for name in task.labels}
                if self.offsets:  # decision calibration saved with the adapter, as the hf student applies it
                    probs = calibration.apply_offsets(probs, self.offsets)
                    label = max(probs, key=probs.get)
            if not explain and label is not None:
                answers.append(Answer(raw=label, parsed={task.label_field: label}, probs=probs))
                continue
            text = "\n".join(f"{name}: {output[name]}" for name in task.text_fields if output.get(name))
            raw = task.answer_from(label, text)
            answers.append(Answer(raw=raw, parsed=task.parse(raw), probs=probs))
        if progress and inputs:
            progress(len(inputs))
        return answers

    def _output(self, task: Task, inputs: dict[str, str]) -> dict[str, str]:
        key = task.key(inputs)
        if key in self.learned:
            return self.learned[key]
        found: str | dict[str, str] | None = None
        if callable(self.rule):
            found = self.rule(inputs)
        elif self.rule:
            rules = {normalise_text(k): v for k, v in self.rule.items()}
            values = [key] + [normalise_text(str(inputs.get(name, ""))) for name in task.input_fields]
            found = next((rules[v] for v in values if v in rules), None)
        if isinstance(found, dict):
            return found
        if found is None and task.label_field:
            digest = int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16)
            found = self.default or task.labels[digest % len(task.labels)]
        output = {name: f"no {name} known for this item" for name in task.text_fields}
        if task.label_field:
            output[task.label_field] = found or ""
        return output

    def finetune(self, task: Task, examples: list[Example], out_dir: Path, progress: Callable[[int], None] | None = None) -> TrainReport:
        if not examples:
            raise ValueError("finetune needs at least one training example; the curriculum is empty")
        # The "loss": the share of examples it would have got wrong before this round.
        wrong = sum(not task.is_correct(task.parse(a.raw), e.output)
                    for a, e in zip(self.answer(task, [e.input for e in examples]), examples))
        self.trained.append(list(examples))
        self.offsets = None
        for example in examples:
            self.learned[task.key(example.input)] = dict(example.output)
        steps = math.ceil(len(examples) / self.batch_size)
        for _ in range(steps):
            if progress:
                progress(1)
        out_dir = Path(out_dir)
        tmp = out_dir.with_name(out_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        record = {"kind": KIND, "task": task.name, "learned": self.learned}
        (tmp / ADAPTER_FILE).write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
        self.adapter = out_dir.resolve()
        return TrainReport(adapter_dir=str(out_dir), examples=len(examples), steps=steps,
                           final_loss=wrong / len(examples), seconds=0.0)

    def use_adapter(self, adapter_dir: Path | None) -> None:
        if adapter_dir is None:
            self.learned, self.adapter, self.offsets = {}, None, None
            return
        path = Path(adapter_dir).resolve()
        self.offsets = calibration.load(path)
        if path == self.adapter:
            return
        if not (path / ADAPTER_FILE).is_file():
            raise FileNotFoundError(f"no scripted adapter in {path} ({ADAPTER_FILE} is missing)")
        record = json.loads((path / ADAPTER_FILE).read_text(encoding="utf-8"))
        if record.get("kind") != KIND:
            raise ValueError(f"{path} holds a real model adapter, not a scripted student's; use an hf student")
        self.learned, self.adapter = record["learned"], path
