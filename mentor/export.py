"""`mentor export RUN`: a run's best adapter in the layout serving engines load, optionally merged.

vLLM (`--enable-lora --lora-modules NAME=DIR`) and NVIDIA NIM (`NIM_PEFT_SOURCE=ROOT`, one folder per
adapter under ROOT) both read a plain PEFT LoRA folder: `adapter_config.json` + `adapter_model.safetensors`.
So the export is ROOT/NAME/ with those two files, checked before it is written, plus what only mentor
reads (the engines ignore both): the run's `calibration.json`, applied by mentor's own label scoring, and
`mentor.json`, the task and student model the adapter was trained with, so that `mentor review --adapter
ROOT/NAME` (in CI, in another repository, with no store) rates on the right base model with the right
prompt. With `--merged`, ROOT/NAME-merged/: the base model with the adapter folded in (PEFT's
merge_and_unload), for engines or runtimes without LoRA support. torch, transformers and peft are
imported only for `--merged`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from mentor.calibration import CALIBRATION_FILE
from mentor.review.diff import ReviewError
from mentor.runner import home_dir
from mentor.targets import RunContext, run_context

FILES = ("adapter_config.json", "adapter_model.safetensors")
META_FILE = "mentor.json"  # how mentor itself rates with the export (task, student model)
TASK_FILE = "task.toml"  # a run's TOML-defined task travels with its adapter
META_FORMAT = 1
BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the bundled GGUF was converted from


class ExportError(ReviewError):
    """A run that cannot be exported (no adapter, not LoRA...); a user error the CLI reports in one line."""


@dataclass
class Exported:
    root: Path  # NIM_PEFT_SOURCE
    adapter: Path  # root / name: vLLM's --lora-modules name=adapter
    name: str
    base_model: str  # the model the adapter goes on, as the engines should be started with
    rank: int
    merged: Path | None = None


def export_run(home: str | None, run_ref: str, out: Path | None = None, name: str | None = None,
               merged: bool = False, base_model: str | None = None) -> Exported:
    ctx = run_context(home, run_ref, need_run=True)
    run_id = ctx.need_run()
    best = ctx.store.run(run_id)["best_round"]
    if best is None:
        raise ExportError(f"run {run_id} has no best round yet; finish it with `mentor run --resume`")
    refuse_untuned_best(ctx, "there is no adapter to export")
    source = Path(ctx.rounds()[best]["adapter"])
    config = _checked_config(source)
    name = name or f"mentor-run{run_id}"
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ExportError(f"--name {name!r}: use letters, digits, '-', '_' or '.' (it becomes a folder and a model name)")
    root = Path(out) if out else home_dir(home) / "export" / f"run-{run_id}"
    target = root / name
    student_model = ctx.config.student.model
    base = base_model or (BUNDLED_HUB_ID if student_model == "bundled" else student_model)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(source / FILES[1], tmp / FILES[1])
    if (source / CALIBRATION_FILE).is_file():
        # mentor's own label scoring (`--adapter DIR`) applies it; engines that generate text ignore it.
        shutil.copy2(source / CALIBRATION_FILE, tmp / CALIBRATION_FILE)
    task = ctx.config.task
    if Path(task).suffix == ".toml" and Path(task).is_file():
        shutil.copy2(task, tmp / TASK_FILE)
        task = TASK_FILE
    student = ctx.config.student
    meta = {"format": META_FORMAT, "run": run_id, "round": best, "task": task, "base_model": base,
            "student": {"model": student_model, "max_length": student.max_length, "max_new_tokens": student.max_new_tokens}}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    # The engines start from the base model's name or path; a local cache path would mean nothing on the server.
    (tmp / FILES[0]).write_text(json.dumps({**config, "base_model_name_or_path": base}, indent=2) + "\n", encoding="utf-8")
    _shareable(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    result = Exported(root=root, adapter=target, name=name, base_model=base, rank=int(config["r"]))
    if merged:
        result.merged = merge(student_model, source, root / f"{name}-merged")
    return result


def refuse_untuned_best(ctx: RunContext, what_then: str) -> None:
    """An error when the run's best round is round 0, the untuned model: no round improved on it (`--rounds 0`, or
    every round rolled back), so there is no adapter; `what_then` says what that means for the command."""
    run_id = ctx.need_run()
    if ctx.store.run(run_id)["best_round"] == 0:
        raise ExportError(f"run {run_id}'s best round is round 0, the untuned model (no round improved on it): "
                          f"{what_then}")


def _shareable(folder: Path) -> None:
    """Every file as readable as the user's umask allows. safetensors writes weights owner-only (0600), and the
    copies kept that, so a serving container running as another user (NIM's) could not read the adapter."""
    mask = os.umask(0)
    os.umask(mask)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~mask)


def _checked_config(adapter: Path) -> dict:
    """The adapter's config, after checking it is a LoRA adapter the engines can load."""
    config_path = adapter / FILES[0]
    if not config_path.is_file():
        raise ExportError(f"{adapter}: no {FILES[0]}; the run's adapter folder is missing or incomplete")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("kind") == "mentor-scripted":
        raise ExportError(f"{adapter} belongs to the scripted test student: there are no weights to export")
    if config.get("peft_type") != "LORA" or "r" not in config:
        raise ExportError(f"{adapter}: not a LoRA adapter (peft_type {config.get('peft_type')!r}); vLLM and NIM serve LoRA only")
    if not (adapter / FILES[1]).is_file():
        raise ExportError(f"{adapter}: no {FILES[1]}; re-save the adapter with safe_serialization=True")
    return config


