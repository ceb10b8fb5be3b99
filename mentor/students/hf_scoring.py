"""Label scoring for the Hugging Face student: each label's log-likelihood after each prompt, in as few
forward passes as the labels allow, over batches cut where the prompts' lengths jump. Split out of hf.py,
which prepares the prompts and turns these scores into answers; nothing here tokenizes or knows the task."""

from __future__ import annotations

import copy

import numpy as np
import torch


# What one forward pass costs beyond its tokens, counted in tokens: a pass streams every weight once however
# few rows it has (one token took 111 ms and 86 tokens 394 ms on a 2-core AVX2 CPU in fp32, ~3.3 ms a token).
PASS_OVERHEAD_TOKENS = 32


def chunks(lengths: list[int], most: int, overhead: int = PASS_OVERHEAD_TOKENS) -> list[range]:
    """Split prompts sorted by length into consecutive batches of at most `most`, where padded tokens
    (each batch is as wide as its longest prompt) plus `overhead` per pass add up to the least.

    Fixed-size batches pad a short prompt to the longest one beside it: on 32 third-party findings the
    batches of 16 ran 2,784 token positions for 2,013 real tokens. A cut before each jump in length keeps
    that waste small; the overhead keeps batches from splitting for a token or two."""
    n = len(lengths)
    if any(a > b for a, b in zip(lengths, lengths[1:])):
        raise ValueError("chunks needs the prompts' lengths in ascending order")
    best = np.zeros(n + 1, dtype=np.int64)  # best[i]: least cost of the first i prompts
    cut = [0] * (n + 1)
    for i in range(1, n + 1):
        first = max(0, i - most)
        starts = np.arange(first, i)
        costs = best[first:i] + (i - starts) * lengths[i - 1] + overhead
        k = int(np.argmin(costs))
        best[i], cut[i] = costs[k], first + k
    spans, i = [], n
    while i > 0:
        spans.append(range(cut[i], i))
        i = cut[i]
    return spans[::-1]


def left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of token rows padded on the left to one width."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad_id] * (width - len(row)) + row for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    return ids, mask


def label_scores(model: torch.nn.Module, prompts: list[list[int]], label_ids: list[list[int]], pad_id: int,
                 device: torch.device, keeps_logits: bool, shared: tuple[int, object] | None = None) -> torch.Tensor:
    """Log-likelihood of each label's tokens after each prompt: a (prompts, labels) tensor.

    With a `shared` prefix (length, KV cache) only the rest of each prompt is run: [prefix | padding |
    rest], the padding masked. One prompt alone uses the prefix's cache in place and crops it back (a copy
    costs ~3% of rating one finding); a batch runs on a copy repeated per prompt. `keeps_logits`: the model's
    forward takes `logits_to_keep`, so only the scored positions are projected onto the vocabulary.
    """
    if shared is None:
        ids, mask = left_pad(prompts, pad_id, device)
        return _padded_scores(model, ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), None, label_ids, keeps_logits)
    n, prefix_cache = shared
    ids, rest_mask = left_pad([p[n:] for p in prompts], pad_id, device)
    mask = torch.cat([torch.ones(len(prompts), n, dtype=rest_mask.dtype, device=device), rest_mask], dim=1)
    positions = n + (rest_mask.cumsum(-1) - 1).clamp(min=0)
    if len(prompts) > 1 or not hasattr(prefix_cache, "crop") or not hasattr(prefix_cache, "get_seq_length"):
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(len(prompts))
        return _padded_scores(model, ids, mask, positions, cache, label_ids, keeps_logits)
    try:
        return _padded_scores(model, ids, mask, positions, prefix_cache, label_ids, keeps_logits)
    finally:
        extra = prefix_cache.get_seq_length() - n
        if extra > 0:
            prefix_cache.crop(-extra)


def _padded_scores(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                   cache: object, label_ids: list[list[int]], keeps_logits: bool) -> torch.Tensor:
    """`label_scores` on padded prompts. One pass gives every label's first token. The first label of several
    tokens rides along in it: its tokens but the last follow every prompt, so the positions after the
    prompt give the rest of its log-likelihood (a separate pass over one token per prompt streams every
    weight again: rating one finding took 1.28x as long that way on a 2-core AVX2 CPU in fp32,
    benchmarks/scoring_ab.py). Any further multi-token labels continue from the pass's KV cache, cropped
    back to the prompt."""
    batch, device = ids.shape[0], ids.device
    multi = [j for j, label in enumerate(label_ids) if len(label) > 1]
    tail = label_ids[multi[0]][:-1] if multi else []
    after = torch.tensor([tail] * batch, dtype=ids.dtype, device=device).reshape(batch, len(tail))
    steps = torch.arange(1, len(tail) + 1, device=device)
    keep = {"logits_to_keep": len(tail) + 1} if keeps_logits else {}
    out = model(input_ids=torch.cat([ids, after], dim=1), attention_mask=torch.cat([mask, torch.ones_like(after)], dim=1),
                position_ids=torch.cat([positions, positions[:, -1:] + steps], dim=1),
                cache=cache, use_cache=cache is not None or len(multi) > 1, **keep)
    logp = torch.log_softmax(out.logits[:, -(len(tail) + 1):].float(), dim=-1)
    scores = logp[:, 0, [label[0] for label in label_ids]]
    if multi:
        targets = torch.tensor([label_ids[multi[0]][1:]] * batch, device=device)
        scores[:, multi[0]] += logp[:, 1:].gather(-1, targets.unsqueeze(-1)).squeeze(-1).sum(-1)
    if len(multi) > 1:
        out.cache.crop(-len(tail))
    for j in multi[1:]:
        label = label_ids[j]
        rest = torch.tensor([label[:-1]] * batch, device=device)
        cont = model(input_ids=rest, attention_mask=torch.cat([mask, torch.ones_like(rest)], dim=1),
                     position_ids=positions[:, -1:] + torch.arange(1, len(label), device=device),
                     cache=out.cache, use_cache=True)
        targets = torch.tensor([label[1:]] * batch, device=device)
        scores[:, j] += torch.log_softmax(cont.logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1).sum(-1)
        out.cache.crop(-(len(label) - 1))
    return scores
