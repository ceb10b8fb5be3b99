"""Classical baselines beside every LLM: what a sceptical engineer would try before fine-tuning anything.

`mentor eval --models` names them (resolved in mentor.targets): `tfidf`, `embed` and `majority` learn from
exactly what the run's best adapter learned from (its accepted curriculum up to the best round); `tfidf:all`,
`embed:all` and `majority:all` from the run's whole labelled data source, less anything near the evaluated
items (pool.py). Each answers like a Student, so mentor.compare scores it with the same metrics, intervals
and paired differences as every other system.

  classifier.py  the three kinds (TF-IDF, sentence embeddings, majority), C by cross-validation
  embed.py       all-MiniLM-L6-v2, batched, with a per-text cache in the store
  pool.py        the `:all` variants: fitted once the evaluated items are known
"""

from mentor.baselines.classifier import KINDS, BaselineStudent, train, train_embed, train_majority, train_tfidf
from mentor.baselines.embed import CachedEncoder
from mentor.baselines.pool import PoolBaseline, leave_out_near

__all__ = ["KINDS", "BaselineStudent", "CachedEncoder", "PoolBaseline", "leave_out_near", "train", "train_embed",
           "train_majority", "train_tfidf"]