@dataclass(frozen=True)
class ExportedModel:
    """What an export's mentor.json says: how to rate with the adapter next to it."""

    task: str  # a built-in task name, or the path of the task.toml copied with the adapter
    student_model: str  # 'bundled', a hub id, or the local model folder the run trained on
    base_model: str  # what the engines load (adapter_config.json's base_model_name_or_path)
    max_length: int
    max_new_tokens: int


def read_export(adapter: Path) -> ExportedModel | None:
    """The mentor.json of a folder written by `mentor export`; None for any other adapter folder (a round's
    adapter in a store, an export made before mentor.json existed)."""
    path = Path(adapter) / META_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExportError(f"{path}: not valid JSON ({err}); re-export the run with `mentor export`") from None
    if not isinstance(data, dict) or data.get("format") != META_FORMAT:
        raise ExportError(f"{path}: field 'format' is {data.get('format') if isinstance(data, dict) else data!r}, "
                          f"expected {META_FORMAT}; re-export the run with this version of mentor")
    student = data.get("student")
    fields = {"task": data.get("task"), "base_model": data.get("base_model"),
              "student.model": student.get("model") if isinstance(student, dict) else None}
    for name, value in fields.items():
        if not isinstance(value, str) or not value:
            raise ExportError(f"{path}: field '{name}' must be a non-empty string, got {value!r}")
    numbers = {name: student.get(name) for name in ("max_length", "max_new_tokens")}
    for name, value in numbers.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ExportError(f"{path}: field 'student.{name}' must be a positive integer, got {value!r}")
    task = fields["task"]
    if task == TASK_FILE:
        task = str(Path(adapter) / TASK_FILE)
    return ExportedModel(task, fields["student.model"], fields["base_model"], numbers["max_length"], numbers["max_new_tokens"])


def adapter_context(adapter: Path | None, home: str | None, run_ref: str, need_run: bool, task: str | None = None,
                    student: str | None = None) -> RunContext:
    """`run_context`, except that an exported adapter brings its own task and student model (from its
    mentor.json): an adapter only rates well on the base model and prompt it was trained with, whatever
    the store here holds. --task and --student still win."""
    if adapter is not None and not Path(adapter).is_dir():
        raise ExportError(f"--adapter {adapter}: no such folder; give a folder written by `mentor export` "
                          f"(it holds adapter_config.json), or use --untuned")
    meta = read_export(Path(adapter)) if adapter is not None else None
    ctx = run_context(home, run_ref, need_run, task=task or (meta.task if meta else None), student=student)
    if meta is not None and student is None:
        ctx.student_config = replace(ctx.student_config, model=_student_model(meta, Path(adapter)),
                                     max_length=meta.max_length, max_new_tokens=meta.max_new_tokens)
    return ctx


def _student_model(meta: ExportedModel, adapter: Path) -> str:
    """The model the adapter goes on, as this machine can load it: the run's own student when it is here
    ('bundled', a hub id, a folder that exists), else the base model the export names."""
    student, base = meta.student_model, meta.base_model
    if student == "bundled" or not Path(student).is_absolute() or Path(student).is_dir():
        return student
    if base == BUNDLED_HUB_ID:
        return "bundled"
    if not Path(base).is_absolute() or Path(base).is_dir():
        return base
    raise ExportError(f"{adapter / META_FILE}: the adapter was trained on the local model {meta.student_model}, which "
                      f"is not on this machine; pass --student with that model's folder or hub id")


def merge(student_model: str, adapter: Path, out: Path) -> Path:
    """The base model with the adapter merged in, saved with its tokenizer as a plain model folder."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if student_model == "bundled":
        from mentor.students.bundled import bundled_model_dir

        base_source = str(bundled_model_dir())
    else:
        base_source = student_model
    base = AutoModelForCausalLM.from_pretrained(base_source, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_source).save_pretrained(tmp)
    _shareable(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def serving_commands(result: Exported) -> str:
    """The commands that serve the export with vLLM and with NIM (printed by `mentor export`)."""
    root, name = result.root.resolve(), result.name
    lines = [
        f"# vLLM: the base model plus this adapter, served as model '{name}'",
        f"vllm serve {result.base_model} --enable-lora --max-lora-rank {_lora_rank_choice(result.rank)} \\",
        f"    --lora-modules {name}={result.adapter.resolve()}",
        "",
        "# NVIDIA NIM for the same base model: every folder under NIM_PEFT_SOURCE is an adapter named after it",
        "docker run --rm --gpus all -p 8000:8000 -e NGC_API_KEY \\",
        f"    -e NIM_PEFT_SOURCE=/home/nvs/loras -v {root}:/home/nvs/loras \\",
        "    nvcr.io/nim/<the NIM of your base model>:latest",
        "",
        f"# either one then answers OpenAI-style requests for model '{name}' at http://localhost:8000/v1",
        "",
        "# mentor itself rates with the folder anywhere (CI, another repository; no store needed):",
        f"mentor review --adapter {result.adapter.resolve()} --base origin/main --sarif FILE",
    ]
    if result.merged is not None:
        lines += ["", "# the merged model needs no LoRA support:", f"vllm serve {result.merged.resolve()}"]
    return "\n".join(lines)


def _lora_rank_choice(rank: int) -> int:
    """vLLM accepts --max-lora-rank from a fixed list; the smallest that holds this adapter."""
    return next((c for c in (8, 16, 32, 64, 128, 256, 320, 512) if c >= rank), rank)
