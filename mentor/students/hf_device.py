"""Where the Hugging Face student computes and in what precision: the device and dtype `student.device` and
`student.dtype` resolve to, and the line a run records beside its figures (they differ by dtype, and speed by the
CPU's instruction set)."""

from __future__ import annotations

import os

import torch

from mentor.config import StudentConfig


def describe(device: torch.device, dtype: torch.dtype) -> str:
    """What the figures were computed with, e.g. 'float32 on cpu (AVX2, 2 threads)': scores differ by dtype and
    speed by instruction set, so a run records it beside them."""
    name = str(dtype).removeprefix("torch.")
    if device.type != "cpu":
        return f"{name} on {torch.cuda.get_device_name(device) if device.type == 'cuda' else device.type}"
    return f"{name} on cpu ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"


def device_and_dtype(config: StudentConfig) -> tuple[torch.device, torch.dtype]:
    """The device and dtype the student loads onto: `auto` picks a GPU when there is one, and bf16 where it is native."""
    name = config.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if name == "cuda" else torch.device(name)
    if config.dtype != "auto":
        return device, getattr(torch, config.dtype)
    if device.type == "cuda":
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    # CPUs with native bf16 (AVX512-BF16, AMX) score 3-4x faster and train ~1.3x faster in bf16 at the same
    # accuracy; PEFT keeps the LoRA weights themselves in fp32, so small updates are not rounded away.
    return device, torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else torch.float32


def cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
