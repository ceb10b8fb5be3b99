"""mentor export: the best adapter in the folder layout vLLM and NIM load, and the merged model, checked
by loading them back the way those engines' loaders do (PEFT folder, plain model folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from mentor.config import LoraConfig, RunConfig, StudentConfig, to_dict
from mentor.export import ExportError, adapter_context, export_run, read_export, serving_commands
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
    assert sorted(p.name for p in result.adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "mentor.json"]
    meta = json.loads((result.adapter / "mentor.json").read_text())
    assert meta["task"] == "severity" and meta["student"]["model"] == str(model_dir) and meta["round"] == 1
    config = json.loads((result.adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["base_model_name_or_path"] == str(model_dir)
    tensors = load_file(result.adapter / "adapter_model.safetensors")
    assert tensors and all("lora_A" in k or "lora_B" in k for k in tensors)
    # a serving container runs as another user: the weights are as readable as the umask allows, not owner-only
    mask = os.umask(0)
    os.umask(mask)
    for folder in (result.adapter, result.merged):
        assert {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == \
            {p.name: oct(0o666 & ~mask) for p in folder.iterdir()}

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


def test_cli_export_vocabulary(home, trained, tmp_path, monkeypatch, capsys):
    model_dir, adapter = trained
    run_id = finished_run(str(model_dir), adapter)
    status, out, err = run_cli(monkeypatch, capsys, "export", "--run", str(run_id), "-o", str(tmp_path / "a"), "--json")
    assert status == 0, err
    assert json.loads(out)["adapter"] == str((tmp_path / "a" / f"mentor-run{run_id}").resolve())
    status, _, err = run_cli(monkeypatch, capsys, "export", str(run_id), "--out", str(tmp_path / "b"))  # old spellings
    assert status == 0 and (tmp_path / "b" / f"mentor-run{run_id}" / "mentor.json").is_file(), err
    status, _, err = run_cli(monkeypatch, capsys, "export", "1", "--run", "2")
    assert status == 2 and "given twice" in err
    status, _, err = run_cli(monkeypatch, capsys, "export", "--output", str(tmp_path / "c"), "--out", str(tmp_path / "d"))
    assert status == 2 and "given twice" in err


def test_an_exported_adapter_brings_its_task_and_model_where_there_is_no_store(home, trained, tmp_path, monkeypatch):
    from dataclasses import replace

    model_dir, adapter = trained
    exported = export_run(None, str(finished_run(str(model_dir), adapter)), tmp_path / "published").adapter
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ctx = adapter_context(exported, str(elsewhere / "no-store"), "latest", need_run=False)
    assert ctx.run_id is None and ctx.task.name == "severity" and ctx.student_config.model == str(model_dir)
    assert not (elsewhere / "no-store").exists()
    assert adapter_context(exported, None, "latest", need_run=False, student="scripted").student_config.model == "scripted"
    # Trained on a local model that is not on this machine: the base model the export names, else a clear error.
    meta = read_export(exported)
    moved = replace(meta, student_model="/gone/tiny")
    from mentor.export import _student_model

    assert _student_model(replace(moved, base_model="org/tiny"), exported) == "org/tiny"
    assert _student_model(replace(moved, base_model="HuggingFaceTB/SmolLM2-135M-Instruct"), exported) == "bundled"
    with pytest.raises(ExportError, match="not on this machine; pass --student"):
        _student_model(replace(moved, base_model="/gone/too"), exported)


@pytest.mark.parametrize("edit, message", [
    (lambda m: "{not json", "mentor.json: not valid JSON"),
    (lambda m: {**m, "format": 7}, "field 'format' is 7"),
    (lambda m: {**m, "task": ""}, "field 'task' must be a non-empty string"),
    (lambda m: {**m, "student": {**m["student"], "model": 3}}, "field 'student.model'"),
    (lambda m: {**m, "student": {**m["student"], "max_length": 0}}, "field 'student.max_length' must be a positive integer"),
])
def test_a_broken_mentor_json_names_the_file_and_field(tmp_path, edit, message):
    folder = tmp_path / "adapter"
    folder.mkdir()
    good = {"format": 1, "task": "severity", "base_model": "org/m", "student": {"model": "bundled", "max_length": 320,
                                                                                "max_new_tokens": 96}}
    assert read_export(folder) is None  # no mentor.json: any adapter folder, read the old way
    (folder / "mentor.json").write_text(json.dumps(good))
    assert read_export(folder).student_model == "bundled"
    changed = edit(good)
    (folder / "mentor.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(ExportError, match=message):
        read_export(folder)
    with pytest.raises(ExportError, match="no such folder"):
        adapter_context(tmp_path / "missing", None, "latest", need_run=False)
