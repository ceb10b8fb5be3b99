"""Curriculum generation (step 4 of the loop): vet what the teacher proposed, merge it, pick a round's training set.

Every proposed example gets a status that the store keeps: `accepted`, `invalid: <why>`,
`excluded: holdout` (its normalised input matches a holdout item) or `duplicate`. Only accepted examples
are ever trained on. A round trains on its new examples plus a replay sample of earlier accepted ones,
so old lessons are kept without retraining on the whole, growing curriculum every round.
"""

from __future__ import annotations

import random
from collections import Counter

from mentor.records import Example
from mentor.tasks import Task


def vet(task: Task, proposals: list[Example], holdout_keys: set[str], known_keys: set[str]) -> list[str]:
    """A status per proposal, in order."""
    statuses = []
    seen = set(known_keys)
    for example in proposals:
        problem = task.validate_example(example)
        if problem:
            statuses.append(f"invalid: {problem}")
            continue
        key = task.key(example.input)
        if key in holdout_keys:
            statuses.append("excluded: holdout")
        elif key in seen:
            statuses.append("duplicate")
        else:
            seen.add(key)
            statuses.append("accepted")
    return statuses


def summarise(statuses: list[str]) -> dict[str, int]:
    counts = Counter(s.split(":")[0] for s in statuses)
    return {k: counts.get(k, 0) for k in ("accepted", "invalid", "excluded", "duplicate")}


def training_set(new: list[Example], earlier: list[Example], replay: float | None, seed: int, round_no: int) -> list[Example]:
    """This round's new examples plus up to `replay` x as many earlier ones (None: all of them), shuffled reproducibly."""
    rng = random.Random(f"{seed}:train:{round_no}")
    k = len(earlier) if replay is None else min(len(earlier), int(round(replay * len(new))))
    chosen = new + rng.sample(earlier, k)
    rng.shuffle(chosen)
    return chosen
