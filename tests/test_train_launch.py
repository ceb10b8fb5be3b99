"""`mentor train` (one fine-tuning job) and the loop's `student.launcher`, which runs it as a subprocess
(plain python, or torchrun on CPU) so that only the training, never the loop, is launched per GPU."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import mentor.commands_train  # noqa: F401 - registers `mentor train` on the app
from mentor import launch
from mentor.cli import app
from mentor.config import load_config
from mentor.data import load_examples
from mentor.runner import open_store, start_run
from mentor.students import StudentError
from mentor.students.hf import HFStudent
from mentor.tasks import SEVERITY
from tests.conftest import make_examples, write_jsonl
from tests.tiny_model import save_tiny_model

STUDENT = ["student.learning_rate=0.05", "student.epochs=1", "student.batch_size=4", "student.micro_batch_size=2",
           "student.eval_batch_size=8", "student.threads=1", "student.lora.rank=4", "student.lora.alpha=8"]
LOOP = ["teacher.exam_size=8", "teacher.new_examples=12", "loop.rounds=1", "data.holdout_limit=8"]
TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def weights(adapter: Path) -> dict[str, torch.Tensor]:
    return load_file(str(adapter / "adapter_model.safetensors"))


def train_cli(*args: str) -> dict:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mentor_train_saves_a_reloadable_adapter_and_continues_from_one(tmp_path, tiny):
    data = write_jsonl(tmp_path / "train.jsonl", make_examples(2, "train"))
    common = ["--task", "severity", "--data", str(data), f"student.model={tiny}", *STUDENT]
    report = train_cli("--out", str(tmp_path / "a"), *common)
    assert report["adapter_dir"] == str(tmp_path / "a") and report["examples"] == 8 and report["steps"] >= 1
    trained = weights(tmp_path / "a")
    assert any("lora_B" in name and tensor.abs().sum() > 0 for name, tensor in trained.items())

    # --from continues that adapter: at learning rate 0 it comes back unchanged; without --from a fresh one does.
    train_cli("--out", str(tmp_path / "b"), "--from", str(tmp_path / "a"), *common, "student.learning_rate=0")
    train_cli("--out", str(tmp_path / "c"), *common, "student.learning_rate=0")
    assert all(torch.equal(trained[name], tensor) for name, tensor in weights(tmp_path / "b").items())
    assert all(tensor.abs().sum() == 0 for name, tensor in weights(tmp_path / "c").items() if "lora_B" in name)

    student = HFStudent(str(tiny), load_config(overrides=STUDENT).student)
    base = [a.probs for a in student.answer(SEVERITY, [e.input for e in make_examples(1, "q")])]
    student.use_adapter(tmp_path / "a")
    assert [a.probs for a in student.answer(SEVERITY, [e.input for e in make_examples(1, "q")])] != base


def test_mentor_train_rejects_overrides_beside_a_complete_json_config(tmp_path):
    (tmp_path / "c.json").write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "--data", "x.jsonl", "--out", "o", "--config-json", str(tmp_path / "c.json"),
                                      "student.epochs=1"])
    assert result.exit_code != 0 and "--config-json" in str(result.exception)


def _loop_through_launcher(launcher: str, tiny: Path, data_files) -> tuple[dict, Path]:
    pool, holdout = data_files
    overrides = [f"data.pool={pool}", f"data.holdout={holdout}", f"student.model={tiny}", *STUDENT, *LOOP,
                 f"student.launcher={json.dumps(launcher)}"]
    run_id = start_run(load_config(overrides=overrides))["run_id"]
    row = open_store().rounds(run_id)[1]
    return row, Path(row["adapter"])


def _assert_same_as_in_process(adapter: Path, tiny: Path) -> None:
    """The launched job trained exactly what the loop would have trained in-process (same config, seed)."""
    examples = load_examples(adapter.with_name(adapter.name + ".train.jsonl"), SEVERITY)
    student = HFStudent(str(tiny), load_config(overrides=STUDENT).student, seed=0)
    student.finetune(SEVERITY, examples, adapter.with_name("in-process"))
    ours, theirs = weights(adapter), weights(adapter.with_name("in-process"))
    assert ours.keys() == theirs.keys()
    assert all(torch.allclose(ours[name], theirs[name], atol=1e-5) for name in ours)


def test_loop_fine_tunes_through_a_python_subprocess(tiny, data_files, home):
    row, adapter = _loop_through_launcher("python", tiny, data_files)
    assert adapter.parent == home.resolve() / "runs" / "1" and adapter.name == "round-1"
    assert (adapter / "adapter_config.json").is_file()
    saved = load_examples(adapter.with_name("round-1.train.jsonl"), SEVERITY)
    assert row["train"]["examples"] == len(saved) > 0 and row["train"]["steps"] >= 1
    config = json.loads(adapter.with_name("round-1.config.json").read_text(encoding="utf-8"))
    assert config["student"]["launcher"] == "python" and config["student"]["lora"]["rank"] == 4
    assert row["metrics"]["n"] == 8  # the loop went on to score the new adapter
    _assert_same_as_in_process(adapter, tiny)


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed in this venv")
def test_loop_fine_tunes_under_torchrun_on_cpu(tiny, data_files, home):
    row, adapter = _loop_through_launcher(f"{shlex.quote(str(TORCHRUN))} --nproc_per_node 1", tiny, data_files)
    assert (adapter / "adapter_config.json").is_file() and row["train"]["steps"] >= 1
    _assert_same_as_in_process(adapter, tiny)


def test_launch_command_runs_this_interpreter_and_passes_the_starting_adapter(tmp_path):
    argv = launch.command("python", "severity", tmp_path / "d.jsonl", tmp_path / "out", tmp_path / "c.json", tmp_path / "best")
    assert argv[:5] == [sys.executable, "-m", "mentor", "train", "--task"]
    assert argv[-2:] == ["--from", str(tmp_path / "best")]
    assert launch.command("torchrun --nproc_per_node 4", "t", Path("d"), Path("o"), Path("c"), None)[:4] == \
        ["torchrun", "--nproc_per_node", "4", "-m"]


FAILING = f"{shlex.quote(sys.executable)} -c \"import sys; sys.stderr.write('CUDA out of memory\\n'); sys.exit(3)\""


@pytest.mark.parametrize("launcher, expected", [
    (FAILING, ["exit status 3", "CUDA out of memory", sys.executable]),
    ("no-such-launcher-here --nproc_per_node 2", ["'no-such-launcher-here' is not an executable", "-m mentor train"]),
    (f"{shlex.quote(sys.executable)} -c \"print('hello')\"", ["printed no TrainReport", sys.executable]),
], ids=["exits-non-zero", "not-on-path", "no-report"])
def test_a_failing_launcher_stops_the_run_with_the_command_and_its_log(data_files, home, launcher, expected):
    pool, holdout = data_files
    overrides = [f"data.pool={pool}", f"data.holdout={holdout}", "student.model=scripted", *LOOP,
                 f"student.launcher={json.dumps(launcher)}"]
    with pytest.raises(StudentError) as caught:
        start_run(load_config(overrides=overrides))
    for text in expected:
        assert text in str(caught.value)
    run = open_store().run(1)
    assert run["status"] != "finished"  # `mentor run --resume` retries the fine-tune step
