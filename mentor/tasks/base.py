"""The Task: what a student must learn, in one frozen dataclass.

A task names its input and output fields, the label set of its categorical output (if any), the long
task definition the teacher reads, the short prompt the student reads (prompt tokens are the main CPU
cost, and fine-tuning teaches the student the rest), how a student's raw text is parsed (never raises:
None means "unparseable", which the loop counts) and how an answer is scored.

The student's completion format is ours: the label on the first line, then one `field: value` line per
free-text output field. It is the shortest thing that carries the answer, so training spends its
tokens on the prompt, not on JSON punctuation. Parsing also accepts JSON (bare, fenced, after prose),
because hosted students and teachers answer that way.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from mentor.records import Example

# Hard limits on what a task accepts as one field value; anything longer is truncated for the student
# and rejected as teacher output (see validate_example).
MAX_FIELD_CHARS = 20_000


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    input_fields: tuple[str, ...]
    output_fields: tuple[str, ...]
    student_prompt: str
    label_field: str | None = None
    labels: tuple[str, ...] = ()
    # The student reads at most this many characters of each input field (head and tail kept).
    max_input_chars: int = 700
    # Input fields that give the finding its context rather than state it (severity: the code). With
    # `student.context_free_copies` the student is also taught each example with these left empty.
    context_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.input_fields or not self.output_fields:
            raise ValueError(f"task {self.name!r}: input_fields and output_fields must not be empty")
        if self.label_field is not None:
            if self.label_field not in self.output_fields:
                raise ValueError(f"task {self.name!r}: label_field {self.label_field!r} is not an output field")
            if len(self.labels) < 2:
                raise ValueError(f"task {self.name!r}: a label field needs at least two labels")
        unknown = [name for name in self.context_fields if name not in self.input_fields]
        if unknown:
            raise ValueError(f"task {self.name!r}: context_fields {', '.join(unknown)} are not input fields "
                             f"(input fields: {', '.join(self.input_fields)})")
        if self.context_fields and set(self.context_fields) >= set(self.input_fields):
            raise ValueError(f"task {self.name!r}: context_fields must leave at least one input field to read")
        for name in self.input_fields:
            if "{" + name + "}" not in self.student_prompt:
                raise ValueError(f"task {self.name!r}: student_prompt lacks the placeholder {{{name}}}")

    # ---- what the student reads and writes -------------------------------------------------

    @property
    def text_fields(self) -> tuple[str, ...]:
        """Output fields that are free text (generated, not scored)."""
        return tuple(f for f in self.output_fields if f != self.label_field)

    def prompt(self, inputs: dict[str, str]) -> str:
        """The short prompt the student reads for one question."""
        values = {name: _clip(str(inputs.get(name, "")), self.max_input_chars) for name in self.input_fields}
        # One pass over the template: str.format or chained replaces would expand braces inside the code.
        return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), self.student_prompt)

    def without_context(self, inputs: dict[str, str]) -> dict[str, str]:
        """`inputs` with the context fields left empty: the finding alone."""
        return {**inputs, **{name: "" for name in self.context_fields}}

    def target(self, output: dict[str, str]) -> str:
        """The completion the student is trained to produce (label first, then `field: value` lines)."""
        lines = []
        if self.label_field is not None:
            lines.append(output[self.label_field])
        lines += [f"{name}: {output[name]}" for name in self.text_fields]
        return "\n".join(lines)

    def answer_from(self, label: str | None, text: str) -> str:
        """Raw completion text for a scored label followed by generated free text."""
        return label if not text else (f"{label}\n{text}" if label else text)

    # ---- parsing and scoring ----------------------------------------------------------------

    def parse(self, raw: Any) -> dict[str, str] | None:
        """Turn a student's raw output into output fields; None when it cannot be understood."""
        if not isinstance(raw, str) or not raw.strip():
            return None
        text = raw.strip()
        found = _parse_json_object(text)
        parsed: dict[str, str] = {}
        if found is not None:
            parsed = {k: str(v).strip() for k, v in found.items()
                      if k in self.output_fields and isinstance(v, (str, int, float)) and not isinstance(v, bool)}
        for name in self.output_fields:
            if name not in parsed:
                value = _field_line(text, name)
                if value is not None:
                    parsed[name] = value
        if self.label_field is not None:
            label = self.normalise_label(parsed.get(self.label_field)) or self._label_in_text(text)
            if label is None:
                return None
            parsed[self.label_field] = label
            if len(self.text_fields) == 1 and self.text_fields[0] not in parsed:
                rest = _after_first_line(text)
                if rest:
                    parsed[self.text_fields[0]] = rest
        if any(not parsed.get(name) for name in self.output_fields):
            return None
        return parsed

    def normalise_label(self, value: Any) -> str | None:
        """Map "Major", " MAJOR. ", "**major**" to "major"; None when it is not one label."""
        if not isinstance(value, str):
            return None
        word = re.sub(r"[^a-z0-9_\- ]", "", value.lower()).strip()
        return word if word in self.labels else None

    def _label_in_text(self, text: str) -> str | None:
        lowered = text.lower()
        first = self.normalise_label(lowered.split("\n", 1)[0])
        if first:  # our own completion format: the label alone on the first line
            return first
        mentioned = {label for label in self.labels if re.search(rf"\b{re.escape(label)}\b", lowered)}
        # Several labels mentioned ("major or minor?") is not an answer.
        return mentioned.pop() if len(mentioned) == 1 else None

    def is_correct(self, predicted: dict[str, str] | None, expected: dict[str, str]) -> bool:
        """Exact score on the label when there is one, else on every output field (normalised)."""
        if predicted is None:
            return False
        if self.label_field is not None:
            return predicted.get(self.label_field) == expected.get(self.label_field)
        return all(normalise_text(predicted.get(f, "")) == normalise_text(expected.get(f, "")) for f in self.output_fields)

    # ---- validation and identity ---------------------------------------------------------------

    def validate_example(self, example: Example) -> str | None:
        """The first problem with an example, or None: used for data files and teacher output."""
        for kind, fields, values in (("input", self.input_fields, example.input), ("output", self.output_fields, example.output)):
            if not isinstance(values, dict):
                return f"'{kind}' must be an object"
            for name in fields:
                value = values.get(name)
                if value is None:
                    return f"missing field '{kind}.{name}'"
                if not isinstance(value, str):
                    return f"field '{kind}.{name}' must be a string, got {type(value).__name__}"
                if not value.strip():
                    return f"empty field '{kind}.{name}'"
                if len(value) > MAX_FIELD_CHARS:
                    return f"field '{kind}.{name}' is longer than {MAX_FIELD_CHARS} characters"
        if self.label_field is not None and example.output[self.label_field] not in self.labels:
            return (f"label {example.output[self.label_field]!r} in '{self.label_field}' is not one of "
                    f"{', '.join(self.labels)}")
        return None

    def key(self, inputs: dict[str, str]) -> str:
        """Identity of a question for de-duplication and holdout exclusion (normalised inputs)."""
        return "\x1f".join(normalise_text(str(inputs.get(name, ""))) for name in self.input_fields)


def normalise_text(text: str) -> str:
    """Case-folded, NFKC, whitespace collapsed: 'the same item' for contamination checks."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return text[:head] + "\n...\n" + text[-(limit - head):]


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _parse_json_object(text: str) -> dict[str, Any] | None:
    """The last JSON object in the text: fenced, bare, or after free-text thinking."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        best = None
        for start in [i for i, ch in enumerate(candidate) if ch == "{"][:50]:
            try:
                value, _ = decoder.raw_decode(candidate[start:])
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                best = value
        if best is not None:
            return best
    return None


def _field_line(text: str, name: str) -> str | None:
    match = re.search(rf"(?im)^[\s*#\-]*[\"']?{re.escape(name)}[\"']?\s*[:=]\s*(.+)$", text)
    if not match:
        return None
    value = match.group(1).strip().strip(",").strip().strip("\"'*").strip()
    return value or None


def _after_first_line(text: str) -> str:
    parts = text.split("\n", 1)
    return parts[1].strip() if len(parts) == 2 else ""
