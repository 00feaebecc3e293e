"""Bounds on how much a request may make the hub read and say back, in every mode.

* :class:`RequestLimits`, a routing rule placed before every hub handler: a request whose
  declared body exceeds :data:`MAX_BODY_BYTES` gets 413 as soon as its headers are read, before
  any of the body is; a chunked body is cut at the same size; a URL longer than
  :data:`MAX_URI_BYTES` gets 414. User servers are not behind it (the proxy sends ``/user/``
  to them): uploads through the contents API keep the server's own limits.
* :class:`BoundedErrors`, an output transform: a JSON error's ``message`` is cut to
  :data:`MAX_MESSAGE_CHARS`, whatever handler wrote it.

Upstream reads any body up to Tornado's 100 MB default (a larger one reached the proxy as a
503 after seconds) and repeats the offending input whole in its error messages.

Invariant: no error this module writes or passes contains more than about
:data:`MAX_MESSAGE_CHARS` characters of the request; nothing here blocks the event loop.
This module imports Tornado only (the command line imports it through the hub's
configuration); the API handlers are in :mod:`statbox.identity.hubapi`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from http import HTTPStatus
from typing import Any

from tornado import httputil, iostream, web
from tornado.ioloop import IOLoop
from tornado.routing import Router

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body the hub reads (1 MiB). The hub API's bodies are small JSON documents
(a class of 10,000 usernames is about 300 KiB); files go to user servers, not to the hub."""

MAX_URI_BYTES = 8 * 1024
"""Longest request target (path and query) the hub routes."""

MAX_MESSAGE_CHARS = 300
"""Longest error message the hub sends back: enough for any of its own messages with a short
prefix of the input they quote."""

MAX_TOKEN_LIFETIME_SECONDS = 366 * 24 * 3600
"""Longest ``expires_in`` of a token made through the API (upstream overflows into a 500 on
values past the calendar's end)."""

LINGER_SECONDS = 2.0
"""How long a refused connection is drained before it is closed, so that the client (the
proxy) reads the 413 rather than a reset."""


# --------------------------------------------------------------------------- body and URL size


class RequestLimits(Router):
    """A routing rule that refuses over-large requests and otherwise routes nothing (returning
    ``None`` makes Tornado try the next rule), so it can stand first in the hub's handlers."""

    def __init__(self, max_body: int = MAX_BODY_BYTES, max_uri: int = MAX_URI_BYTES):
        self.max_body = max_body
        self.max_uri = max_uri

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> httputil.HTTPMessageDelegate | None:
        # Called once the headers are parsed and before any of the body is read.
        connection = request.connection
        if len(request.uri or "") > self.max_uri:
            return Refusal(connection, 414, f"The URL is longer than {self.max_uri} bytes.")
        declared = request.headers.get("Content-Length")
        if declared is not None and not declared.isdigit():
            return Refusal(connection, 400, "The Content-Length header is not a number.")
        if declared is not None and int(declared) > self.max_body:
            return Refusal(
                connection,
                413,
                f"The request body is larger than the hub accepts ({self.max_body} bytes).",
            )
        # A chunked body declares no length: Tornado stops reading it at this size.
        set_limit = getattr(connection, "set_max_body_size", None)
        if set_limit is not None:
            set_limit(self.max_body)
        return None


class Refusal(httputil.HTTPMessageDelegate):
    """Answers ``status`` with a JSON message at the end of the headers, then drains and
    closes the connection without reading the body into memory."""

    def __init__(self, connection: Any, status: int, message: str):
        self.connection = connection
        self.status = status
        self.message = message

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        # Taking the stream stops Tornado from reading the body (it would answer its own 400
        # once the body passed its limit, after ours).
        stream = self.connection.detach()
        IOLoop.current().spawn_callback(answer_and_close, stream, self.response())

    def response(self) -> bytes:
        body = json.dumps({"status": self.status, "message": self.message}).encode()
        reason = HTTPStatus(self.status).phrase
        head = (
            f"HTTP/1.1 {self.status} {reason}\r\n"
            "Content-Type: application/json; charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode() + body

    def data_received(self, chunk: bytes) -> None:  # never called: the stream is detached
        pass

    def finish(self) -> None:
        pass

    def on_connection_close(self) -> None:
        pass


async def answer_and_close(stream: iostream.IOStream, response: bytes) -> None:
    """Write ``response``, stop sending, and discard what the client still sends for at most
    :data:`LINGER_SECONDS`: closing a socket with unread data resets it, and a reset can
    destroy the answer before the client reads it."""
    with contextlib.suppress(iostream.StreamClosedError, OSError):
        await stream.write(response)
        stream.socket.shutdown(socket.SHUT_WR)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_SECONDS
        while (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(stream.read_bytes(65536, partial=True), left)
            except TimeoutError:
                break
    stream.close()


# --------------------------------------------------------------------------- error messages


def bounded_message(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` when short enough; else its first ``limit`` characters and how many more."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message) - limit} more characters)"


class BoundedErrors(web.OutputTransform):
    """Cuts the ``message`` of every JSON error response the hub writes (its API handlers write
    the whole exception text, and many quote the input)."""

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        if status_code < 400 or not finishing or len(chunk) <= MAX_MESSAGE_CHARS:
            return status_code, headers, chunk
        if not headers.get("Content-Type", "").startswith("application/json"):
            return status_code, headers, chunk
        try:
            model = json.loads(chunk)
        except ValueError:
            return status_code, headers, chunk
        if not isinstance(model, dict):
            return status_code, headers, chunk
        for key in ("message", "reason"):
            if isinstance(model.get(key), str):
                model[key] = bounded_message(model[key])
        chunk = json.dumps(model).encode()
        if "Content-Length" in headers:
            headers["Content-Length"] = str(len(chunk))
        return status_code, headers, chunk
