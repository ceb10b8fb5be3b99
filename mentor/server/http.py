"""The HTTP layer of `mentor serve`: routing, bearer-token auth, size limits, JSON in and out.

Built on the standard library's ThreadingHTTPServer: no extra dependency, and enough here, because the
model (one worker thread, batched) is the bottleneck, not connection handling; an ASGI stack would add
packages and an event loop without making a CPU-bound forward pass any faster. Each connection gets a
socket timeout, each request body a size limit (413) and a required Content-Length (411), and the token
is compared in constant time. /health answers without a token so load balancers can probe it.
"""

from __future__ import annotations

import hmac
import json
import logging
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mentor.server.api import Api, ApiError
from mentor.server.batcher import Busy

log = logging.getLogger("mentor.serve")


class MentorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Api, token: str | None, max_request_bytes: int) -> None:
        super().__init__(address, Handler)
        self.api, self.token, self.max_request_bytes = api, token or None, max_request_bytes

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: MentorServer
    server_version = "mentor"
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a connection may sit idle or trickle bytes before it is dropped

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        route = (method, url.path.rstrip("/") or "/")
        self._read = False
        try:
            if route == ("GET", "/health"):
                self._send(200, {"status": "ok", "model": self.server.api.default_model,
                                 "model_load_s": self.server.api.model_load_s,
                                 "batching": self.server.api.batcher.snapshot()})
                return
            self._authorise()
            api = self.server.api
            if route == ("GET", "/v1/models"):
                self._send(200, api.models())
            elif route == ("POST", "/v1/chat/completions"):
                self._send(200, api.chat(self._body()))
            elif route == ("POST", "/v1/review"):
                fmt = (parse_qs(url.query).get("format") or ["json"])[0]
                kind, text = api.review(self._body(), fmt)
                self._send_text(200, kind, text)
            elif route == ("POST", "/v1/feedback"):
                self._send(201, api.feedback(self._body()))
            elif route[1] in ("/health", "/v1/models", "/v1/chat/completions", "/v1/review", "/v1/feedback"):
                raise ApiError(405, f"{method} is not allowed on {route[1]}")
            else:
                raise ApiError(404, f"no endpoint {url.path}; see /v1/models, /v1/chat/completions, /v1/review, "
                                    f"/v1/feedback, /health", code="not_found")
        except ApiError as err:
            if method == "POST" and not self._read:
                self.close_connection = True  # the unread body must not be parsed as the next request
            self._send(err.status, err.body(), {"WWW-Authenticate": "Bearer"} if err.status == 401 else None)
        except Busy as err:
            self._send(503, ApiError(503, str(err), "server_busy").body(), {"Retry-After": "1"})
        except FutureTimeout:
            self._send(504, ApiError(504, "the model did not answer in time", "timeout").body())
        except Exception as err:  # noqa: BLE001 - logged with its traceback and answered 500, the server stays up
            log.exception("error on %s %s", method, url.path)
            self._send(500, ApiError(500, f"internal error: {type(err).__name__}: {err}", "server_error").body())

    def _authorise(self) -> None:
        token = self.server.token
        if token is None:
            return
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                           "authentication_error", "invalid_api_key")

    def _body(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length is None:
            raise ApiError(411, "send a Content-Length header (chunked bodies are not accepted)")
        try:
            size = int(length)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number") from None
        if size > self.server.max_request_bytes:
            raise ApiError(413, f"request body of {size:,} bytes is over the limit of {self.server.max_request_bytes:,}")
        raw = self.rfile.read(size)
        self._read = True
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ApiError(400, f"the body is not UTF-8 JSON: {err}") from None
        except RecursionError:
            raise ApiError(400, "the body nests JSON too deeply") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_text(status, "application/json", json.dumps(body, ensure_ascii=False), headers)

    def _send_text(self, status: int, kind: str, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode("utf-8")
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.info("%s %s", self.address_string(), format % args)
