"""Scoring speed of the working tree's student against an earlier commit's, in one process, interleaved.

Machine speed on shared or throttling CPUs drifts by 20-50% between runs, so two separate benchmark runs
cannot show a 10-20% change. This loads `mentor/students/hf.py` as it was at `--ref` next to today's, on
the same loaded model, and alternates the two item by item: one-finding requests (median ms) and batches
(items/s), then, for the single items and the batch, the share of items on which both chose the same
label and the largest probability difference. Only `answer` and the scoring methods (and, where `--ref` has it, hf_scoring.py's functions) are
swapped in, so both share the model and tokenizer.

    python benchmarks/scoring_ab.py --ref HEAD~1 --data ../shared/data/severity/dev.jsonl
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import cpu_kind  # noqa: E402

from mentor.config import StudentConfig  # noqa: E402
from mentor.data import bundled_path, load_examples  # noqa: E402
from mentor.students.hf import HFStudent  # noqa: E402
from mentor.tasks import get_task  # noqa: E402

SWAPPED = ("answer", "_score", "_shared_prefix")  # whichever of them a version's HFStudent defines


def _module_at(ref: str, path: str, name: str, folder: Path) -> types.ModuleType | None:
    source = subprocess.run(["git", "show", f"{ref}:{path}"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    if source.returncode:
        return None
    file = folder / f"{name}.py"
    file.write_text(source.stdout)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def old_module(ref: str, folder: Path) -> types.ModuleType:
    """hf.py at `ref`, with the functions it imports from hf_scoring.py taken from `ref` too, when it has one."""
    module = _module_at(ref, "mentor/students/hf.py", "hf_at_ref", folder)
    if module is None:
        raise SystemExit(f"cannot read mentor/students/hf.py at {ref!r}")
    scoring = _module_at(ref, "mentor/students/hf_scoring.py", "hf_scoring_at_ref", folder)
    for name, value in vars(module).copy().items():
        if scoring is not None and getattr(value, "__module__", None) == "mentor.students.hf_scoring":
            setattr(module, name, getattr(scoring, name))
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="HEAD~1", help="the git revision to compare with")
    parser.add_argument("--data", type=Path, help="labelled JSONL (default: the bundled pool)")
    parser.add_argument("--items", type=int, default=32, help="one-finding requests per version, and the batch size")
    parser.add_argument("--batches", type=int, default=3, help="batches per version")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--adapter", type=Path, help="a LoRA adapter folder to score with (default: the untuned "
                        "student); its calibration offsets are left out, as a version without them scores raw")
    args = parser.parse_args()

    task = get_task("severity")
    examples = load_examples(args.data or bundled_path("pool"), task)
    if len(examples) < 2 * args.items:
        raise SystemExit(f"{args.data}: {len(examples)} items, need {2 * args.items}")
    singles = [e.input for e in examples[:args.items]]
    batch = [e.input for e in examples[args.items:2 * args.items]]
    student = HFStudent("bundled", StudentConfig(dtype=args.dtype))
    if args.adapter:
        student.use_adapter(args.adapter)
        student.offsets = None
    with tempfile.TemporaryDirectory() as folder:
        old = old_module(args.ref, Path(folder))

        def use(version: str) -> None:
            for name in SWAPPED:
                student.__dict__.pop(name, None)
                if version == "old" and hasattr(old.HFStudent, name):
                    setattr(student, name, types.MethodType(getattr(old.HFStudent, name), student))

        for version in ("old", "new"):  # warm-up: the shared prefix, allocator, kernels
            use(version)
            student.answer(task, singles[:2])
            student.answer(task, singles[:1])
        seconds = {"old": [], "new": []}
        answers = {"old": [], "new": []}
        for i, item in enumerate(singles):
            for version in ("old", "new") if i % 2 == 0 else ("new", "old"):
                use(version)
                started = time.perf_counter()
                answers[version].append(student.answer(task, [item])[0])
                seconds[version].append(time.perf_counter() - started)
        batch_seconds = {"old": [], "new": []}
        batch_answers = {}
        for i in range(args.batches):
            for version in ("old", "new") if i % 2 == 0 else ("new", "old"):
                use(version)
                started = time.perf_counter()
                batch_answers[version] = student.answer(task, batch)
                batch_seconds[version].append(time.perf_counter() - started)

    kind = cpu_kind()
    print(f"CPU: {kind['machine']}, {kind['cores']} cores, torch threads {kind['torch_threads']}, flags "
          f"{' '.join(kind['flags'])}, torch dispatch {kind['torch_dispatch']}; dtype {student.model.dtype}; "
          f"adapter {args.adapter or 'none (untuned)'}")
    for version, label in (("old", args.ref), ("new", "working tree")):
        print(f"{label:>12}: one finding {1000 * statistics.median(seconds[version]):.0f} ms median, "
              f"a batch of {len(batch)} {len(batch) / statistics.median(batch_seconds[version]):.2f} items/s")
    print(f"speed-up: one finding {statistics.median(seconds['old']) / statistics.median(seconds['new']):.2f}x, "
          f"batch {statistics.median(batch_seconds['old']) / statistics.median(batch_seconds['new']):.2f}x")
    for name, pair in (("one at a time", answers), ("in the batch", batch_answers)):
        same = sum(a.parsed == b.parsed for a, b in zip(pair["old"], pair["new"]))
        diff = max(abs(a.probs[k] - b.probs[k]) for a, b in zip(pair["old"], pair["new"]) for k in a.probs)
        print(f"{name}: same label on {same} of {len(pair['new'])} items; largest probability difference {diff:.2g}")


if __name__ == "__main__":
    main()
