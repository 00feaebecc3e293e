"""Bounds on what a request may make the hub read, store and say back.

Upstream JupyterHub reads any body up to Tornado's 100 MB default (a larger one reached the
proxy as a 503 after seconds), stores token notes of any length, answers 500 to well-formed
JSON of the wrong shape (``{"usernames": [1, 2, 3]}``) and repeats the offending input whole in
its error messages. This module holds the hub side of Statbox's answer, in every mode (the
same authenticator and hub configuration run in local, docker and Kubernetes modes):

* :class:`RequestLimits`, a routing rule placed before every hub handler: a request whose
  declared body exceeds :data:`MAX_BODY_BYTES` gets 413 as soon as its headers are read, before
  any of the body is; a chunked body is cut at the same size; a URL longer than
  :data:`MAX_URI_BYTES` gets 414. User servers are not behind it (the proxy sends ``/user/``
  to them): uploads through the contents API keep the server's own limits.
* :class:`BoundedErrors`, an output transform: a JSON error's ``message`` is cut to
  :data:`MAX_MESSAGE_CHARS`, whatever handler wrote it.
* :data:`CHECKED_HANDLERS`: the hub API handlers that take a JSON body, each checking the body's
  shape (types, lengths, counts) before upstream code sees it, so ill-typed JSON is a 400 that
  names the field, never a 500, and token notes and lists are bounded.

Invariant: no error this module writes contains more than :data:`MAX_MESSAGE_CHARS` characters
of the request; nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, TypedDict

from jupyterhub.apihandlers.groups import (
    GroupAPIHandler,
    GroupListAPIHandler,
    GroupUsersAPIHandler,
)
from jupyterhub.apihandlers.users import (
    UserAPIHandler,
    UserListAPIHandler,
    UserTokenListAPIHandler,
)
from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
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

MAX_NOTE_CHARS = 1023
"""A token's note: JupyterHub's database column is ``Unicode(1023)``."""

MAX_NAME_CHARS = 255
"""A username, group, role or scope named in a body (JupyterHub's columns are 255 wide)."""

MAX_NAMES = 10_000
"""Names in one request (users created, added to a group...)."""

MAX_TOKEN_SCOPES = 100
"""Scopes or roles asked for one token."""

MAX_TOKEN_LIFETIME_SECONDS = 366 * 24 * 3600
"""Longest ``expires_in`` of a token made through the API (upstream overflows into a 500 on
values past the calendar's end)."""

MAX_API_TOKENS = 100
"""Unexpired API tokens a user may hold; a new one beyond that is refused (revoke some first)."""

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
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
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


# --------------------------------------------------------------------------- body shapes

Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)]
Names = Annotated[list[Name], Field(max_length=MAX_NAMES)]
STRICT = ConfigDict(strict=True)


class NewUsers(TypedDict, total=False):
    """``POST /api/users``."""

    usernames: Names
    admin: bool


class UserChange(TypedDict, total=False):
    """``POST`` and ``PATCH /api/users/:name``."""

    name: Name
    admin: bool


class NewToken(TypedDict, total=False):
    """``POST /api/users/:name/tokens``."""

    note: Annotated[str, StringConstraints(max_length=MAX_NOTE_CHARS)] | None
    expires_in: Annotated[int, Field(gt=0, le=MAX_TOKEN_LIFETIME_SECONDS)] | None
    scopes: Annotated[list[Name], Field(max_length=MAX_TOKEN_SCOPES)] | None
    roles: Annotated[list[Name], Field(max_length=MAX_TOKEN_SCOPES)] | None
    auth: dict[str, Any] | None


class NewGroups(TypedDict, total=False):
    """``POST /api/groups``."""

    groups: Names
    users: Names


class GroupMembers(TypedDict, total=False):
    """``POST /api/groups/:name`` and ``POST``/``DELETE /api/groups/:name/users``."""

    users: Names


