"""The README and the docs it links stay true to the code: every `mentor ...` command they show parses
against the real command line (an option that was renamed or never existed fails here), every relative
link points at a file in the repository, and nothing points outside it.

Commands are parsed, never run: each one is resolved through the typer app's click command with
`make_context` (which checks options, their types and required ones) down to its subcommand.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import typer

import mentor.cli

ROOT = Path(__file__).resolve().parent.parent
# The user documentation these tests own: the README and the measurement pages it links.
DOCUMENTS = ["README.md", "docs/measurements.md", "docs/studies.md"]
SHELL_BLOCKS = {"sh", "bash", "shell", "console"}  # output and other blocks are checked to hold no command
COMMAND_LINE = re.compile(r"^\s*(?:\$\s+)?(?:[A-Z_]+=\S+\s+)*mentor\s", re.M)
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
INLINE = re.compile(r"(?<!`)`(mentor [^`\n]+(?:\n[^`\n]+)?)`(?!`)")  # a code span may wrap once
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _text(name: str) -> str:
    path = ROOT / name
    assert path.is_file(), f"{name} is missing"
    return path.read_text(encoding="utf-8")


def _blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line number of the fence) for every fenced code block."""
    return [(m.group(1).lower(), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def _prose(text: str) -> str:
    """The text with fenced code blocks blanked out (line numbers kept)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def mentor_commands(script: str) -> list[list[str]]:
    """The argument lists of every `mentor` invocation in a shell snippet: after env assignments, in pipes and
    `&&` chains, as `python -m mentor` or `torchrun ... -m mentor`, with backslash continuations joined."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        line = re.sub(r"^\s*\$\s+", "", line)  # a console prompt
        lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
        lexer.whitespace_split = True  # words like a shell's: `a,b`, `key=value`, `../x` stay whole
        lexer.commenters = "#"
        segment: list[str] = []
        redirect = False
        for token in [*lexer, ";"]:
            if redirect:  # the file of `> out.json`: not an argument
                redirect = False
            elif token and set(token) <= set("<>"):
                if segment and segment[-1].isdigit():  # the 2 of `2>`
                    segment.pop()
                redirect = True
            elif token and set(token) <= set("|&;"):
                found += _invocation(segment)
                segment = []
            else:
                segment.append(token)
    return found


def _invocation(words: list[str]) -> list[list[str]]:
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):  # VAR=value mentor ...
        words = words[1:]
    if words and words[0] in ("mentor", ".venv/bin/mentor"):
        return [words[1:]]
    for i in range(len(words) - 1):
        if words[i] == "-m" and words[i + 1] == "mentor":
            return [words[i + 2:]]
    return []


def parse(args: list[str], app: typer.Typer | None = None) -> list[str]:
    """Resolve `mentor ARGS` to its (sub)command and parse its options without running anything; raises the
    click usage error a user would see. Returns the hidden options the line used: old spellings kept for a
    release, which documentation must not teach."""
    for module in mentor.cli.COMMAND_MODULES:  # the commands that register themselves on import
        importlib.import_module(module)
    command = typer.main.get_command(app or mentor.cli.app)
    ctx = command.make_context("mentor", list(args), resilient_parsing=False)
    contexts = [ctx]
    while hasattr(command, "resolve_command"):  # a group: descend into the named subcommand
        rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []), *ctx.args]
        assert rest, f"`mentor {' '.join(args)}` names no command"
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)
        contexts.append(ctx)
    return [opt for c in contexts for p in c.command.params if getattr(p, "hidden", False)
            for opt in p.opts if getattr(c.get_parameter_source(p.name), "name", "") == "COMMANDLINE"]


def _exit_is_clean(err: BaseException) -> bool:
    """--version and -h end parsing with a clean exit, whichever copy of click raised it."""
    return type(err).__name__ == "Exit" and getattr(err, "exit_code", 1) == 0


def _cases() -> list:
    cases = []
    for name in DOCUMENTS:
        if not (ROOT / name).is_file():
            cases.append(pytest.param(name, 0, None, False, id=f"{name}:missing"))
            continue
        text = _text(name)
        for lang, body, line in _blocks(text):
            if lang not in SHELL_BLOCKS:
                if lang in ("", "text") and COMMAND_LINE.search(body):  # a command there would go unchecked
                    cases.append(pytest.param(name, line, ["<a mentor command in a block not tagged sh>"], True,
                                              id=f"{name}:{line}:untagged"))
                continue
            try:
                commands = mentor_commands(body)
            except ValueError as err:  # e.g. an unclosed quote: a block a shell could not run either
                cases.append(pytest.param(name, line, ["<unparseable block>", str(err)], True, id=f"{name}:{line}:bad"))
                continue
            for args in commands:
                cases.append(pytest.param(name, line, args, True, id=f"{name}:{line}:mentor {' '.join(args)}"[:120]))
        prose = _prose(text)
        for m in INLINE.finditer(prose):
            line = prose.count("\n", 0, m.start()) + 1
            args = shlex.split(m.group(1).replace("\n", " "))[1:]
            cases.append(pytest.param(name, line, args, False, id=f"{name}:{line}:`{' '.join(m.group(1).split())}`"[:120]))
    return cases


