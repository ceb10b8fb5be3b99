"""Binding a ChatClient to the run store: every call recorded in `teacher_calls`, replies reused from it.

`StoreCalls(store, run_id)` is both the client's recorder and its reply cache. A call is recorded with
its cache key when it succeeds, so a run killed at any point and resumed (or a repeated run) gets the
reply from the store instead of paying for it again; cache hits are recorded too, as "cached", costing 0.
SQLite connections belong to the thread that opened them and the client works in several threads
(`ChatClient.map`), so other threads open their own short-lived connection to the same database (WAL mode
lets them write one after another).
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from mentor.llm.client import Reply, completion_parts
from mentor.store import Store


class StoreCalls:
    def __init__(self, store: Store, run_id: int | None) -> None:
        self.run_id = run_id
        self._main, self._owner = store, threading.get_ident()

    @contextmanager
    def _store(self) -> Iterator[Store]:
        """The run's store in the thread that opened it; elsewhere a connection of this thread's own."""
        if threading.get_ident() == self._owner:
            yield self._main
            return
        store = Store(self._main.path)
        try:
            yield store
        finally:
            store.close()

    def record(self, **fields: Any) -> None:
        with self._store() as store:
            store.record_call(self.run_id, **fields)

    def get(self, key: str) -> Reply | None:
        with self._store() as store:
            row = store.cached_call(key)
        if row is None:
            return None
        try:
            parts = completion_parts(json.loads(row["reply"]))
        except ValueError:
            parts = None
        if parts is None:
            return None
        return Reply(parts[0], row["tokens_in"], row["tokens_out"], 0.0, 0.0, True, parts[1])

    def put(self, key: str, reply: Reply) -> None:
        """Nothing to do: `record` stored the call with its cache key."""
