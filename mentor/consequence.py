"""The consequence judge: a second offline judge of explanations, reference-free and not embedding-based.

An explanation of a finding's severity should say what the finding does to users or the system. Each of
the four severity levels has its own kind of consequence (the level definitions in mentor.tasks.severity):
a critical finding is a security hole or a crash, a major one gives wrong results or loses data, a minor
one behaves unexpectedly or wastes resources, a trivial one hurts only readability, style or documentation.
`ConsequenceJudge` scores each explanation against the item's TRUE level (item.output[task.label_field]):
+1 for every consequence class of that level it names, -1 for every class of another level it names, and
prefers the higher score; equal scores are a tie. The lexicon below is the whole judge: a reader can check
every verdict by hand, and the reason names the words that matched.

Matching is on word stems (a regex anchored at a word start, case-insensitive). A term is not counted when
one of the three words before it is a negation ("does not crash" names no crash). Because the lexicon is
drawn from the level definitions, the `definition` system of `mentor judge` (the level's canned meaning)
names its level's consequence by construction; the judge says so in `favours`.
"""

from __future__ import annotations

import re
from typing import Any

from mentor.judge import JudgeError
from mentor.records import Example
from mentor.tasks import Task

# level -> consequence class -> stems and phrases (regex fragments, matched at a word start).
LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    "critical": {
        "security vulnerability": (r"secur\w*", r"insecur\w*", r"vulnerab\w*", r"exploit\w*", r"attack\w*", r"malicious\w*",
                                   r"inject\w*", r"xss\b", r"cross-site", r"csrf\b", r"privilege\w*", r"unauthori[sz]\w*",
                                   r"credential\w*", r"passwords?\b", r"tamper\w*", r"arbitrary code", r"remote code",
                                   r"denial of service", r"buffer overflow\w*", r"hijack\w*", r"spoof\w*"),
        "crash or abrupt exit": (r"crash\w*", r"abort\w*", r"abrupt\w*", r"segfault\w*", r"segmentation fault", r"panic\w*",
                                 r"terminat\w* (?:the )?(?:program|process|application|execution)",
                                 r"(?:exit|halt|kill)\w* (?:the )?(?:program|process|application|execution)",
                                 r"unhandled exception\w*", r"uncaught exception\w*"),
        "data exposure": (r"expos\w*", r"disclos\w*", r"(?<!case-)(?<!case )sensitive", r"(?<!memory )(?<!resource )leak\w*",
                          r"confidential\w*"),
    },
    "major": {
        "incorrect results": (r"incorrect\w*", r"wrong\w*", r"erroneous\w*", r"miscalculat\w*", r"inaccura\w*",
                              r"logic(?:al)? (?:error|bug|flaw)\w*", r"off-by-one", r"mistake\w*", r"defect\w*",
                              r"invalid (?:result|output|value|state)\w*"),
        "data loss or corruption": (r"data loss", r"los(?:e|es|ing|t) (?:the |all |some )?data", r"corrupt\w*",
                                    r"overwrit\w*", r"lost updates?"),
        "race or undefined behaviour": (r"race\w*", r"deadlock\w*", r"thread[- ]?unsafe", r"undefined behaviou?r",
                                        r"concurren\w* (?:bug|issue|problem|access)\w*"),
    },
    "minor": {
        "unexpected behaviour": (r"unexpected\w*", r"undesir\w*", r"unintend\w*", r"surpris\w*", r"counter-?intuitive"),
        "performance or resources": (r"performan\w*", r"slow\w*", r"inefficien\w*", r"overhead\w*", r"resources?\b",
                                     r"memory", r"wast\w*", r"latenc\w*", r"expensive"),
        "robustness": (r"robust\w*", r"fragil\w*", r"brittle", r"edge cases?", r"corner cases?", r"portab\w*",
                       r"error[- ]prone"),
    },
    "trivial": {
        "readability": (r"readab\w*", r"unreadab\w*", r"legib\w*", r"clarity", r"confus\w*", r"understandab\w*",
                        r"hard(?:er)? to (?:read|understand|follow)"),
        "style or naming": (r"style\w*", r"stylistic\w*", r"naming", r"renam\w*", r"cosmetic\w*", r"formatt\w*",
                            r"indent\w*", r"whitespace", r"idiomatic\w*"),
        "documentation": (r"document\w*", r"docstring\w*", r"comment\w*", r"javadoc\w*"),
        "maintainability or conventions": (r"maintain\w*", r"convention\w*", r"coding standard\w*", r"redundan\w*",
                                           r"unused", r"dead code", r"duplicat\w*", r"clutter\w*", r"complexity"),
    },
}
LEVELS = tuple(LEXICON)
_NEGATION = re.compile(r"(?:\b(?:not|no|never|without|cannot|nor)\b|n't\b)", re.IGNORECASE)
_PATTERNS = {(level, name): re.compile(r"\b(?:" + "|".join(terms) + ")", re.IGNORECASE)
             for level, classes in LEXICON.items() for name, terms in classes.items()}


def named_consequences(text: str) -> dict[tuple[str, str], list[str]]:
    """(level, class) -> the words of the text that name it (each once), negated mentions left out."""
    found: dict[tuple[str, str], list[str]] = {}
    for key, pattern in _PATTERNS.items():
        for match in pattern.finditer(text or ""):
            before = " ".join(text[:match.start()].split()[-3:])  # the three words before the term
            if not _NEGATION.search(before) and match.group(0) not in found.get(key, []):
                found.setdefault(key, []).append(match.group(0))
    return found


def score(text: str, level: str) -> tuple[int, str]:
    """+1 per consequence class of `level` the text names, -1 per class of another level; and what matched."""
    found = named_consequences(text)
    if not found:
        return 0, "names no consequence" if text.strip() else "empty"
    parts, total = [], 0
    for (where, name), words in found.items():
        quoted = ", ".join(f"'{word}'" for word in words)
        if where == level:
            total += 1
            parts.append(f"+{name} {quoted}")
        else:
            total -= 1
            parts.append(f"-{name} {quoted} ({where})")
    return total, "; ".join(parts)


class ConsequenceJudge:
    """Prefers the explanation that names the consequence of the item's true severity level (see the module)."""

    name = "offline: consequence lexicon (names the true level's consequence)"
    spec = "consequence"
    needs_reference = False
    # What this judge rewards by construction: `mentor judge` says so when one of these systems is compared.
    favours = {"definition": "its lexicon is drawn from the same level definitions the canned meaning states"}

    def prefer(self, task: Task, item: Example, explanation_a: str, explanation_b: str) -> tuple[str, str]:
        level = true_level(task, item)
        a, why_a = score(explanation_a, level)
        b, why_b = score(explanation_b, level)
        reason = f"true level {level}: A {a:+d} ({why_a}); B {b:+d} ({why_b})"
        return ("tie" if a == b else "A" if a > b else "B"), reason


def true_level(task: Task, item: Example) -> str:
    label: Any = item.output.get(task.label_field) if task.label_field else None
    if label not in LEXICON:
        raise JudgeError(f"the consequence judge reads each item's true severity ({task.label_field or 'no label field'!r} "
                         f"of task {task.name!r}), one of {', '.join(LEVELS)}; this item has {label!r}: use a labelled "
                         "severity holdout or another judge (--judge offline or openai:MODEL)")
    return label
