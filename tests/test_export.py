"""mentor export: the best adapter in the folder layout vLLM and NIM load, and the merged model, checked
by loading them back the way those engines' loaders do (PEFT folder, plain model folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mentor.config import LoraConfig, RunConfig, StudentConfig, to_dict
from mentor.export import ExportError, export_run, serving_commands
from mentor.records import Example
from mentor.runner import open_store
from mentor.students.hf import HFStudent
from mentor.students.scripted import ScriptedStudent
from mentor.tasks import SEVERITY
from tests.test_review import run_cli
from tests.tiny_model import save_tiny_model

CONFIG = StudentConfig(dtype="float32", learning_rate=5e-2, epochs=2, batch_size=4, micro_batch_size=4, lora=LoraConfig(rank=8, alpha=16, dropout=0.0))
TRAIN = [Example({"code": f"x = {i}", "review": "the name x is unclear"}, {"issue_type": "trivial"}) for i in range(8)]


def finished_run(model: str, adapter: Path | None, best: int = 1) -> int:
    """A run in the store whose best round saved `adapter` (what `mentor run` leaves behind)."""
    store = open_store(create=True)
    config = RunConfig(student=StudentConfig(**{**CONFIG.__dict__, "model": model}))
    run_id = store.create_run("severity", to_dict(config))
    store.update_round(run_id, 0, metrics={"macro_f1": 0.1})
    if adapter is not None:
        store.update_round(run_id, 1, adapter=str(adapter), metrics={"macro_f1": 0.5})
    store.finish_run(run_id, "finished", "test", best)
    return run_id


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("export")
    model_dir = save_tiny_model(root / "tiny")
    student = HFStudent(str(model_dir), CONFIG, seed=0)
    student.finetune(SEVERITY, TRAIN, root / "round-1")
    return model_dir, root / "round-1"


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_export_writes_the_engine_layout_and_the_merged_model(home, trained, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model_dir, adapter = trained
    run_id = finished_run(str(model_dir), adapter)
    result = export_run(None, str(run_id), tmp_path / "loras", name="reviewer", merged=True)
    assert result.adapter == tmp_path / "loras" / "reviewer"
    assert sorted(p.name for p in result.adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((result.adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["base_model_name_or_path"] == str(model_dir)
    tensors = load_file(result.adapter / "adapter_model.safetensors")
    assert tensors and all("lora_A" in k or "lora_B" in k for k in tensors)

    ids = torch.tensor([[5, 17, 42, 99, 7]])
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), result.adapter).eval()
    base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    merged = AutoModelForCausalLM.from_pretrained(result.merged).eval()
    assert not torch.allclose(logits(tuned, ids), logits(base, ids))  # the adapter does something
    assert torch.allclose(logits(merged, ids), logits(tuned, ids), atol=1e-4)  # and merging keeps it
    assert (result.merged / "tokenizer.json").is_file() or (result.merged / "tokenizer_config.json").is_file()

    commands = serving_commands(result)
    assert f"--lora-modules reviewer={result.adapter.resolve()}" in commands and "--enable-lora" in commands
    assert f"-v {result.root.resolve()}:/home/nvs/loras" in commands and "NIM_PEFT_SOURCE=/home/nvs/loras" in commands


def test_cli_export_prints_both_serving_commands(home, trained, monkeypatch, capsys):
    model_dir, adapter = trained
    finished_run(str(model_dir), adapter)
    status, out, err = run_cli(monkeypatch, capsys, "export", "latest", "--base-model", "org/base-model")
    assert status == 0, err
    assert "vllm serve org/base-model --enable-lora --max-lora-rank 8" in out and "NIM_PEFT_SOURCE" in out
    exported = home / "export" / "run-1" / "mentor-run1" / "adapter_config.json"
    assert json.loads(exported.read_text())["base_model_name_or_path"] == "org/base-model"


def test_nothing_to_export_is_a_clear_error(home, tmp_path):
    untuned = finished_run("scripted", None, best=0)
    with pytest.raises(ExportError, match="round 0, the untuned model"):
        export_run(None, str(untuned))
    fake = ScriptedStudent()
    fake.finetune(SEVERITY, TRAIN, tmp_path / "fake")
    scripted = finished_run("scripted", tmp_path / "fake")
    with pytest.raises(ExportError, match="scripted test student"):
        export_run(None, str(scripted))


def test_export_carries_the_adapters_calibration(home, trained, tmp_path):
    import shutil

    from mentor import calibration

    model_dir, adapter = trained
    calibrated = tmp_path / "round-1"
    shutil.copytree(adapter, calibrated)
    fit = calibration.Calibration({"critical": 0.0, "major": -1.0, "minor": 0.5, "trivial": 1.5}, 40, 0.4, 0.5)
    calibration.save(calibrated, fit)
    result = export_run(None, str(finished_run(str(model_dir), calibrated)), tmp_path / "loras")
    assert calibration.load(result.adapter) == fit.offsets
