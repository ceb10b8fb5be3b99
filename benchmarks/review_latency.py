"""How fast the bundled student rates review findings on this machine.

Prints the median (and 90th percentile) latency to rate ONE finding, as `mentor review` with a single
finding or one /v1/chat/completions request pays it, and the throughput when rating 100 findings at once
(one batched call, as `mentor review` does for a whole change). The findings are the bundled holdout's
real code-review items, or those of `--data FILE`. With the `explain` task it also prints the time to write
one explanation (the kept findings are explained after rating, as `mentor review` does), the tokens written
and the cleaned explanations' length; the CPU kind (ISA, dtype, cores) is printed with every figure.

    nice python benchmarks/review_latency.py                    # severity task, untuned bundled student
    nice python benchmarks/review_latency.py --task explain     # rating + a generated explanation
    nice python benchmarks/review_latency.py --adapter .mentor/runs/1/round-2 --json
    python benchmarks/review_latency.py --task explain --adapter .mentor/runs/2/round-1 --data dev.jsonl --single 12 --batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from mentor.config import StudentConfig
from mentor.data import bundled_path, load_examples
from mentor.review.findings import Finding
from mentor.review.rate import rate
from mentor.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="severity", help="severity (label only) or explain (label + explanation)")
    parser.add_argument("--student", default="bundled", help="student model (default: the bundled SmolLM2-135M)")
    parser.add_argument("--adapter", type=Path, help="a trained adapter to load first")
    parser.add_argument("--data", type=Path, help="JSONL findings in the task's format (default: the bundled holdout)")
    parser.add_argument("--single", type=int, default=20, help="one-finding requests to time")
    parser.add_argument("--batch", type=int, default=100, help="findings rated at once")
    parser.add_argument("--repeats", type=int, default=2, help="times the batch is rated (the median is reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import sys

    from mentor.students.hf import HFStudent

    sys.path.insert(0, str(Path(__file__).parent))
    from throughput import cpu_kind

    task = get_task(args.task)
    started = time.perf_counter()
    student = HFStudent(args.student, StudentConfig(threads=args.threads), seed=0)
    student.use_adapter(args.adapter)
    load_seconds = time.perf_counter() - started
    items = load_examples(args.data or bundled_path(task, "holdout"), task)
    findings = [Finding("bench.py", 1, e.input["review"], "benchmark", code=e.input["code"]) for e in items]
    batch = (findings * (args.batch // len(findings) + 1))[:args.batch]

    rate(student, task, findings[:2])  # warm-up: first calls pay one-off allocation costs
    single, explaining, lengths = [], [], []
    for finding in findings[:args.single]:
        t0 = time.perf_counter()
        written: list[float] = []
        one = rate(student, task, [finding], written=written)
        single.append(time.perf_counter() - t0)
        if written:
            explaining.append(written[1])
            lengths.append(len(one[0].explanation) if one[0].explanation_source == "student" else 0)
    batched = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        rated = rate(student, task, batch)
        batched.append(time.perf_counter() - t0)
    assert len(rated) == len(batch) and all(r.severity for r in rated)

    import torch

    seconds = statistics.median(batched)
    cpu = cpu_kind()
    result = {
        "cpu_kind": cpu, "dtype": str(next(student.model.parameters()).dtype).removeprefix("torch."),
        "max_new_tokens": student.config.max_new_tokens,
        "task": task.name, "student": args.student, "adapter": str(args.adapter) if args.adapter else None,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 1), "load_seconds": round(load_seconds, 2),
        "single_median_ms": round(1000 * statistics.median(single), 1),
        "single_p90_ms": round(1000 * sorted(single)[int(0.9 * (len(single) - 1))], 1),
        "single_n": len(single),
        "batch_size": len(batch), "batch_seconds": round(seconds, 2),
        "findings_per_second": round(len(batch) / seconds, 2),
    }
    if explaining:
        result.update(explanation_median_s=round(statistics.median(explaining), 2),
                      explanation_p90_s=round(sorted(explaining)[int(0.9 * (len(explaining) - 1))], 2),
                      explanation_chars_median=statistics.median(lengths),
                      student_explanations=sum(1 for n in lengths if n))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"CPU: {cpu}; dtype {result['dtype']}")
    print(f"{task.name} with {args.student}{' + ' + str(args.adapter) if args.adapter else ''} "
          f"on {result['cpu_count']} CPU(s), {result['torch_threads']} torch thread(s), load average "
          f"{result['load_average']}; model loaded in {load_seconds:.1f} s")
    print(f"  one finding:    median {result['single_median_ms']:.0f} ms, p90 {result['single_p90_ms']:.0f} ms "
          f"({len(single)} requests)")
    if explaining:
        print(f"  one explanation (after rating, up to {result['max_new_tokens']} tokens): median "
              f"{result['explanation_median_s']:.2f} s, p90 {result['explanation_p90_s']:.2f} s; "
              f"{result['student_explanations']}/{len(explaining)} kept as the student's, median "
              f"{result['explanation_chars_median']} characters")
    print(f"  {len(batch)} at once:  {seconds:.1f} s -> {result['findings_per_second']:.1f} findings/s "
          f"(median of {args.repeats})")


if __name__ == "__main__":
    main()
