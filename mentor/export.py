"""`mentor export RUN`: a run's best adapter in the layout serving engines load, optionally merged.

vLLM (`--enable-lora --lora-modules NAME=DIR`) and NVIDIA NIM (`NIM_PEFT_SOURCE=ROOT`, one folder per
adapter under ROOT) both read a plain PEFT LoRA folder: `adapter_config.json` + `adapter_model.safetensors`.
So the export is ROOT/NAME/ with those two files (and the run's `calibration.json`, which only mentor's own
label scoring applies), checked before it is written, plus, with `--merged`,
ROOT/NAME-merged/: the base model with the adapter folded in (PEFT's merge_and_unload), for engines or
runtimes without LoRA support. torch, transformers and peft are imported only for `--merged`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from mentor.calibration import CALIBRATION_FILE
from mentor.review.diff import ReviewError
from mentor.runner import home_dir
from mentor.targets import run_context

FILES = ("adapter_config.json", "adapter_model.safetensors")
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
    if not best:
        raise ExportError(f"run {run_id}'s best round is round 0, the untuned model: there is no adapter to export")
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
    # The engines start from the base model's name or path; a local cache path would mean nothing on the server.
    (tmp / FILES[0]).write_text(json.dumps({**config, "base_model_name_or_path": base}, indent=2), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    result = Exported(root=root, adapter=target, name=name, base_model=base, rank=int(config["r"]))
    if merged:
        result.merged = merge(student_model, source, root / f"{name}-merged")
    return result


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
    ]
    if result.merged is not None:
        lines += ["", "# the merged model needs no LoRA support:", f"vllm serve {result.merged.resolve()}"]
    return "\n".join(lines)


def _lora_rank_choice(rank: int) -> int:
    """vLLM accepts --max-lora-rank from a fixed list; the smallest that holds this adapter."""
    return next((c for c in (8, 16, 32, 64, 128, 256, 320, 512) if c >= rank), rank)
