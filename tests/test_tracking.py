"""Experiment tracking: `student.report_to` reaches the Hugging Face Trainer (a tiny model's fine-tuning writes
its loss, step by step, as TensorBoard events), the tracker names are transformers' own, and a tracker that is
not installed fails when the config is read, before any run is recorded."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mentor import config as config_module
from mentor.config import TRACKERS, ConfigError, load_config
from mentor.records import Example
from mentor.tasks import SEVERITY
from tests.conftest import make_examples
from tests.tiny_model import save_tiny_model

TINY = ["student.dtype=float32", "student.threads=1", "student.learning_rate=0.05", "student.epochs=1",
        "student.batch_size=2", "student.micro_batch_size=2", "student.lora.rank=4", "student.lora.alpha=8"]


def test_tracker_names_are_the_trainers_own():
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    assert set(TRACKERS) <= set(INTEGRATION_TO_CALLBACK)
    assert load_config().student.report_to == ()  # nothing is reported unless asked


def test_a_tracker_that_is_not_installed_fails_when_the_config_is_read(monkeypatch):
    monkeypatch.setattr(config_module, "_installed", lambda module: False)
    with pytest.raises(ConfigError, match=r"'student.report_to' is \('tensorboard', 'mlflow'\): tensorboard, mlflow are "
                                          r"not installed: pip install tensorboard mlflow"):
        load_config(overrides=["student.report_to=tensorboard,mlflow"])
    with pytest.raises(ConfigError, match="'student.report_to' has 'tensorbored'; choose from tensorboard, mlflow"):
        load_config(overrides=["student.report_to=tensorbored"])


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under `folder`: tag -> [(step, value)]. Event files are
    TFRecords: length (8 bytes), its CRC (4), an Event protobuf, its CRC (4)."""
    from tensorboardX.proto.event_pb2 import Event

    found: dict[str, list[tuple[int, float]]] = {}
    for path in folder.rglob("events.out.tfevents*"):
        blob = path.read_bytes()
        at = 0
        while at < len(blob):
            (length,) = struct.unpack("<Q", blob[at:at + 8])
            event = Event.FromString(blob[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_fine_tuning_reports_its_loss_to_tensorboard(tmp_path, monkeypatch):
    from mentor.students.hf import HFStudent

    logs = tmp_path / "tensorboard"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(logs))
    model = save_tiny_model(tmp_path / "tiny")
    config = load_config(overrides=[f"student.model={model}", "student.report_to=tensorboard", *TINY])
    examples: list[Example] = make_examples(2)
    report = HFStudent(str(model), config.student, seed=0).finetune(SEVERITY, examples, tmp_path / "adapter")
    scalars = _scalars(logs)
    losses = scalars.get("train/loss", [])
    assert report.steps > 1 and [step for step, _ in losses] == list(range(1, report.steps + 1)), scalars.keys()
    assert losses[-1][1] == pytest.approx(report.final_loss, rel=1e-4)
    assert "train/learning_rate" in scalars
