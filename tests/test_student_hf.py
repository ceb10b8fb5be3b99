"""The Hugging Face student on a tiny random-weight Llama built offline, plus the Student contract that
the scripted fake must honour too. The bundled SmolLM2 has its own file, test_bundled_student.py."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from mentor import calibration
from mentor.config import LoraConfig, StudentConfig
from mentor.records import Example
from mentor.students import StudentError
from mentor.students.hf import HFStudent
from mentor.students.hf_scoring import chunks
from mentor.students.scripted import ScriptedStudent
from mentor.tasks import EXPLAIN, SEVERITY, Task
from tests.tiny_model import save_tiny_model

CONFIG = StudentConfig(dtype="float32", learning_rate=5e-2, epochs=4, batch_size=4, micro_batch_size=2, eval_batch_size=3,
                       max_new_tokens=12, threads=1, lora=LoraConfig(rank=8, alpha=16, dropout=0.0))

# Labels that tokenize into several pieces, two of them sharing a first token: scoring must handle both.
SHARED = Task(name="shared", description="rate it", input_fields=("code", "review"), output_fields=("issue_type",),
              student_prompt="Code:\n{code}\nReview: {review}\nSeverity:", label_field="issue_type",
              labels=("critical", "minor", "minor issue", "trivial"))

ITEMS = [{"code": "x = 1\n" * k, "review": "name " * (4 - k % 4) + "is unclear"} for k in range(1, 8)]
TRIVIAL = [Example(item, {"issue_type": "trivial", "explanation": "only the name is unclear"}) for item in ITEMS]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[bool, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {chat: save_tiny_model(root / ("chat" if chat else "plain"), chat_template=chat) for chat in (True, False)}


@pytest.fixture
def student(model_dirs) -> HFStudent:
    return HFStudent(str(model_dirs[True]), CONFIG, seed=0)


def lora_and_base(student: HFStudent) -> tuple[dict, dict]:
    """LoRA and base parameters, base ones named as in the unwrapped model."""
    params = {name.removeprefix("base_model.model.").replace(".base_layer", ""): p.detach().clone()
              for name, p in student.model.named_parameters()}
    return ({n: p for n, p in params.items() if "lora_" in n}, {n: p for n, p in params.items() if "lora_" not in n})


def label_probs(student: HFStudent, task: Task = SEVERITY) -> list[dict[str, float]]:
    return [a.probs for a in student.answer(task, ITEMS)]


def flat(probs: list[dict[str, float]]) -> list[float]:
    return [row[label] for row in probs for label in SEVERITY.labels]


# ---- answering -----------------------------------------------------------------------------------

def test_answers_are_valid_labels_with_probabilities(student):
    done = []
    answers = student.answer(SEVERITY, ITEMS, progress=done.append)
    assert sum(done) == len(ITEMS) and len(done) >= math.ceil(len(ITEMS) / CONFIG.eval_batch_size)
    assert max(done) <= CONFIG.eval_batch_size
    for answer in answers:
        assert answer.parsed is not None and answer.parsed["issue_type"] in SEVERITY.labels
        assert answer.raw == answer.parsed["issue_type"]
        assert set(answer.probs) == set(SEVERITY.labels)
        assert sum(answer.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert answer.parsed["issue_type"] == max(answer.probs, key=answer.probs.get)
        assert answer.seconds > 0


def test_batches_are_cut_where_lengths_jump_and_never_exceed_the_batch_size():
    lengths = [41, 43, 46, 47, 51, 52, 53, 53, 54, 55, 56, 56, 57, 57, 58, 59,
               61, 62, 65, 66, 67, 68, 68, 68, 68, 70, 72, 72, 75, 77, 101, 115]  # 32 third-party findings
    spans = chunks(lengths, 16)
    assert [i for span in spans for i in span] == list(range(len(lengths)))  # every prompt once, in order
    assert all(0 < len(span) <= 16 for span in spans)
    padded = sum(len(span) * lengths[span[-1]] for span in spans)
    assert padded < 16 * lengths[15] + 16 * lengths[31]  # fewer positions than two fixed batches of 16 (2,784)
    assert spans[-1] == range(30, 32)  # the two long ones are not padding fourteen short ones
    assert len(chunks([80] * 40, 16)) == 3  # equal lengths: as few passes as the size allows
    assert chunks([], 16) == []
    with pytest.raises(ValueError, match="ascending"):
        chunks([5, 3], 16)


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "plain-prompt"])
def test_scoring_equals_brute_force_likelihood(model_dirs, chat):
    student = HFStudent(str(model_dirs[chat]), CONFIG, seed=0)
    label_ids = {label: student.encode(SHARED, {}, label)[1] for label in SHARED.labels}
    assert max(len(ids) for ids in label_ids.values()) > 1  # the test must cover multi-token labels
    assert label_ids["minor issue"][0] == label_ids["minor"][0]
    answers = student.answer(SHARED, ITEMS)  # batches of 3 prompts of different lengths: padding matters
    # The chat template's system prompt is a prefix long enough to be run once and reused.
    assert (student._prefix is not None) == chat
    for item, answer in zip(ITEMS, answers):
        prompt = student.encode(SHARED, item)[0]
        scores = []
        with torch.no_grad():
            for label in SHARED.labels:
                ids = torch.tensor([prompt + label_ids[label]])
                logp = torch.log_softmax(student.model(input_ids=ids).logits[0].float(), dim=-1)
                scores.append(sum(logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(label_ids[label])))
        expected = torch.softmax(torch.tensor(scores), dim=0).tolist()
        assert [answer.probs[label] for label in SHARED.labels] == pytest.approx(expected, abs=1e-4)
    # One finding at a time uses the prefix's cache in place and crops it back: twice over, the same answers.
    for _ in range(2):
        for item, answer in zip(ITEMS, answers):
            assert student.answer(SHARED, [item])[0].probs == pytest.approx(answer.probs, abs=1e-4)
    if chat:
        assert student._prefix[2].get_seq_length() == len(student._prefix[1])


def test_explain_generates_text_after_the_label(student, tmp_path, monkeypatch):
    student.finetune(EXPLAIN, TRIVIAL, tmp_path / "adapter")  # a random model may stop at once; a trained one talks
    model, written = student.inference_model(), []

    def counting(*args, real=model.generate, **kwargs):  # new tokens per row, as generated (not re-tokenized)
        out = real(*args, **kwargs)
        written.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(model, "generate", counting)
    for answer in student.answer(EXPLAIN, ITEMS[:3]):
        label, _, text = answer.raw.partition("\n")
        assert label in EXPLAIN.labels and text.strip()
        assert answer.parsed is not None and answer.parsed["explanation"]
    assert written and max(written) <= CONFIG.max_new_tokens


def test_long_prompts_are_clipped_head_and_tail_never_the_answer(model_dirs):
    student = HFStudent(str(model_dirs[True]), dataclasses.replace(CONFIG, max_length=60), seed=0)
    item = {"code": "value = compute(value)\n" * 40, "review": "the loop never ends"}
    full = HFStudent(str(model_dirs[True]), dataclasses.replace(CONFIG, max_length=10_000), seed=0).encode(
        EXPLAIN, item, "major", "explanation: it hangs", end=True)
    prompt, answer = student.encode(EXPLAIN, item, "major", "explanation: it hangs", end=True)
    assert answer == full[1]
    assert len(prompt) + len(answer) == 60
    assert prompt[:10] == full[0][:10] and prompt[-10:] == full[0][-10:]


# ---- training --------------------------------------------------------------------------------------

def test_training_features_mask_the_prompt_and_the_loss_uses_only_answers(student):
    features = student.train_features(SEVERITY, TRIVIAL[:3])
    for feature, example in zip(features, TRIVIAL):
        prompt, answer = student.encode(SEVERITY, example.input, "trivial", None, end=True)
        assert feature["input_ids"] == prompt + answer
        assert feature["labels"] == [-100] * len(prompt) + answer
    batch = student._collate(features)
    # The batch keeps logits for the answers only; its loss must equal the plain, full-length one.
    ids, labels = batch["input_ids"], torch.full_like(batch["input_ids"], -100)
    labels[:, -batch["labels"].shape[1]:] = batch["labels"]
    assert ((labels != -100) & (batch["attention_mask"] == 0)).sum() == 0
    with torch.no_grad():
        sliced = student.model(**batch).loss
        full = student.model(input_ids=ids, attention_mask=batch["attention_mask"],
                             position_ids=batch["position_ids"], labels=labels).loss
    assert sliced.item() == pytest.approx(full.item(), rel=1e-5)


def test_a_balanced_explain_loss_teaches_the_label_faster(model_dirs, tmp_path, monkeypatch):
    import mentor.students.hf as hf

    long = "because " + "the name is unclear and the reader has to guess what it holds " * 3
    examples = [Example(item, {"issue_type": "trivial", "explanation": long}) for item in ITEMS]
    gained = {}
    for balance in (False, True):
        if not balance:  # the loss of a label-only task, applied to the explain task's answers
            monkeypatch.setattr(hf, "AnswerLoss", lambda heads, label_ids, balance=False, real=hf.AnswerLoss: real(heads))
        student = HFStudent(str(model_dirs[True]), replace(CONFIG, epochs=4), seed=0)
        before = sum(a.probs["trivial"] for a in student.answer(EXPLAIN, ITEMS, explain=False))
        student.finetune(EXPLAIN, examples, tmp_path / f"adapter-{balance}")
        gained[balance] = sum(a.probs["trivial"] for a in student.answer(EXPLAIN, ITEMS, explain=False)) - before
        monkeypatch.undo()
    assert gained[True] > 1.0 and gained[True] > 5 * gained[False]  # summed over 7 items


def test_finetune_changes_lora_weights_not_base_weights(student, tmp_path):
    _, base_before = lora_and_base(student)
    steps = []
    report = student.finetune(SEVERITY, TRIVIAL, tmp_path / "round-1", progress=steps.append)
    lora, base_after = lora_and_base(student)
    assert lora and base_before.keys() == base_after.keys()
    assert all(torch.equal(base_before[n], base_after[n]) for n in base_before)
    assert any(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n)  # B starts at zero
    assert report.examples == len(TRIVIAL) and report.steps == len(steps) > 0
    assert report.final_loss is not None and math.isfinite(report.final_loss) and report.seconds > 0
    saved = sorted(p.name for p in (tmp_path / "round-1").iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(saved)
    assert not (tmp_path / "round-1.tmp").exists()


def test_training_raises_the_correct_labels_probability(student, tmp_path):
    before = [p["trivial"] for p in label_probs(student)]
    student.finetune(SEVERITY, TRIVIAL, tmp_path / "adapter")
    after = [p["trivial"] for p in label_probs(student)]
    assert all(a > 10 * b for a, b in zip(after, before)) and sum(after) / len(after) > 0.5


def test_saved_adapter_reloads_with_the_same_probabilities(student, tmp_path):
    base = label_probs(student)
    student.finetune(SEVERITY, TRIVIAL, tmp_path / "adapter")
    trained = label_probs(student)
    student.use_adapter(None)
    assert flat(label_probs(student)) == pytest.approx(flat(base), abs=1e-6)
    student.use_adapter(tmp_path / "adapter")
    assert flat(label_probs(student)) == pytest.approx(flat(trained), abs=1e-6)
    assert flat(trained) != pytest.approx(flat(base), abs=1e-3)
    model = student.model
    student.use_adapter(tmp_path / "adapter")  # the same adapter again: nothing reloads
    assert student.model is model


def test_answers_come_from_a_merged_copy_with_the_same_probabilities(model_dirs, student, tmp_path):
    student.finetune(SEVERITY, TRIVIAL, tmp_path / "adapter")
    _, base_before = lora_and_base(student)
    merged = label_probs(student)
    model = student.inference_model()
    assert not isinstance(model, PeftModel) and model is not student.model
    assert student.inference_model() is model  # built once per adapter
    _, base_after = lora_and_base(student)  # the trainable model's base weights are untouched
    assert all(torch.equal(base_before[n], base_after[n]) for n in base_before)
    unmerged = HFStudent(str(model_dirs[True]), dataclasses.replace(CONFIG, merged_inference=False), seed=0)
    unmerged.use_adapter(tmp_path / "adapter")
    assert isinstance(unmerged.inference_model(), PeftModel)
    assert flat(merged) == pytest.approx(flat(label_probs(unmerged)), abs=1e-5)
    # A new fine-tune drops the merged copy: the answers follow the new adapter.
    student.finetune(SEVERITY, [dataclasses.replace(e, output={**e.output, "issue_type": "critical"}) for e in TRIVIAL],
                     tmp_path / "again")
    assert student.inference_model() is not model
    assert all(a.parsed["issue_type"] == "critical" for a in student.answer(SEVERITY, ITEMS))
    student.use_adapter(None)
    assert student.inference_model() is student.model


def test_the_vocabulary_projection_gets_contiguous_rows_when_scoring_and_training(student, tmp_path):
    # A sliced [batch, k, hidden] view made torch run one matmul per prompt over the whole projection weight
    # (7x slower for a batch of 16 on a CPU); the student hands it a contiguous copy of the kept rows.
    seen = []

    def spy(_module, args):
        seen.append((tuple(args[0].shape), args[0].is_contiguous()))

    handles = [student.model.get_output_embeddings().register_forward_pre_hook(spy)]
    student.answer(SEVERITY, ITEMS)
    assert seen and all(contiguous for _, contiguous in seen)
    assert all(shape[1] < 4 for shape, _ in seen)  # only the scored positions are projected
    seen.clear()
    student.finetune(SEVERITY, TRIVIAL[:4], tmp_path / "adapter")
    assert seen and all(contiguous for _, contiguous in seen)
    seen.clear()
    handles.append(student.inference_model().get_output_embeddings().register_forward_pre_hook(spy))
    student.answer(SEVERITY, ITEMS)  # the merged copy used for answering carries the hook too
    assert seen and all(contiguous for _, contiguous in seen)
    for handle in handles:
        handle.remove()


def test_calibration_offsets_saved_with_an_adapter_shift_its_answers(student, tmp_path):
    student.finetune(SEVERITY, TRIVIAL, tmp_path / "adapter")
    trained = label_probs(student)
    calibration.save(tmp_path / "adapter", calibration.Calibration(
        {"critical": 0.0, "major": 0.0, "minor": 30.0, "trivial": 0.0}, items=10, macro_f1_before=0.1, macro_f1_after=0.2))
    student.use_adapter(tmp_path / "adapter")  # the same adapter: its offsets are read again
    answers = student.answer(SEVERITY, ITEMS)
    assert [a.parsed["issue_type"] for a in answers] == ["minor"] * len(ITEMS)
    for a, raw in zip(answers, trained):  # the probabilities are the shifted ones, renormalised
        assert sum(a.probs.values()) == pytest.approx(1.0)
        assert a.probs["trivial"] / a.probs["critical"] == pytest.approx(raw["trivial"] / raw["critical"], rel=1e-3)
    student.finetune(SEVERITY, TRIVIAL, tmp_path / "again")  # a new adapter drops the old one's offsets
    assert all(a.parsed["issue_type"] != "minor" for a in student.answer(SEVERITY, ITEMS))
    (tmp_path / "adapter" / calibration.CALIBRATION_FILE).write_text('{"offsets": {"urgent": 1.0}}')
    student.use_adapter(tmp_path / "adapter")
    with pytest.raises(calibration.CalibrationError, match="urgent"):
        student.answer(SEVERITY, ITEMS)


def test_training_continues_from_the_loaded_adapter(model_dirs, tmp_path):
    first = HFStudent(str(model_dirs[True]), CONFIG, seed=0)
    first.finetune(SEVERITY, TRIVIAL, tmp_path / "round-1")
    # A new process resumes: load round 1, train round 2 with a zero learning rate: round 2's adapter
    # must be round 1's, not a fresh one (whose B matrices would be zero).
    second = HFStudent(str(model_dirs[True]), dataclasses.replace(CONFIG, learning_rate=0.0), seed=1)
    second.use_adapter(tmp_path / "round-1")
    second.finetune(SEVERITY, TRIVIAL[:2], tmp_path / "round-2")
    one, two = (load_file(tmp_path / name / "adapter_model.safetensors") for name in ("round-1", "round-2"))
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)
    # And with learning, a third round moves on from there.
    third = HFStudent(str(model_dirs[True]), CONFIG, seed=0)
    third.use_adapter(tmp_path / "round-2")
    third.finetune(SEVERITY, TRIVIAL, tmp_path / "round-3")
    three = load_file(tmp_path / "round-3" / "adapter_model.safetensors")
    assert any(not torch.equal(two[k], three[k]) for k in two)


def test_all_linear_target_modules(model_dirs, tmp_path):
    config = dataclasses.replace(CONFIG, epochs=1.0, lora=LoraConfig(rank=2, alpha=4, target_modules=("all-linear",)))
    student = HFStudent(str(model_dirs[True]), config, seed=0)
    student.finetune(SEVERITY, TRIVIAL[:2], tmp_path / "adapter")
    lora, _ = lora_and_base(student)
    assert any("mlp.down_proj" in n for n in lora) and any("self_attn.o_proj" in n for n in lora)



@pytest.mark.parametrize("targets", [LoraConfig().target_modules, ("all-linear",)], ids=["named", "all-linear"])
def test_adapters_only_in_the_top_layers_still_learn(model_dirs, tmp_path, targets):
    config = dataclasses.replace(CONFIG, lora=LoraConfig(rank=8, alpha=16, target_modules=targets, layers=1))
    student = HFStudent(str(model_dirs[True]), config, seed=0)
    last = student.model.config.num_hidden_layers - 1
    before = [p["trivial"] for p in label_probs(student)]
    student.finetune(SEVERITY, TRIVIAL, tmp_path / "adapter")
    lora, _ = lora_and_base(student)
    assert lora and all(f"layers.{last}." in n for n in lora)
    assert any("mlp.down_proj" in n for n in lora) and any("self_attn.o_proj" in n for n in lora)
    after = [p["trivial"] for p in label_probs(student)]
    assert sum(after) / len(after) > 0.5 and all(a > b for a, b in zip(after, before))
    reloaded = HFStudent(str(model_dirs[True]), config, seed=0)
    reloaded.use_adapter(tmp_path / "adapter")
    assert flat(label_probs(reloaded)) == pytest.approx(flat(label_probs(student)), abs=1e-5)

def test_a_model_whose_layers_cannot_be_told_apart_gets_adapters_in_every_layer(model_dirs, monkeypatch):
    student = HFStudent(str(model_dirs[True]), dataclasses.replace(CONFIG, lora=LoraConfig(layers=1)), seed=0)
    assert student._lora_targets()["layers_to_transform"] == [1]
    monkeypatch.setattr(student.model, "config", SimpleNamespace())  # a config without num_hidden_layers
    assert "layers_to_transform" not in student._lora_targets()  # the default must not make such a model unusable


# ---- loading -----------------------------------------------------------------------------------------

def test_unloadable_model_is_a_student_error(tmp_path):
    with pytest.raises(StudentError, match="bundled"):
        HFStudent(str(tmp_path / "no-such-model"), CONFIG, seed=0)


def test_hf_prefix_is_accepted(model_dirs):
    student = HFStudent(f"hf:{model_dirs[False]}", CONFIG, seed=0)
    assert student.name == f"hf:{model_dirs[False]}" and not student.chat


# ---- the contract both students honour -------------------------------------------------------------

@pytest.fixture(params=["hf", "scripted"])
def any_student(request, model_dirs):
    return HFStudent(str(model_dirs[True]), CONFIG, seed=0) if request.param == "hf" else ScriptedStudent()


def test_contract_errors(any_student, tmp_path):
    assert any_student.can_finetune and any_student.name
    with pytest.raises(ValueError, match="at least one"):
        any_student.finetune(SEVERITY, [], tmp_path / "adapter")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        any_student.use_adapter(tmp_path / "nowhere")


def test_contract_labels_only_answers_skip_the_text_and_keep_the_labels(any_student, tmp_path):
    any_student.finetune(EXPLAIN, TRIVIAL, tmp_path / "adapter")
    full = any_student.answer(EXPLAIN, ITEMS)
    if isinstance(any_student, HFStudent):  # generation is what labels-only answering skips
        generate = any_student._generate
        any_student._generate = lambda *a, **k: pytest.fail("explain=False generated text")
    labels_only = any_student.answer(EXPLAIN, ITEMS, explain=False)
    if isinstance(any_student, HFStudent):
        any_student._generate = generate
    assert [a.parsed for a in labels_only] == [{"issue_type": a.parsed["issue_type"]} for a in full]
    assert [a.raw for a in labels_only] == [a.parsed["issue_type"] for a in full]
    assert [a.probs for a in labels_only] == [a.probs for a in full]


def test_contract_adapter_round_trip(any_student, tmp_path):
    report = any_student.finetune(EXPLAIN, TRIVIAL, tmp_path / "adapter")
    assert Path(report.adapter_dir) == tmp_path / "adapter" and (tmp_path / "adapter" / "adapter_config.json").is_file()
    trained = [a.raw for a in any_student.answer(EXPLAIN, ITEMS)]
    any_student.use_adapter(None)
    any_student.use_adapter(tmp_path / "adapter")
    assert [a.raw for a in any_student.answer(EXPLAIN, ITEMS)] == trained


def test_scripted_student_follows_its_rule_and_learns(tmp_path):
    student = ScriptedStudent(rule={ITEMS[0]["review"]: "critical"}, default="minor")
    answers = student.answer(SEVERITY, ITEMS[:2])
    assert [a.parsed["issue_type"] for a in answers] == ["critical", "minor"]
    assert sum(answers[0].probs.values()) == pytest.approx(1.0)
    report = student.finetune(SEVERITY, TRIVIAL[:2], tmp_path / "a")
    assert report.final_loss == 1.0 and student.trained == [TRIVIAL[:2]]
    assert [a.parsed["issue_type"] for a in student.answer(SEVERITY, ITEMS[:3])] == ["trivial", "trivial", "minor"]
