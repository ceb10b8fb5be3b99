"""`mentor train`: one fine-tuning job, no loop. What `torchrun`/`accelerate launch` start on every GPU.

    torchrun --nproc_per_node 4 -m mentor train --task severity --data train.jsonl -o adapter/

Every rank builds the student from the config's `student` section, loads `--from` and trains (the
Hugging Face Trainer splits the batches between ranks); rank 0 saves the adapter and prints the
TrainReport as one JSON line. `mentor run` with `student.launcher` set runs this for each round.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Optional

import typer

from mentor.cli import app, either, hidden
from mentor.config import ConfigError, RunConfig, check, from_dict, load_config
from mentor.students import StudentError


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    overrides: list[str] = typer.Argument(None, metavar="[KEY=VALUE]...", show_default=False,
                                          help="dotted config overrides, e.g. student.epochs=1"),
    task: Optional[str] = typer.Option(None, "--task", metavar="NAME|FILE",
                                       help="built-in task name or task .toml file [default: the config's task]"),
    data: Path = typer.Option(..., "--data", metavar="FILE", help="training examples (JSONL in the task's format)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="DIR",
                                          help="directory the adapter is saved to (replaced if it exists) [required]"),
    old_out: Optional[Path] = hidden("--out"),
    from_adapter: Optional[Path] = typer.Option(None, "--from", metavar="DIR",
                                                help="continue training this adapter [default: a fresh one]"),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE",
                                          help="TOML config file (its `student` section is used)"),
    config_json: Optional[Path] = typer.Option(None, "--config-json", metavar="FILE", help="a resolved config as JSON "
                                               "(what `mentor run` writes beside each round's training set)"),
) -> None:
    """Fine-tune the student on a JSONL file and save the adapter; launch with torchrun or accelerate for several GPUs."""
    from mentor.console import progress
    from mentor.data import load_examples
    from mentor.students import make_student
    from mentor.tasks import get_task

    out_dir = either(ctx, output, old_out, "--output", "--out")
    if out_dir is None:
        raise typer.BadParameter("is required: the directory to save the adapter to", ctx=ctx, param_hint="'-o' / '--output'")
    if config_json is not None:
        if config is not None or overrides:
            raise ConfigError("--config-json is a complete config: drop --config and key=value overrides")
        if not config_json.is_file():
            raise ConfigError(f"--config-json {config_json}: no such file")
        try:
            raw = json.loads(config_json.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{config_json}: not valid JSON: {err}") from None
        cfg = check(from_dict(RunConfig, raw, where=str(config_json)), where=str(config_json))
    else:
        cfg = load_config(config, list(overrides or []))
    the_task = get_task(task or cfg.task)
    examples = load_examples(data, the_task)
    student = make_student(cfg.student, cfg.seed)
    if not student.can_finetune:
        raise StudentError(f"student {student.name} cannot be fine-tuned")
    if from_adapter is not None:
        student.use_adapter(from_adapter)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # set by torchrun and accelerate launch
    if main_rank:
        with progress(f"fine-tuning on {len(examples)} examples", None) as advance:
            report = student.finetune(the_task, examples, out_dir, advance)
        print(json.dumps(dataclasses.asdict(report)), flush=True)
    else:
        student.finetune(the_task, examples, out_dir)
