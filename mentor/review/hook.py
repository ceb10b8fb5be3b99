"""`python -m mentor.review.hook bandit [mentor review options]`: the `mentor-review-bandit` pre-commit hook.

An entry point, not library code: it runs bandit (`pip install 'bandit[sarif]'`) on the staged Python files,
then hands its SARIF to `mentor review --staged` with the options the hook's `args` give (--adapter,
--fail-on ...), and exits with mentor's status: 0 passed, 1 the --fail-on gate tripped, 2 an error.
pre-commit stashes unstaged edits before running hooks, so the files bandit reads are the staged ones.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

ANALYZERS = ("bandit",)


def staged_python_files(repo: Path) -> list[str]:
    """Python files the commit adds or changes (deleted ones have nothing left to analyze)."""
    done = subprocess.run(["git", "-C", str(repo), "diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z", "--", "*.py"],
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: git diff --cached failed: {done.stderr.decode('utf-8', 'replace').strip()}")
    return [name for name in done.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ANALYZERS:
        print(f"usage: python -m mentor.review.hook {'|'.join(ANALYZERS)} [mentor review options]", file=sys.stderr)
        raise SystemExit(2)
    files = staged_python_files(Path.cwd())
    if not files:
        return
    if importlib.util.find_spec("bandit") is None:
        print("error: the mentor-review-bandit hook needs bandit: pip install 'bandit[sarif]'", file=sys.stderr)
        raise SystemExit(2)
    with tempfile.TemporaryDirectory(prefix="mentor-hook-") as tmp:
        sarif = Path(tmp) / "bandit.sarif"
        done = subprocess.run([sys.executable, "-m", "bandit", "-q", "-f", "sarif", "-o", str(sarif), *files],
                              capture_output=True, text=True, check=False)
        if done.returncode not in (0, 1) or not sarif.is_file():  # 1: bandit found something, which is the point
            print(f"error: bandit failed (exit {done.returncode}): {done.stderr.strip()[-500:]}", file=sys.stderr)
            raise SystemExit(2)
        from mentor.cli import main as mentor_main

        sys.argv = ["mentor", "review", "--staged", "--sarif", str(sarif), *argv[1:]]
        mentor_main()


if __name__ == "__main__":
    main(sys.argv[1:])
