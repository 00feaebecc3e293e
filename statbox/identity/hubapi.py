"""The hub API's JSON bodies checked before upstream code sees them, in every mode.

Upstream JupyterHub stores token notes of any length, answers 500 to well-formed JSON of the
wrong shape (``{"usernames": [1, 2, 3]}``), overflows into a 500 on a huge ``expires_in``, and
quotes the offending input whole in its errors. :data:`CHECKED_HANDLERS` are upstream's
handlers that take a JSON body, each checking the body's shape (types, lengths, counts) first:
ill-typed JSON is a 400 naming the field and never its value, and token notes, lifetimes,
scope lists and the number of tokens a user holds are bounded.

The authenticator puts :func:`limit_handlers` first among the hub's handlers, so these and the
request limits of :mod:`statbox.identity.limits` take precedence over upstream's in every mode.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

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
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from tornado import web

from statbox.identity.limits import MAX_TOKEN_LIFETIME_SECONDS, RequestLimits

MAX_NOTE_CHARS = 1023
"""A token's note: JupyterHub's database column is ``Unicode(1023)``."""

MAX_NAME_CHARS = 255
"""A username, group, role or scope named in a body (JupyterHub's columns are 255 wide)."""

MAX_NAMES = 10_000
"""Names in one request (users created, added to a group...)."""

MAX_TOKEN_SCOPES = 100
"""Scopes or roles asked for one token."""

MAX_API_TOKENS = 100
"""Unexpired API tokens a user may hold; a new one beyond that is refused (revoke some first)."""


# --------------------------------------------------------------------------- body shapes

Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)]
Names = Annotated[list[Name], Field(max_length=MAX_NAMES)]


class _Body(BaseModel):
    """A JSON body's known fields, strictly typed (``1`` is not a string, ``true`` not a
    number); fields it does not name are left to upstream."""

    model_config = ConfigDict(strict=True, extra="allow")


class NewUsers(_Body):
    """``POST /api/users``."""

    usernames: Names = []
    admin: bool = False


class UserChange(_Body):
    """``POST`` and ``PATCH /api/users/:name``."""

    name: Name = ""
    admin: bool = False


class NewToken(_Body):
    """``POST /api/users/:name/tokens``."""

    note: Annotated[str, StringConstraints(max_length=MAX_NOTE_CHARS)] | None = None
    expires_in: Annotated[int, Field(gt=0, le=MAX_TOKEN_LIFETIME_SECONDS)] | None = None
    scopes: Annotated[list[Name], Field(max_length=MAX_TOKEN_SCOPES)] | None = None
    roles: Annotated[list[Name], Field(max_length=MAX_TOKEN_SCOPES)] | None = None
    auth: dict[str, Any] | None = None


class NewGroups(_Body):
    """``POST /api/groups``."""

    groups: Names = []
    users: Names = []


class GroupMembers(_Body):
    """``POST /api/groups/:name`` and ``POST``/``DELETE /api/groups/:name/users``."""

    users: Names = []


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

    body_shapes: dict[str, type[_Body]] = {}

    def get_json_body(self) -> Any:
        body = super().get_json_body()  # type: ignore[misc]  # upstream: 400 on bad JSON
        shape = self.body_shapes.get(self.request.method or "")
        if body is None or shape is None:
            return body
        if not isinstance(body, dict):
            raise web.HTTPError(400, "Invalid request body: a JSON object is required")
        try:
            shape.model_validate(body)
        except ValidationError as error:
            raise web.HTTPError(400, shape_error(error)) from None
        return body


class CheckedUserListHandler(CheckedBody, UserListAPIHandler):
    body_shapes = {"POST": NewUsers}


class CheckedUserHandler(CheckedBody, UserAPIHandler):
    body_shapes = {"POST": UserChange, "PATCH": UserChange}


def live_api_tokens(user: Any, now: datetime) -> int:
    """A user's unexpired tokens of the hub's own client (API tokens, not services' OAuth)."""
    return sum(
        1
        for token in user.api_tokens
        if token.client_id == "jupyterhub" and (token.expires_at is None or token.expires_at > now)
    )


class CheckedTokenListHandler(CheckedBody, UserTokenListAPIHandler):
    """Token notes, lifetimes and scope lists bounded; at most :data:`MAX_API_TOKENS` each."""

    body_shapes = {"POST": NewToken}

    def get_scope_filter(self, req_scope: str) -> Any:
        # Upstream's POST asks this filter whether the requester (signed in, or named by the
        # body's `auth`) may make tokens for the user, just before making one: the count is
        # checked there, so nobody learns anything of a user they have no access to.
        allowed = super().get_scope_filter(req_scope)
        if req_scope != "tokens" or self.request.method != "POST":
            return allowed

        def allowed_within_the_cap(orm_resource: Any, kind: str) -> bool:
            if not allowed(orm_resource, kind=kind):
                return False
            now = datetime.now(UTC).replace(tzinfo=None)  # the hub stores naive UTC
            if live_api_tokens(orm_resource, now) >= MAX_API_TOKENS:
                raise web.HTTPError(
                    400,
                    f"This user already has {MAX_API_TOKENS} API tokens: revoke some "
                    "(on the hub's token page) before making another.",
                )
            return True

        return allowed_within_the_cap


class CheckedGroupListHandler(CheckedBody, GroupListAPIHandler):
    body_shapes = {"POST": NewGroups}


class CheckedGroupHandler(CheckedBody, GroupAPIHandler):
    body_shapes = {"POST": GroupMembers}


class CheckedGroupUsersHandler(CheckedBody, GroupUsersAPIHandler):
    body_shapes = {"POST": GroupMembers, "DELETE": GroupMembers}


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
