"""`mentor serve`: the student and its adapters over HTTP, for review bots and OpenAI-compatible clients.

    batcher.py  one worker thread answers queued questions in batches, grouped by model
    api.py      the endpoints' logic: /v1/chat/completions, /v1/models, /v1/review, /v1/feedback
    http.py     routing, bearer-token auth, request limits, JSON (stdlib ThreadingHTTPServer)

Each served model is a name for a system `mentor eval` knows (`best`, `base`, `round:N`, an adapter
directory, one written by `mentor export` included); they share one loaded base model and switch adapters
between batches. The model's load time is printed at start-up and reported by /health; each /v1/review
answer carries its rating time (`timing`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from mentor.review.diff import ReviewError
from mentor.server.api import Api
from mentor.server.batcher import Batcher
from mentor.server.http import MentorServer

DEFAULT_MODEL = "mentor"


def build_server(models: dict[str, str], home: str | None = None, run_ref: str = "latest", task: str | None = None,
                 student: str | None = None, token: str | None = None, host: str = "127.0.0.1", port: int = 8000,
                 max_request_bytes: int = 1_000_000, max_batch: int = 16, max_wait: float = 0.01) -> MentorServer:
    """A server (not yet serving) for `models`: {name: spec}; the first name is the default model."""
    from mentor.export import adapter_context
    from mentor.review.rate import check_task
    from mentor.runner import open_store
    from mentor.targets import needs_run, resolve_spec

    if not models:
        raise ReviewError("serve needs at least one model")
    started = time.perf_counter()
    default_spec = next(iter(models.values()))
    # An exported adapter as the default model brings its own task and base model (its mentor.json).
    adapter = Path(default_spec) if default_spec not in ("best", "base") and Path(default_spec).is_dir() else None
    ctx = adapter_context(adapter, home, run_ref, need_run=needs_run(list(models.values())), task=task, student=student)
    check_task(ctx.task)
    switches: dict[str, Callable[[], None]] = {}
    labels: dict[str, str] = {}
    for name, spec in models.items():
        if not spec.strip() or not name.strip():
            raise ReviewError(f"--model {name}={spec}: give NAME=SPEC (SPEC: best, base, round:N or an adapter directory)")
        target = resolve_spec(ctx, spec)
        if target.kind != "local":
            raise ReviewError(f"--model {name}={spec}: serve exposes the local student and its adapters, not {target.kind} systems")
        switches[name], labels[name] = target.prepare, target.label
    # Load the default model's adapter now: a broken adapter fails at start-up, not on the first request,
    # and the load time reported covers the model a request gets.
    switches[next(iter(models))]()
    model_load_s = time.perf_counter() - started
    batcher = Batcher(ctx.local_student(), switches, max_batch=max_batch, max_wait=max_wait)
    api = Api(batcher, ctx.task, next(iter(models)), labels, lambda: open_store(home, create=True), model_load_s)
    return MentorServer((host, port), api, token, max_request_bytes)


def parse_models(pairs: list[str], adapter: Path | None, untuned: bool) -> dict[str, str]:
    """--model NAME=SPEC pairs, after the default model 'mentor' (the run's best, --adapter, or --untuned)."""
    default = str(adapter) if adapter is not None else "base" if untuned else "best"
    models = {DEFAULT_MODEL: default}
    for pair in pairs:
        name, sep, spec = pair.partition("=")
        if not sep:
            raise ReviewError(f"--model {pair!r}: give NAME=SPEC, e.g. round2=round:2 or mine=/path/to/adapter")
        models[name.strip()] = spec.strip()
    return models


__all__ = ["DEFAULT_MODEL", "MentorServer", "build_server", "parse_models"]
