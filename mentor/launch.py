"""Fine-tuning in a launched `mentor train` process, for training spread over several GPUs.

`torchrun` and `accelerate launch` start one process per GPU and run the same program in each, so only
the training itself may run under them: the loop (teacher calls, exams, the store) must run once. With
`student.launcher` set, the loop's fine-tune step calls `train` here, which writes the round's training
set and the run's config beside the adapter directory, runs
`<launcher> -m mentor train --task T --data round-N.train.jsonl --output round-N --config-json ...` and
waits for it. Rank 0 prints the TrainReport as one JSON line on stdout; its stderr goes to
`round-N.train.log`, whose tail is shown if the launch fails.

The launcher is used as given and must belong to the same environment as this process (`torchrun` from
this venv's PATH); "python" means this very interpreter. While the launched processes train, this one
keeps its own copy of the student loaded (it scores the holdout next), so the first GPU holds one more
copy of the base model than plain `torchrun` training would.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from mentor import console
from mentor.config import RunConfig, to_dict
from mentor.data import write_examples
from mentor.records import Example, TrainReport
from mentor.students import StudentError

LOG_TAIL_LINES = 30
PYTHONS = ("python", "python3")


def command(launcher: str, task: str, data: Path, out_dir: Path, config_file: Path, from_adapter: Path | None) -> list[str]:
    """The argv that trains one round: the launcher's words, then `-m mentor train` and its options."""
    try:
        words = shlex.split(launcher)
    except ValueError as err:
        raise StudentError(f"student.launcher {launcher!r} cannot be split into words: {err}") from None
    if not words:
        raise StudentError("student.launcher is empty: leave it unset to train in-process")
    if words[0] in PYTHONS:
        words[0] = sys.executable  # the interpreter (and so the venv) of this run
    argv = words + ["-m", "mentor", "train", "--task", task, "--data", str(data), "--output", str(out_dir),
                    "--config-json", str(config_file)]
    return argv + (["--from", str(from_adapter)] if from_adapter else [])


def train(config: RunConfig, examples: list[Example], out_dir: Path, from_adapter: Path | None) -> TrainReport:
    """Train `examples` from `from_adapter` (None: a fresh adapter) under `config.student.launcher`."""
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    data = out_dir.with_name(out_dir.name + ".train.jsonl")
    config_file = out_dir.with_name(out_dir.name + ".config.json")
    log = out_dir.with_name(out_dir.name + ".train.log")
    write_examples(data, examples)
    config_file.write_text(json.dumps(to_dict(config), indent=1), encoding="utf-8")
    argv = command(config.student.launcher, config.task, data, out_dir, config_file, from_adapter)
    shown = shlex.join(argv)
    if shutil.which(argv[0]) is None:
        raise StudentError(f"student.launcher: {argv[0]!r} is not an executable on PATH (command: {shown}). "
                           "Activate the venv mentor is installed in, or give the launcher's full path")
    console.log(f"  training in: {shown}\n  (its log: {log})")
    with open(log, "wb") as stderr:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise StudentError(f"the training command failed with exit status {done.returncode}: {shown}\n"
                           f"last lines of its log {log}:\n{_tail(log)}")
    report = _report(done.stdout.decode("utf-8", errors="replace"))
    if report is None:
        raise StudentError(f"the training command printed no TrainReport on stdout: {shown}\n"
                           f"last lines of its log {log}:\n{_tail(log)}")
    return report


def _report(stdout: str) -> TrainReport | None:
    """The last stdout line that is a TrainReport (libraries may print other lines before it)."""
    keys = {f.name for f in dataclasses.fields(TrainReport)}
    for line in reversed(stdout.splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and set(value) == keys:
            return TrainReport(**value)
    return None


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty)"
