"""The dashboards' front: a JupyterHub-managed service in front of Dask Gateway's HTTP proxy.

Two kinds of path, under the service's prefix (``/services/dask-gateway/``):

* ``api/...``: the gateway's REST API, passed through unchanged. The gateway authenticates
  every call itself (``Authorization: jupyterhub <token>``), so the front adds nothing.
* ``clusters/<name>/...``: a cluster's dashboard (HTTP and websockets). The requester is
  identified by the hub (:class:`~jupyterhub.services.auth.HubOAuth`: the service's OAuth
  cookie, or ``Authorization: token ...``); a browser without a session is sent to log in.
  The gateway then decides whether this requester may view the cluster, by being asked
  for it with the requester's own token: its answer (owner or admin, see
  :class:`statbox.configure.gateway.HubAdminAwareUser`) is the only rule, so the front
  cannot drift from it. Anyone else gets 403.

What reaches a dashboard carries no credential of the viewer's (no ``Cookie``, no
``Authorization``, no ``token`` argument), and nothing a dashboard answers may set a cookie:
a scheduler runs its owner's code, and an admin looking at it must not hand that code a
token or let it plant cookies on the hub's domain.

Everything else under the prefix is 404: the front opens only what users need.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders
from tornado.websocket import WebSocketClientConnection, WebSocketHandler, websocket_connect

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
"""Headers that belong to one connection, not to the request (RFC 9110, 7.6.1)."""

VIEWER_CREDENTIALS = frozenset({"cookie", "authorization"})
"""Request headers never forwarded to a dashboard."""

WEBSOCKET_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"}
)
"""Set by the client library on the upstream connection: forwarding them would clash."""

ALLOWED_FOR = 30.0
"""Seconds the gateway's "may view" answer is reused for one token and cluster: a dashboard
page loads dozens of assets, and the gateway asks the hub about the token each time."""


@dataclass(frozen=True)
class FrontConfig:
    """Where the front listens and what it guards.

    ``gateway_url``: Dask Gateway's HTTP proxy, without its prefix (``http://host:port``);
    ``prefix``: the service's prefix, which the gateway's proxy also serves under, with
    slashes at both ends.
    """

    gateway_url: str
    prefix: str


def _forwarded_headers(headers: HTTPHeaders, drop: Iterable[str] = ()) -> HTTPHeaders:
    dropped = HOP_BY_HOP | set(drop)
    out = HTTPHeaders()
    for name, value in headers.get_all():
        if name.lower() not in dropped:
            out.add(name, value)
    return out


def _refuse_unclean_path(path: str) -> None:
    """400 for a path with ``.`` or ``..`` segments (escaped or not) or backslashes.

    The check is made on the path as routed here; a proxy behind that cleaned the path
    would then serve another page than the one checked (``clusters/mine/../../clusters/
    theirs/status``, or ``api/../clusters/theirs/status``). Browsers never send these.
    """
    decoded = unquote(path)
    if "\\" in decoded or any(segment in (".", "..") for segment in decoded.split("/")):
        raise web.HTTPError(400, "a path with dot segments")


def _without_token_argument(uri: str) -> str:
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


async def _relay(
    handler: web.RequestHandler, url: str, headers: HTTPHeaders, keep_cookies: bool
) -> None:
    """Send ``handler``'s request to ``url`` and its answer back, status and body unchanged."""
    method = handler.request.method or "GET"
    request = HTTPRequest(
        url,
        method=method,
        headers=headers,
        body=handler.request.body if method in ("POST", "PUT", "PATCH", "DELETE") else None,
        follow_redirects=False,
        allow_nonstandard_methods=True,
        decompress_response=False,
        request_timeout=300,
    )
    try:
        response: HTTPResponse = await AsyncHTTPClient().fetch(request, raise_error=False)
    except OSError as exc:
        raise web.HTTPError(502, f"the gateway did not answer: {exc}") from None
    if response.code == 599:
        raise web.HTTPError(502, f"the gateway did not answer: {response.error}")
    handler.clear()
    handler.clear_header("Content-Type")
    handler.set_status(response.code, response.reason)
    dropped = HOP_BY_HOP if keep_cookies else HOP_BY_HOP | {"set-cookie"}
    for name, value in response.headers.get_all():
        if name.lower() not in dropped:
            handler.add_header(name, value)
    if response.body:
        handler.write(response.body)


