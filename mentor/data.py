"""Reading task data: JSONL records `{"input": {...}, "output": {...}}`, checked whole before use.

A file is read completely and every problem is collected (file, line, what is wrong) before anything is
returned, so a bad file never leaves half-written state behind. Extra keys (`meta`, ...) are kept in
`Example.meta` and never used for training. The bundled seed data of each built-in task lives in
`mentor/data/<task>/`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mentor.records import Example
from mentor.tasks import Task

MAX_ERRORS_SHOWN = 20
BUNDLED = Path(__file__).parent / "data"


class DataError(ValueError):
    """A data file that cannot be used; `problems` lists (file, line, message)."""

    def __init__(self, problems: list[tuple[str, int, str]]):
        self.problems = problems
        shown = [f"{file}:{line}: {message}" if line else f"{file}: {message}" for file, line, message in problems[:MAX_ERRORS_SHOWN]]
        more = len(problems) - MAX_ERRORS_SHOWN
        if more > 0:
            shown.append(f"... and {more} more problem(s)")
        super().__init__("\n".join(shown))


def load_examples(path: str | Path, task: Task, source: str | None = None, labelled: bool = True) -> list[Example]:
    """All records of a JSONL file, validated against the task; raises DataError listing every problem.

    With `labelled=False` (a data source for a teacher that labels items itself) records may lack
    "output", and an empty file is an empty source; inputs are still checked.
    """
    path = Path(path)
    label = source or path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError([(str(path), 0, "file not found")]) from None
    except IsADirectoryError:
        raise DataError([(str(path), 0, "is a directory, expected a JSONL file")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError([(str(path), 0, f"not UTF-8 text ({err.reason} at byte {err.start})")]) from None
    examples: list[Example] = []
    problems: list[tuple[str, int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append((str(path), number, f"invalid JSON: {err.msg} (column {err.colno})"))
            continue
        if not isinstance(record, dict):
            problems.append((str(path), number, f"expected a JSON object, got {type(record).__name__}"))
            continue
        if not labelled and "output" not in record:
            record = {**record, "output": None}
        missing = [key for key in ("input", "output") if key not in record]
        if missing:
            problems.append((str(path), number, f"missing key(s) {', '.join(repr(m) for m in missing)}"))
            continue
        meta = {k: v for k, v in record.items() if k not in ("input", "output")}
        output = record["output"]
        if output is None:  # unlabelled: check the inputs against a placeholder answer
            problem = task.validate_example(Example(record["input"], _placeholder(task)))
        else:
            problem = task.validate_example(Example(record["input"], output))
        if problem:
            problems.append((str(path), number, problem))
            continue
        examples.append(Example(
            input={k: record["input"][k] for k in task.input_fields},
            output={} if output is None else {k: output[k] for k in task.output_fields},
            source=label, meta=meta))
    if problems:
        raise DataError(problems)
    if not examples and labelled:
        raise DataError([(str(path), 0, "no records")])
    return examples


def _placeholder(task: Task) -> dict[str, str]:
    return {name: (task.labels[0] if name == task.label_field else "-") for name in task.output_fields}


def bundled_path(task: Task, split: str) -> Path:
    """The bundled pool or holdout of a built-in task; DataError when the task ships none."""
    folder = "severity" if task.name == "explain" else task.name  # explain reads the severity records
    path = BUNDLED / folder / f"{split}.jsonl"
    if not path.exists():
        raise DataError([(str(path), 0, f"task {task.name!r} ships no {split}: pass --data/--holdout files")])
    return path


def split_against(examples: list[Example], task: Task, blocked: set[str]) -> tuple[list[Example], int]:
    """Examples whose normalised input is not in `blocked`, and how many were excluded."""
    kept = [e for e in examples if task.key(e.input) not in blocked]
    return kept, len(examples) - len(kept)


def dedupe(examples: list[Example], task: Task) -> list[Example]:
    """First occurrence of each normalised input."""
    seen: set[str] = set()
    out = []
    for example in examples:
        key = task.key(example.input)
        if key not in seen:
            seen.add(key)
            out.append(example)
    return out


def label_counts(examples: list[Example], task: Task) -> dict[str, int]:
    if task.label_field is None:
        return {}
    counts = Counter(e.output[task.label_field] for e in examples)
    return {label: counts.get(label, 0) for label in task.labels}


def write_examples(path: str | Path, examples: list[Example]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")
