"""The Hugging Face student's training: its loss (mentor.students.hf_training.AnswerLoss) against a hand computation,
and the sequences it trains on."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mentor.students.hf import HFStudent
from mentor.students.hf_training import AnswerLoss
from mentor.tasks import SEVERITY
from tests.test_student_hf import CONFIG, SHARED, TRIVIAL
from tests.tiny_model import save_tiny_model


def _answer_loss_by_hand(logits, labels, heads, weight, label_length=1):
    """The loss AnswerLoss documents, computed one row at a time (every row's label `label_length` tokens)."""
    total, count = 0.0, 0
    for row_logits, row_labels in zip(logits, labels):
        positions = [t for t in range(1, len(row_labels)) if row_labels[t] != -100]
        for t in positions:
            total += torch.nn.functional.cross_entropy(row_logits[t - 1], row_labels[t]).item()
        first = positions[0]
        for t in positions[:label_length]:
            total += (weight - 1) * torch.nn.functional.cross_entropy(row_logits[t - 1], row_labels[t]).item()
        if int(row_labels[first]) in heads:
            restricted = row_logits[first - 1][heads]
            total += weight * torch.nn.functional.cross_entropy(restricted, torch.tensor(heads.index(int(row_labels[first])))).item()
        count += len(positions)
    return total / count


def test_answer_loss_weighs_the_label_like_the_whole_explanation_when_balanced():
    torch.manual_seed(0)
    heads = [3, 5, 7, 9]
    logits = torch.randn(2, 8, 12)
    labels = torch.tensor([[-100, -100, -100, 5, 1, 2, 4, 0], [-100, -100, -100, -100, -100, 9, 2, 0]])
    outputs = type("Out", (), {"logits": logits})()
    plain = AnswerLoss(heads, [[h] for h in heads])(outputs, labels).item()
    assert plain == pytest.approx(_answer_loss_by_hand(logits, labels, heads, 1.0), rel=1e-5)
    balanced = AnswerLoss(heads, [[h] for h in heads], balance=True)(outputs, labels).item()
    assert balanced == pytest.approx(_answer_loss_by_hand(logits, labels, heads, 2.0), rel=1e-5)  # sqrt(8 answer tokens / 2 rows)
    # Two-token labels (5, 1) and (9, 2), no restricted term (as when labels share a first token): both tokens weighed.
    two = AnswerLoss([], [[5, 1], [9, 2], [3, 3]], balance=True)(outputs, labels).item()
    assert two == pytest.approx(_answer_loss_by_hand(logits, labels, [], 2.0, label_length=2), rel=1e-5)


def test_context_free_copies_teach_each_example_again_without_its_code(tmp_path):
    student = HFStudent(str(save_tiny_model(tmp_path / "tiny")), replace(CONFIG, context_free_copies=2, epochs=1), seed=0)
    features = student.train_features(SEVERITY, TRIVIAL[:2])
    assert len(features) == 6  # each example, then its two copies without the code
    for k, example in enumerate(TRIVIAL[:2]):
        full, *copies = features[3 * k:3 * k + 3]
        assert full["input_ids"] == sum(student.encode(SEVERITY, example.input, "trivial", None, end=True), [])
        bare = sum(student.encode(SEVERITY, {**example.input, "code": ""}, "trivial", None, end=True), [])
        assert all(c["input_ids"] == bare for c in copies) and len(bare) < len(full["input_ids"])
        assert all(c["labels"][-len(student.answer_ids("trivial", end=True)):] == student.answer_ids("trivial", end=True)
                   for c in copies)
    # A task without context fields has nothing to leave out: one sequence per example.
    assert len(student.train_features(SHARED, TRIVIAL[:2])) == 2
    report = student.finetune(SEVERITY, TRIVIAL, tmp_path / "adapter")
    assert report.examples == len(TRIVIAL) and report.steps == 6  # 21 sequences, batches of 4


def test_min_sequences_gives_a_small_round_more_passes_and_leaves_a_large_one_alone(tmp_path):
    from mentor.students.hf_training import epochs_for

    config = replace(CONFIG, epochs=3, min_sequences=288)
    assert epochs_for(config, 48) == 6 and epochs_for(config, 96) == 3 and epochs_for(config, 200) == 3
    assert epochs_for(replace(config, min_sequences=0), 48) == 3
    student = HFStudent(str(save_tiny_model(tmp_path / "tiny")), replace(CONFIG, epochs=1, min_sequences=3 * len(TRIVIAL)), seed=0)
    report = student.finetune(SEVERITY, TRIVIAL, tmp_path / "adapter")
    # 7 examples: 21 sequences in batches of 4 (the same steps as three passes), where one pass would take 2.
    assert report.examples == len(TRIVIAL) and report.steps == 6
