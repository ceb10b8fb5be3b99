"""What the Hugging Face student hands the Trainer when it fine-tunes: the answer-only loss with its
label-decision term, the progress callback, and the adapter save that never leaves half a folder behind."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import torch
from peft import PeftModel
from transformers import TrainerCallback


class AnswerLoss:
    """Cross-entropy on the answer tokens, plus a cross-entropy restricted to the labels' first tokens.

    At inference a label is chosen by comparing the labels' likelihoods, so what decides the answer is
    the competition between the label tokens, not their mass against the other 49k words of the
    vocabulary. The restricted term trains exactly that decision from the first step, where plain
    cross-entropy first spends its steps teaching the model to say any label at all. Both terms are
    summed and divided by the accumulated batch's answer-token count, as the Trainer expects when a
    loss function is given (it then skips its own gradient-accumulation scaling).
    """

    def __init__(self, label_heads: list[int]) -> None:
        self.heads = label_heads

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:  # noqa: ANN001
        logits = outputs.logits[:, :-1].float()
        targets = labels[:, 1:].to(logits.device)
        total = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                  ignore_index=-100, reduction="sum")
        answered = targets != -100
        if self.heads and answered.any():
            rows = answered.any(-1).nonzero().squeeze(-1)
            first = answered.int().argmax(-1)[rows]
            head_ids = torch.tensor(self.heads, device=logits.device)
            restricted = logits[rows, first][:, head_ids]
            wanted = (targets[rows, first].unsqueeze(-1) == head_ids).int()
            known = wanted.any(-1)  # rows whose answer starts with a label head
            if known.any():
                total = total + torch.nn.functional.cross_entropy(restricted[known], wanted[known].argmax(-1), reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else answered.sum()
        return total / torch.as_tensor(count, device=total.device).clamp(min=1)


class Progress(TrainerCallback):
    def __init__(self, progress: Callable[[int], None]) -> None:
        self.progress = progress

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 - Trainer's callback signature
        self.progress(1)


def save_atomically(model: PeftModel, out_dir: Path) -> None:
    """adapter_config.json + adapter_model.safetensors, renamed into place only once complete."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
