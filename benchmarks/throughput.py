"""How fast the student scores, generates and trains on this machine, against the machine's own peak.

Prints the CPU kind first (ISA flags, the ISA torch dispatches to, dtype, cores, threads), then, measured in
the same run so the figures compare:
- peak: GFLOP/s of a large matmul in the student's dtype (what the cores can do);
- scoring: items/s and prompt tokens/s of `student.answer` on real findings (label chosen by likelihood),
  the GFLOP/s that implies (2 x non-embedding parameters x tokens) and its share of the peak, against
  the naive path in the same run (one full forward pass per label, full-vocabulary logits);
- scoring with a trained LoRA adapter (what eval, review, serve and every round's evaluation do): mentor's
  path (adapter merged into a copy, the prompts' shared prefix run once) against PEFT's unmerged adapter
  and against no prefix reuse, with the share of items whose label agrees; and the latency of rating one
  finding at a time with the model loaded (median over --latency-items one-item requests); with --int8, the
  same with the merged model's linear layers quantised to int8, and how often its label agrees with fp32;
- generation: new tokens/s of mentor's explanation path against plain `model.generate` on the same prefixes;
- the floor under one-finding latency: one forward pass over a single token (every weight read once), the
  weights' bytes over its time, and the bandwidth of a plain 256 MB memory copy for comparison;
- training: sequences/s and tokens/s of one LoRA fine-tuning pass (mentor's collator and loss) and the
  implied GFLOP/s (about 4 x parameters x tokens with frozen base weights).
Medians over --repeats. Emulate a laptop without AVX-512/bf16 on a bigger CPU with
`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2` and `--dtype float32`; the
"torch dispatch" line shows whether the cap took effect.

    python benchmarks/throughput.py                       # bundled student, 64 findings from the bundled pool
    python benchmarks/throughput.py --data ../shared/data/severity/dev.jsonl --items 96 --json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mentor.config import StudentConfig
from mentor.data import bundled_path, load_examples
from mentor.students.hf_training import epochs_for
from mentor.tasks import get_task


def cpu_kind() -> dict:
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx_vnni"]
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "flags": [f for f in wanted if f in flags], "torch_dispatch": torch.backends.cpu.get_cpu_capability(),
            "onednn_cap": os.environ.get("ONEDNN_MAX_CPU_ISA", "")}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_gflops(dtype: torch.dtype, repeats: int) -> float:
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    a @ b  # warm-up
    seconds = median_time(lambda: a @ b, repeats + 2)
    return 2 * 2048 ** 3 / seconds / 1e9


def copy_bandwidth_gbs(repeats: int) -> float:
    """GB/s read plus written by copying a 256 MB tensor: what the memory system gives this process."""
    a = torch.ones(64 * 2 ** 20)
    b = torch.empty_like(a)
    b.copy_(a)  # warm-up: pages touched
    return 2 * a.nbytes / median_time(lambda: b.copy_(a), repeats + 2) / 1e9


def one_token_pass(student, repeats: int) -> dict:  # noqa: ANN001
    """One forward pass of the loaded model over a single token: the floor under any one-finding request,
    where every weight is read once for a handful of tokens."""
    model = student.inference_model()  # the model that answers
    ids = torch.tensor([[student.pad_id]], device=student.device)
    keep = {"logits_to_keep": 1} if student.keeps_logits else {}
    with torch.inference_mode():
        model(input_ids=ids, **keep)
        seconds = median_time(lambda: model(input_ids=ids, **keep), repeats + 4)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"seconds": seconds, "weight_gb": weight_bytes / 1e9, "weights_read_gbs": weight_bytes / seconds / 1e9}


def scored_labels(student, task, inputs: list, repeats: int) -> tuple[list, float]:  # noqa: ANN001
    """(labels, median seconds) of scoring `inputs` at once, after a warm-up that builds the merged copy and
    the prefix cache once, as a loaded model has them."""
    student.answer(task, inputs[:2])
    answers: list = []
    seconds = median_time(lambda: answers.append(student.answer(task, inputs)), repeats)
    return [a.parsed for a in answers[-1]], seconds


def one_finding_latencies(student, task, items: list) -> list[float]:  # noqa: ANN001
    """Seconds to rate each item as a request of its own."""
    return [median_time(lambda item=item: student.answer(task, [item]), 1) for item in items]


def int8_probe(student, task, inputs: list, fp32_labels: list, fp32_seconds: float, args) -> dict:  # noqa: ANN001
    """Scoring with the merged adapter model's linear layers in int8 (PyTorch dynamic quantisation, per-channel
    weights, the vocabulary projection kept in fp32) against the fp32 figures measured just before."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    merged = student.inference_model()
    spec = {name: per_channel_dynamic_qconfig for name, module in merged.named_modules()
            if isinstance(module, torch.nn.Linear) and "lm_head" not in name}
    student._merged, student._prefix = quantize_dynamic(copy.deepcopy(merged), spec, dtype=torch.qint8), None
    try:
        labels, seconds = scored_labels(student, task, inputs, args.repeats)
        single = one_finding_latencies(student, task, inputs[:args.latency_items])
    finally:
        student._merged, student._prefix = merged, None
    return {"items_per_s": len(inputs) / seconds, "speedup_over_fp32": fp32_seconds / seconds,
            "agreement_with_fp32": sum(a == b for a, b in zip(labels, fp32_labels)) / len(inputs),
            "one_finding_latency_s_median": statistics.median(single)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="bundled")
    parser.add_argument("--data", type=Path, help="labelled JSONL (default: the bundled pool)")
    parser.add_argument("--items", type=int, default=64, help="findings scored and trained on")
    parser.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    parser.add_argument("--max-length", type=int, default=320, help="student.max_length")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per explanation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-items", type=int, default=16, help="one-finding requests timed for the latency figure")
    parser.add_argument("--int8", action="store_true",
                        help="also score with the adapter's merged model quantised to int8 (dynamic, per channel): "
                             "items/s, one-finding latency and agreement with fp32 (a probe: mentor does not ship it)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from mentor.students.hf import HFStudent

    task = get_task("severity")
    examples = load_examples(args.data or bundled_path(task, "pool"), task)[: args.items]
    config = StudentConfig(model=args.student, dtype=args.dtype, max_length=args.max_length,
                           max_new_tokens=args.new_tokens, eval_batch_size=16)
    student = HFStudent(args.student, config)
    dtype = next(student.model.parameters()).dtype
    params = sum(p.numel() for n, p in student.model.named_parameters() if "embed" not in n)
    inputs = [e.input for e in examples]
    prompts = [student.encode(task, item, reserve=4)[0] for item in inputs]
    tokens = sum(len(p) for p in prompts)
    out = {"cpu": cpu_kind(), "dtype": str(dtype).removeprefix("torch."), "student": args.student, "items": len(inputs),
           "prompt_tokens_mean": tokens / len(inputs), "non_embedding_params_m": params / 1e6}
    out["peak_gflops"] = peak_gflops(dtype, args.repeats)

    # Training first: its adapter is what the adapter-scoring figures below score with.
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        report = student.finetune(task, examples, Path(tmp) / "adapter")
        train_seconds = time.perf_counter() - started
    features = student.train_features(task, examples)
    epochs = epochs_for(config, len(features))
    sequences = len(examples) * epochs
    train_tokens = sum(len(f["input_ids"]) for f in features) * epochs
    train_gflops = 4 * params * train_tokens / train_seconds / 1e9
    out["training"] = {"sequences_per_s": sequences / train_seconds, "tokens_per_s": train_tokens / train_seconds,
                       "gflops": train_gflops, "share_of_peak": train_gflops / out["peak_gflops"], "steps": report.steps}

    # Scoring with the adapter: merged + shared prefix (mentor), unmerged (PEFT as is), no prefix reuse.
    from mentor.students import hf

    def labels_and_time(merged: bool, shared_prefix: bool) -> tuple[list, float]:
        student.config = dataclasses.replace(config, merged_inference=merged)
        hf.MIN_SHARED_PREFIX = 8 if shared_prefix else 10 ** 9
        return scored_labels(student, task, inputs, args.repeats)
    mentor_labels, mentor_s = labels_and_time(True, True)
    unmerged_labels, unmerged_s = labels_and_time(False, True)
    no_prefix_labels, no_prefix_s = labels_and_time(True, False)
    student.config, hf.MIN_SHARED_PREFIX = config, 8
    single = one_finding_latencies(student, task, inputs[:args.latency_items])
    out["adapter_scoring"] = {
        "items_per_s": len(inputs) / mentor_s, "unmerged_items_per_s": len(inputs) / unmerged_s,
        "speedup_over_unmerged": unmerged_s / mentor_s,
        "agreement_with_unmerged": sum(a == b for a, b in zip(mentor_labels, unmerged_labels)) / len(inputs),
        "no_prefix_reuse_items_per_s": len(inputs) / no_prefix_s, "speedup_over_no_prefix_reuse": no_prefix_s / mentor_s,
        "agreement_with_no_prefix_reuse": sum(a == b for a, b in zip(mentor_labels, no_prefix_labels)) / len(inputs),
        "one_finding_latency_s_median": statistics.median(single), "one_finding_latency_s_max": max(single)}
    if args.int8:
        out["int8_scoring"] = int8_probe(student, task, inputs, mentor_labels, mentor_s, args)
    student.use_adapter(None)

    # Scoring with the base model (round 0): mentor's path, then the naive one (a full forward pass per
    # label with every logit).
    student.answer(task, inputs[:4])
    seconds = median_time(lambda: student.answer(task, inputs), args.repeats)
    gflops = 2 * params * tokens / seconds / 1e9
    label_ids = [student.answer_ids(label) for label in task.labels]

    def naive() -> None:
        with torch.inference_mode():
            for prompt in prompts:
                for label in label_ids:
                    ids = torch.tensor([prompt + label])
                    torch.log_softmax(student.model(input_ids=ids).logits[0].float(), dim=-1)
    naive_seconds = median_time(naive, 1)
    out["scoring"] = {"items_per_s": len(inputs) / seconds, "tokens_per_s": tokens / seconds, "gflops": gflops,
                      "share_of_peak": gflops / out["peak_gflops"], "naive_items_per_s": len(inputs) / naive_seconds,
                      "speedup_over_naive": naive_seconds / seconds}
    out["one_token_pass"] = one_token_pass(student, args.repeats) | {"copy_bandwidth_gbs": copy_bandwidth_gbs(args.repeats)}

    # Generation: the explain path's generator against plain generate() on the same prefixes.
    prefixes = [p + label_ids[0] for p in prompts[:8]]
    from transformers import GenerationConfig
    plain = GenerationConfig(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                             pad_token_id=student.pad_id)

    def plain_generate() -> None:
        with torch.inference_mode():
            for prefix in prefixes:
                student.model.generate(input_ids=torch.tensor([prefix]), generation_config=plain)
    mentor_seconds = median_time(lambda: student._generate(student.inference_model(), prefixes), args.repeats)
    plain_seconds = median_time(plain_generate, 1)
    new_tokens = len(prefixes) * args.new_tokens
    out["generation"] = {"mentor_tokens_per_s_at_most": new_tokens / mentor_seconds,  # it may stop early at end of turn
                         "plain_generate_tokens_per_s": new_tokens / plain_seconds,
                         "seconds_per_explanation": mentor_seconds / len(prefixes)}

    if args.json:
        print(json.dumps(out, indent=2))
        return
    cpu = out["cpu"]
    print(f"CPU: {cpu['processor']}, {cpu['cores']} cores, torch threads {cpu['torch_threads']}, flags "
          f"{' '.join(cpu['flags']) or '-'}, torch dispatch {cpu['torch_dispatch']}"
          + (f", ONEDNN_MAX_CPU_ISA={cpu['onednn_cap']}" if cpu["onednn_cap"] else ""))
    print(f"student {args.student} in {out['dtype']}, {out['non_embedding_params_m']:.0f}M non-embedding parameters; "
          f"{len(inputs)} findings, {out['prompt_tokens_mean']:.0f} prompt tokens on average")
    print(f"peak (2048^3 matmul, {out['dtype']}): {out['peak_gflops']:.0f} GFLOP/s")
    s = out["scoring"]
    print(f"scoring:    {s['items_per_s']:.2f} items/s, {s['tokens_per_s']:.0f} tokens/s, {s['gflops']:.0f} GFLOP/s "
          f"({s['share_of_peak']:.0%} of peak); naive per-label passes {s['naive_items_per_s']:.2f} items/s "
          f"({s['speedup_over_naive']:.1f}x slower)")
    f = out["one_token_pass"]
    print(f"one token, one forward pass (the floor under rating one finding): {1000 * f['seconds']:.0f} ms, reading "
          f"{f['weight_gb']:.2f} GB of weights at {f['weights_read_gbs']:.1f} GB/s (a 256 MB memory copy: "
          f"{f['copy_bandwidth_gbs']:.1f} GB/s read + written)")
    a = out["adapter_scoring"]
    print(f"scoring with a LoRA adapter: {a['items_per_s']:.2f} items/s (merged, shared prefix reused); "
          f"{a['speedup_over_unmerged']:.2f}x PEFT's unmerged adapter ({a['unmerged_items_per_s']:.2f} items/s, same label on "
          f"{a['agreement_with_unmerged']:.0%} of items), {a['speedup_over_no_prefix_reuse']:.2f}x without prefix reuse "
          f"(same label on {a['agreement_with_no_prefix_reuse']:.0%}); one finding at a time: "
          f"{1000 * a['one_finding_latency_s_median']:.0f} ms median, {1000 * a['one_finding_latency_s_max']:.0f} ms max")
    if "int8_scoring" in out:
        q = out["int8_scoring"]
        print(f"int8 probe (dynamic, per-channel; not shipped): {q['items_per_s']:.2f} items/s, "
              f"{q['speedup_over_fp32']:.2f}x the adapter's fp32 scoring, same label on {q['agreement_with_fp32']:.0%} "
              f"of items; one finding {1000 * q['one_finding_latency_s_median']:.0f} ms median")
    g = out["generation"]
    print(f"generation: {g['mentor_tokens_per_s_at_most']:.1f} new tokens/s (mentor, batched), plain generate "
          f"{g['plain_generate_tokens_per_s']:.1f}; {g['seconds_per_explanation']:.2f} s per explanation of "
          f"{args.new_tokens} tokens")
    t = out["training"]
    print(f"training:   {t['sequences_per_s']:.2f} sequences/s, {t['tokens_per_s']:.0f} tokens/s, {t['gflops']:.0f} GFLOP/s "
          f"({t['share_of_peak']:.0%} of peak), {t['steps']} steps")


if __name__ == "__main__":
    main()
