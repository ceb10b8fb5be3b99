"""Reading a change: a unified diff (a file, stdin, or `git diff REF`) into files, hunks and changed lines.

Findings are tied to a file and a line of the NEW version; this module says which new lines the change
added (so analyzer findings can be restricted to them) and which lines a hunk shows (the code context a
finding is rated with). Hostile or odd input never crashes it: a diff over the size limit is a clear
error; a binary file, or a file whose text is not UTF-8 (and not in the `--encoding` given), is skipped
with a warning, and the rest of the change is still read.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

MAX_DIFF_BYTES = 5_000_000

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class ReviewError(ValueError):
    """Input to `mentor review` that cannot be used; the message says what is wrong and how to fix it."""


@dataclass
class Hunk:
    header: str  # the "@@ -a,b +c,d @@ section" line
    lines: list[tuple[str, int | None, str]] = field(default_factory=list)  # (kind " ", "+" or "-", new line no., text)


@dataclass
class FileDiff:
    path: str  # the new path ("/dev/null" never: a deleted file keeps its old path)
    old_path: str = ""
    deleted: bool = False
    added_lines: set[int] = field(default_factory=set)  # new-side line numbers the change added
    shown: dict[int, str] = field(default_factory=dict)  # new-side line number -> text, for every line a hunk shows
    hunks: list[Hunk] = field(default_factory=list)


@dataclass
class Diff:
    files: dict[str, FileDiff] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def touches(self, path: str, start: int, end: int | None = None) -> bool:
        """Whether lines start..end of `path` (new version) include a line the change added."""
        changed = self.files[path].added_lines if path in self.files else set()
        return any(line in changed for line in range(start, (end or start) + 1))

    def context(self, path: str, start: int, end: int | None = None, radius: int = 3) -> str:
        """The lines a hunk shows around start..end (the code the finding is about), '' when none are."""
        shown = self.files[path].shown if path in self.files else {}
        lines = [shown[n] for n in range((start or 1) - radius, (end or start) + radius + 1) if n in shown]
        return "\n".join(lines).strip("\n")


def read_diff_bytes(source: str, max_bytes: int = MAX_DIFF_BYTES) -> bytes:
    """The bytes of a diff file, or of stdin when source is '-'; a clear error when too large."""
    import sys

    if source == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        where = "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise ReviewError(f"{source}: no such diff file (give a unified diff, '-' for stdin, or --base REF)")
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
        where = source
    return _check_size(data, where, max_bytes)


def git_diff_bytes(base: str, repo: Path, max_bytes: int = MAX_DIFF_BYTES, context: int = 5) -> bytes:
    """What the branch changes since it left REF: the working tree (committed or not) against the merge base
    of REF and HEAD, so commits that landed on REF meanwhile are not shown as this change's (REF itself when
    there is no merge base)."""
    if base.startswith("-"):
        raise ReviewError(f"--base {base!r}: a git ref cannot start with '-'")
    merge_base = _git(repo, "merge-base", base, "HEAD")
    start = merge_base.stdout.decode().strip() if merge_base.returncode == 0 else base
    return _read_git_diff(repo, [start], f"git diff {base}", max_bytes, context)


def git_staged_bytes(repo: Path, max_bytes: int = MAX_DIFF_BYTES, context: int = 5) -> bytes:
    """What the next commit would record: the index against HEAD (every staged file before a first commit),
    the change a pre-commit hook is asked about."""
    return _read_git_diff(repo, ["--cached"], "git diff --cached", max_bytes, context)


def _read_git_diff(repo: Path, args: list[str], what: str, max_bytes: int, context: int) -> bytes:
    command = ["git", "-C", str(repo), "diff", "--no-color", "--no-ext-diff", f"-U{context}", *args, "--"]
    # Read at most max_bytes + 1: a huge diff is refused without ever being held in memory whole.
    try:
        proc_handle = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise ReviewError(f"{what} needs git on PATH; or pass the diff as a file or on stdin") from None
    with proc_handle as proc:
        data = proc.stdout.read(max_bytes + 1)  # type: ignore[union-attr]
        if len(data) > max_bytes:
            proc.kill()
            return _check_size(data, what, max_bytes)
        errors = proc.stderr.read()  # type: ignore[union-attr]
    if proc.returncode != 0:
        message = errors.decode("utf-8", "replace").strip().splitlines()
        raise ReviewError(f"{what} failed in {repo}: {message[-1] if message else 'exit ' + str(proc.returncode)}")
    return data


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=120, check=False)
    except FileNotFoundError:
        raise ReviewError("--base needs git on PATH; or pass the diff as a file or on stdin") from None


def git_root(start: Path) -> Path:
    done = _git(start, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise ReviewError(f"--base and --staged need a git repository, and {start.resolve()} is not inside one")
    return Path(done.stdout.decode().strip())


def _check_size(data: bytes, where: str, max_bytes: int) -> bytes:
    if len(data) > max_bytes:
        raise ReviewError(f"{where}: the diff is larger than {max_bytes:,} bytes; review a smaller change "
                          f"or raise the limit with --max-diff-bytes")
    return data


def parse_diff(data: bytes, encoding: str | None = None) -> Diff:
    """Parse unified diff bytes. Each file's section is decoded on its own, so one file in an unknown
    encoding is skipped (with a warning) without losing the others."""
    diff = Diff()
    sections = _split_files(data)
    if data.strip() and not sections:
        raise ReviewError("the input is not a unified diff (no '--- a/file' / '+++ b/file' headers found)")
    for raw in sections:
        text = _decode(raw, encoding)
        if text is None:
            name = _guess_name(raw)
            hint = f"--encoding {encoding} did not fit either" if encoding else "pass --encoding (e.g. latin-1) to read it"
            diff.warnings.append(f"{name}: not UTF-8 text; skipped ({hint})")
            continue
        _parse_file(text, diff)
    return diff


def _split_files(data: bytes) -> list[bytes]:
    """One chunk per file: split on `diff --git` lines, or on `--- ` lines followed by `+++ ` (plain diff -u)."""
    lines = data.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(b"diff --git ")]
    if not starts:
        starts = [i for i, line in enumerate(lines)
                  if line.startswith(b"--- ") and i + 1 < len(lines) and lines[i + 1].startswith(b"+++ ")]
    bounds = starts + [len(lines)]
    return [b"".join(lines[a:b]) for a, b in zip(bounds, bounds[1:])]


def _decode(raw: bytes, encoding: str | None) -> str | None:
    for codec in ("utf-8", encoding):
        if codec is None:
            continue
        try:
            return raw.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _guess_name(raw: bytes) -> str:
    match = re.search(rb"^\+\+\+ (?:b/)?(.+)$", raw, re.MULTILINE) or re.search(rb"^diff --git a/(\S+)", raw, re.MULTILINE)
    return match.group(1).decode("utf-8", "replace").strip() if match else "(a file)"


def _strip_prefix(name: str) -> str:
    name = name.split("\t", 1)[0].strip()
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1]
    return name[2:] if name[:2] in ("a/", "b/") else name


def _parse_file(text: str, diff: Diff) -> None:
    lines = text.splitlines()
    old = new = ""
    git_names = re.match(r"diff --git a/(.+) b/(.+)$", lines[0]) if lines else None
    if git_names:
        old, new = git_names.group(1), git_names.group(2)
    i = 0
    while i < len(lines) and not lines[i].startswith("@@"):
        line = lines[i]
        if line.startswith("--- "):
            old = "" if line[4:].startswith("/dev/null") else _strip_prefix(line[4:])
        elif line.startswith("+++ "):
            new = "" if line[4:].startswith("/dev/null") else _strip_prefix(line[4:])
        elif line.startswith("Binary files ") or line.startswith("GIT binary patch"):
            diff.warnings.append(f"{new or old or '(a file)'}: binary file; skipped")
            return
        i += 1
    path = new or old
    if not path:
        return
    if "\x00" in text:
        diff.warnings.append(f"{path}: contains NUL bytes (binary?); skipped")
        return
    entry = diff.files.setdefault(path, FileDiff(path=path, old_path=old, deleted=not new))
    new_no = 0
    for line in lines[i:]:
        header = _HUNK.match(line)
        if header:
            new_no = int(header.group(3))
            entry.hunks.append(Hunk(line))
            continue
        if line.startswith("\\") or not entry.hunks:  # "\ No newline at end of file", or no hunk yet
            continue
        kind, body = (line[0], line[1:]) if line else (" ", "")  # some tools strip the blank context line's space
        if kind not in "+- ":
            continue
        entry.hunks[-1].lines.append((kind, None if kind == "-" else new_no, body))
        if kind == "-":  # only in the old version: no new-side line number
            continue
        if kind == "+":
            entry.added_lines.add(new_no)
        entry.shown[new_no] = body
        new_no += 1