def _shape(kind: type) -> TypeAdapter[Any]:
    return TypeAdapter(kind, config=STRICT)


def shape_error(error: ValidationError) -> str:
    """One line naming each wrong field and what it must be; never the value itself."""
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(part) for part in item["loc"]) or "body"
        problems.append(f"{where[:60]}: {item['msg']}")
    return "Invalid request body: " + "; ".join(problems)


class CheckedBody(web.RequestHandler):
    """Mixed in before an upstream API handler: its JSON body must be an object of the shape
    ``body_shapes`` gives for the request's method, or the request is a 400."""

    body_shapes: dict[str, TypeAdapter[Any]] = {}

    def get_json_body(self) -> Any:
        body = super().get_json_body()  # type: ignore[misc]  # upstream: 400 on bad JSON
        shape = self.body_shapes.get(self.request.method or "")
        if body is None or shape is None:
            return body
        if not isinstance(body, dict):
            raise web.HTTPError(400, "Invalid request body: a JSON object is required")
        try:
            shape.validate_python(body)
        except ValidationError as error:
            raise web.HTTPError(400, shape_error(error)) from None
        return body


class CheckedUserListHandler(CheckedBody, UserListAPIHandler):
    body_shapes = {"POST": _shape(NewUsers)}


class CheckedUserHandler(CheckedBody, UserAPIHandler):
    body_shapes = {"POST": _shape(UserChange), "PATCH": _shape(UserChange)}


def live_api_tokens(user: Any, now: datetime) -> int:
    """A user's unexpired tokens of the hub's own client (API tokens, not services' OAuth)."""
    return sum(
        1
        for token in user.api_tokens
        if token.client_id == "jupyterhub" and (token.expires_at is None or token.expires_at > now)
    )


class CheckedTokenListHandler(CheckedBody, UserTokenListAPIHandler):
    """Token notes, lifetimes and scope lists bounded; at most :data:`MAX_API_TOKENS` each."""

    body_shapes = {"POST": _shape(NewToken)}

    async def post(self, user_name: str) -> None:
        self.get_json_body()  # the shape first: upstream turns errors of `auth` into 403
        user = self.find_user(user_name)
        now = datetime.now(UTC).replace(tzinfo=None)  # the hub stores naive UTC
        if user is not None and live_api_tokens(user, now) >= MAX_API_TOKENS:
            raise web.HTTPError(
                400,
                f"This user already has {MAX_API_TOKENS} API tokens: revoke some "
                "(on the hub's token page) before making another.",
            )
        await super().post(user_name)  # type: ignore[misc]  # upstream is a coroutine


class CheckedGroupListHandler(CheckedBody, GroupListAPIHandler):
    body_shapes = {"POST": _shape(NewGroups)}


class CheckedGroupHandler(CheckedBody, GroupAPIHandler):
    body_shapes = {"POST": _shape(GroupMembers)}


class CheckedGroupUsersHandler(CheckedBody, GroupUsersAPIHandler):
    body_shapes = {"POST": _shape(GroupMembers), "DELETE": _shape(GroupMembers)}


CHECKED_HANDLERS: list[tuple[str, Any]] = [
    # Upstream's paths (jupyterhub.apihandlers): these rules stand before upstream's own.
    (r"/api/users", CheckedUserListHandler),
    (r"/api/users/([^/]+)", CheckedUserHandler),
    (r"/api/users/([^/]+)/tokens", CheckedTokenListHandler),
    (r"/api/groups", CheckedGroupListHandler),
    (r"/api/groups/([^/]+)", CheckedGroupHandler),
    (r"/api/groups/([^/]+)/users", CheckedGroupUsersHandler),
]
"""Hub API handlers whose JSON bodies are checked (added by the authenticator's handlers)."""


def limit_handlers() -> list[tuple[str, Any]]:
    """Rules to put first among the hub's handlers: the size limits, then checked handlers."""
    return [(r"/.*", RequestLimits()), *CHECKED_HANDLERS]
