"""A tiny random-weight Llama and a byte-level BPE tokenizer, both built offline in a second or two.

Tests use them to exercise the Hugging Face student end to end (scoring, generation, LoRA training,
adapter save and reload) without downloading anything. The tokenizer is trained in memory on a few
lines of code-review text, so the label words exist in its vocabulary, and it carries a ChatML-style
chat template like SmolLM2's (or none, to test the plain-prompt path).
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "Severity of this review finding (critical, major, minor or trivial)?",
    "Rate this review finding (critical, major, minor or trivial) and explain why.",
    "Code:\ndef load(path):\n    return open(path).read()\nReview: the file is never closed.\nSeverity:",
    "critical major minor trivial explanation: the bug crashes the program and leaks data.",
    "query = 'SELECT * FROM users WHERE id = ' + user_id  # SQL injection",
    "for i in range(len(items)): total += items[i]  # off by one, wrong results",
    "The variable name is unclear; rename it. A typo in the docstring.",
    "if x == None: return  # style: use is None",
]


def build_tokenizer(chat_template: bool = True, vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(_CORPUS * 3, trainer=trainer)
    eos = "<|im_end|>" if chat_template else "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=eos, pad_token="<pad>", bos_token="<|endoftext|>")
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(vocab_size: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    # A wide initial range: with tied embeddings of the default 0.02 scale, the logits cannot move far
    # enough for a LoRA update to show in a few steps.
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         initializer_range=0.3, tie_word_embeddings=True, bos_token_id=0, eos_token_id=2,
                         pad_token_id=3)
    return LlamaForCausalLM(config)


def save_tiny_model(directory: Path, chat_template: bool = True, seed: int = 0) -> Path:
    """Write a tiny model + tokenizer as an ordinary Hugging Face model directory and return it."""
    tokenizer = build_tokenizer(chat_template)
    model = build_model(len(tokenizer), seed)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