@pytest.mark.parametrize("document, line, args, complete", _cases())
def test_documented_command_parses(document, line, args, complete):
    """A command in a code block must parse completely (required options given); one quoted inline in prose
    may be partial, but every option and command it names must exist and take the value shown."""
    assert args is not None, f"{document} does not exist"
    try:
        hidden = parse(args)
    except BaseException as err:  # noqa: BLE001 - click's errors come from typer's bundled copy or click itself
        if _exit_is_clean(err):
            return
        if not complete and type(err).__name__ == "MissingParameter":
            return
        message = err.format_message() if hasattr(err, "format_message") else repr(err)
        pytest.fail(f"{document}:{line}: `mentor {' '.join(args)}` does not parse: {message}")
    assert not hidden, f"{document}:{line}: `mentor {' '.join(args)}` uses the old spelling {', '.join(hidden)}"


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    slugs = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", _prose(text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        slugs.add(slug)
    return slugs


@pytest.mark.parametrize("document", DOCUMENTS)
def test_relative_links_point_at_files_in_the_repository(document):
    text = _text(document)
    base = (ROOT / document).parent
    problems = []
    for m in LINK.finditer(_prose(text)):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (base / path).resolve() if path else (ROOT / document).resolve()
        line = text.count("\n", 0, m.start()) + 1
        if ROOT not in resolved.parents and resolved != ROOT:
            problems.append(f"{document}:{line}: {target} points outside the repository")
        elif not resolved.exists():
            problems.append(f"{document}:{line}: {target} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{document}:{line}: {target}: no heading with the anchor #{anchor}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_no_reference_to_files_outside_the_repository(document):
    """A reader has the repository, not our development tree: no `../shared/...` paths, no "the SPEC"."""
    problems = [f"{document}:{n}: {line.strip()}" for n, line in enumerate(_text(document).splitlines(), 1)
                if "../shared" in line or re.search(r"\bSPEC\b", line)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("snippet, expected", [
    ("mentor run --rounds 2  # a comment", [["run", "--rounds", "2"]]),
    ("MENTOR_HOME=/tmp/h mentor show --json", [["show", "--json"]]),
    ("git diff main... | mentor review - --min-severity major && echo ok", [["review", "-", "--min-severity", "major"]]),
    ("torchrun --nproc_per_node 4 -m mentor train --data t.jsonl \\\n  -o adapter/", [["train", "--data", "t.jsonl", "-o", "adapter/"]]),
    ("bandit -r . -f sarif -o bandit.sarif || true", []),
    ("mentor show --json > run.json 2>/dev/null", [["show", "--json"]]),
    ("$ mentor runs", [["runs"]]),
])
def test_commands_are_found_in_shell_snippets(snippet, expected):
    assert mentor_commands(snippet) == expected


@pytest.mark.parametrize("args", [
    ["eval", "--data", "dev.jsonl", "--no-such-option"],
    ["review", "--fail-on"],  # an option without its value
    ["eval"],  # --data is required
    ["run", "--rounds", "many"],
    ["frobnicate"],
    ["feedback", "nope"],
])
def test_parse_rejects_what_the_cli_rejects(args):
    """The check above can fail: commands the CLI refuses are refused here too."""
    with pytest.raises(BaseException) as caught:
        parse(args)
    assert type(caught.value).__name__ in {"NoSuchOption", "BadOptionUsage", "MissingParameter", "BadParameter", "UsageError"}


def test_parse_accepts_a_valid_nested_command():
    assert parse(["feedback", "add", "--verdict", "agree", "--code", "x = 1", "--review", "rename x"]) == []


def test_parse_reports_hidden_old_spellings():
    """An old spelling kept as a hidden alias still parses, but is reported, so the docs teach the new one."""
    app = typer.Typer()

    @app.command()
    def go(new: str = typer.Option("", "--new"), old: str = typer.Option("", "--old", hidden=True)) -> None:
        """A command with a new and an old spelling."""

    @app.command()
    def other() -> None:
        """A second command, so `go` is a subcommand as mentor's are."""

    assert parse(["go", "--new", "x"], app) == []
    assert parse(["go", "--old", "x"], app) == ["--old"]