class GatewayApiHandler(web.RequestHandler):
    """The gateway's API, passed through: the gateway authenticates it."""

    front: FrontConfig

    def initialize(self, front: FrontConfig) -> None:
        self.front = front

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API calls from clients, not forms: no XSRF cookie to check."""

    async def _pass(self, *_: Any) -> None:
        _refuse_unclean_path(self.request.path)
        headers = _forwarded_headers(self.request.headers)
        await _relay(self, f"{self.front.gateway_url}{self.request.uri}", headers, True)

    get = post = put = patch = delete = head = options = _pass


class ViewPermissions:
    """Which (token, cluster) pairs the gateway said may be viewed, for :data:`ALLOWED_FOR`."""

    def __init__(self, front: FrontConfig):
        self.front = front
        self._allowed: dict[tuple[str, str], float] = {}

    async def may_view(self, token: str, cluster: str) -> bool:
        key = (hashlib.sha256(token.encode()).hexdigest(), cluster)
        now = time.monotonic()
        if self._allowed.get(key, 0.0) > now:
            return True
        url = f"{self.front.gateway_url}{self.front.prefix}api/v1/clusters/{quote(cluster)}"
        request = HTTPRequest(
            url, headers={"Authorization": f"jupyterhub {token}"}, request_timeout=30
        )
        try:
            await AsyncHTTPClient().fetch(request)
        except HTTPClientError:
            return False  # 401 (token), 403 (not theirs), 404 (no such cluster)
        except OSError as exc:
            raise web.HTTPError(502, f"the gateway did not answer: {exc}") from None
        self._allowed = {k: t for k, t in self._allowed.items() if t > now}
        self._allowed[key] = now + ALLOWED_FOR
        return True


class ClusterPagesHandler(HubOAuthenticated, WebSocketHandler):
    """A cluster's dashboard, HTTP or websocket, for those the gateway lets view it."""

    front: FrontConfig
    permissions: ViewPermissions
    upstream: WebSocketClientConnection | None = None

    def initialize(self, front: FrontConfig, permissions: ViewPermissions) -> None:
        self.front = front
        self.permissions = permissions

    def _is_websocket(self) -> bool:
        return self.request.headers.get("Upgrade", "").lower() == "websocket"

    async def _authorize(self, cluster: str) -> None:
        _refuse_unclean_path(self.request.path)
        if self.current_user is None:
            if self._is_websocket() or self.request.method != "GET":
                raise web.HTTPError(403)
            self.redirect(self.get_login_url())
            raise web.Finish()
        token = self.hub_auth.get_token(self)
        if not token or not await self.permissions.may_view(token, cluster):
            raise web.HTTPError(403, "this cluster is not yours")

    def _upstream_url(self, scheme: str = "http") -> str:
        base = self.front.gateway_url
        if scheme == "ws":
            base = "ws" + base[len("http") :]
        return f"{base}{_without_token_argument(self.request.uri or '')}"

    def _upstream_headers(self, drop: Iterable[str] = ()) -> HTTPHeaders:
        return _forwarded_headers(self.request.headers, VIEWER_CREDENTIALS | set(drop))

    async def get(self, cluster: str, *args: Any, **kwargs: Any) -> None:
        await self._authorize(cluster)
        if not self._is_websocket():
            await _relay(self, self._upstream_url(), self._upstream_headers(), False)
            return
        protocols = self.request.headers.get("Sec-WebSocket-Protocol", "")
        request = HTTPRequest(
            self._upstream_url("ws"),
            headers=self._upstream_headers(WEBSOCKET_HANDSHAKE | {"sec-websocket-protocol"}),
            request_timeout=30,
        )
        try:
            self.upstream = await websocket_connect(
                request,
                on_message_callback=self._from_upstream,
                subprotocols=[p.strip() for p in protocols.split(",") if p.strip()] or None,
            )
        except (OSError, HTTPClientError) as exc:
            raise web.HTTPError(502, f"the dashboard's websocket did not open: {exc}") from None
        await super().get(cluster, *args, **kwargs)

    async def post(self, cluster: str, *_: Any) -> None:
        await self._authorize(cluster)
        await _relay(self, self._upstream_url(), self._upstream_headers(), False)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self.upstream.selected_subprotocol if self.upstream else None

    def check_xsrf_cookie(self) -> None:
        """Dashboards post nothing that changes state on behalf of a form of ours."""

    async def on_message(self, message: str | bytes) -> None:
        if self.upstream is not None:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))

    def _from_upstream(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
        elif self.ws_connection is not None:
            self.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


def make_app(front: FrontConfig, cookie_secret: bytes) -> web.Application:
    """The front's tornado application.

    Its handlers find the hub's OAuth client as JupyterHub's service helpers do:
    ``HubOAuth.instance()``, configured from the ``JUPYTERHUB_*`` variables the hub gives a
    managed service; ``cookie_secret`` signs the OAuth cookie.
    """
    prefix = front.prefix
    permissions = ViewPermissions(front)
    return web.Application(
        [
            (f"{prefix}oauth_callback", HubOAuthCallbackHandler),
            (f"{prefix}api/.*", GatewayApiHandler, {"front": front}),
            (
                rf"{prefix}clusters/([^/]+)(/.*)?",
                ClusterPagesHandler,
                {"front": front, "permissions": permissions},
            ),
        ],
        cookie_secret=cookie_secret,
        websocket_ping_interval=30,
    )
