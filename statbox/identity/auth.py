"""Authentication: the class password of local mode, OpenID Connect and GitHub sign-in, and the
groups and admin rights every mode derives from the user's role.

Invariants:

* After every sign-in the user's JupyterHub groups are exactly those
  :func:`statbox.identity.roles.groups_for` gives (the provider's valid groups, none of Statbox's
  reserved ones, the settings' groups, one ``statbox-role-<role>`` group and the user's cohort
  groups), and only users whose role is ``admin`` are JupyterHub admins.
* A username is held to :data:`statbox.settings.names.USERNAME_PATTERN`. Anything else is
  refused with a short message, and every log line quotes untrusted input through
  :func:`statbox.settings.names.describe`, so its length is bounded.
* With an identity provider, a username belongs to one identity (the issuer and its ``sub``, or
  GitHub's numeric id) from its first sign-in on, recorded in the user's ``user_info``: another
  identity presenting the same name is refused, so two people never share a user, a home, a
  container or a volume.
* A refused sign-in sets no session cookie and ends on the hub's own login page with one of the
  fixed messages of :data:`REFUSALS`: never a 500, never a redirect off the host.
"""

from __future__ import annotations

import math
import os
import pwd
from dataclasses import dataclass
from secrets import compare_digest
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.utils import url_path_join
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.github import GitHubOAuthenticator
from oauthenticator.oauth2 import STATE_COOKIE_NAME, OAuthCallbackHandler, OAuthLoginHandler
from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.httputil import url_concat
from traitlets import Enum, Float, Instance, Set, Unicode, default
from traitlets.config import Configurable

from statbox.identity.hubapi import limit_handlers
from statbox.identity.roles import groups_for, resolve_role, sign_in
from statbox.identity.throttle import (
    ProxyPeers,
    SignInThrottle,
    forwarded_client,
    normal_ip,
    read_socket_tables,
    socket_owner,
)
from statbox.settings.model import Settings
from statbox.settings.names import describe, is_valid_group, is_valid_username

if TYPE_CHECKING:  # the mixins below are Configurables that extend an Authenticator
    from jupyterhub.auth import Authenticator as _AuthenticatorBase
else:
    _AuthenticatorBase = Configurable


@dataclass(frozen=True)
class Refusal:
    """Why a sign-in was refused, as the person is told it."""

    status: int
    message: str


REFUSALS = {
    "username": Refusal(
        403,
        "This username cannot be used here. Usernames are lower-case letters, digits, '.', '_' "
        "and '-', at most 63, starting with a letter or digit.",
    ),
    "email": Refusal(
        403,
        "Your identity provider has not verified your email address, which names you here. "
        "Verify it, or ask your administrator.",
    ),
    "groups": Refusal(
        403,
        "Your identity provider did not send your groups as a list, so this hub cannot tell "
        "what you may do. Ask your administrator.",
    ),
    "identity": Refusal(
        403,
        "This username already belongs to another account of your identity provider. "
        "Ask your administrator.",
    ),
    "not-allowed": Refusal(
        403, "Your account is not allowed to use this hub. Ask your administrator for access."
    ),
    "state": Refusal(
        400,
        "The sign-in could not be verified: it was started in another browser or tab, or it "
        "has expired. Please sign in again.",
    ),
    "code": Refusal(400, "That sign-in has expired or was already used. Please sign in again."),
    "provider": Refusal(
        502,
        "The identity provider could not sign you in just now. Please try again, or ask your "
        "administrator.",
    ),
}
"""Every way a sign-in is refused. Pages show these fixed texts only, never text from the
request or the provider, so nothing can be injected into them."""

MAX_GROUPS = 1000
"""More groups than this in one claim is refused, not stored."""


class SignInRefused(web.HTTPError):
    """A sign-in refused for the reason ``key`` of :data:`REFUSALS`.

    ``detail`` is for the log only and must already be bounded (quote untrusted values with
    :func:`statbox.settings.names.describe`). ``jupyterhub_message`` is what JupyterHub's error
    page and the password form show.
    """

    def __init__(self, key: str, detail: str):
        refusal = REFUSALS[key]
        super().__init__(refusal.status, "%s", detail)
        self.key = key
        self.detail = detail
        self.jupyterhub_message = refusal.message


class SignInThrottled(web.HTTPError):
    """Too many failed sign-ins of this name from this address, or from this address: 429,
    with how long to wait (the password was not looked at)."""

    def __init__(self, seconds: float):
        self.seconds = max(1, math.ceil(seconds))
        super().__init__(429, "sign-in throttled for %d s", self.seconds)
        self.jupyterhub_message = (
            f"Too many failed sign-ins: please wait {self.seconds} seconds and try again."
        )


def checked_username(name: object) -> str:
    """``name`` normalised (stripped, lower case) when it is a safe username; else refused."""
    if not isinstance(name, str):
        raise SignInRefused("username", f"username is not a string: {describe(name)}")
    normalised = name.strip().lower()
    if not is_valid_username(normalised):
        raise SignInRefused("username", f"username outside the safe pattern: {describe(name)}")
    return normalised


def checked_groups(value: object) -> list[str]:
    """A groups claim as a list of strings; anything else (missing, null, a string) is refused.

    Names outside :data:`statbox.settings.names.GROUP_PATTERN` are dropped: they could not name
    a role or cohort in the settings, whose names are held to that pattern too.
    """
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise SignInRefused("groups", f"groups claim is not a list of strings: {describe(value)}")
    if len(value) > MAX_GROUPS:
        raise SignInRefused("groups", f"groups claim holds {len(value)} groups (> {MAX_GROUPS})")
    return sorted({g for g in value if is_valid_group(g)})


def claim(data: dict[str, Any], path: str) -> Any:
    """``data[a][b]`` for ``path`` "a.b"; a missing key gives the ``MISSING`` marker."""
    value: Any = data
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


def is_on_host(url: str) -> bool:
    """True for a path on this host ("/hub/home"); False for anything a browser could take
    elsewhere ("//other.example", "/\\other.example", "https://...", control characters)."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url:
        return False
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        return False
    parsed = urlparse(url)
    return not parsed.scheme and not parsed.netloc


def github_groups(auth_state: dict[str, Any]) -> list[str]:
    """A GitHub user's groups from the teams OAuthenticator fetched: "org:team" and "org",
    in lower case (GitHub's names are case-insensitive)."""
    teams = auth_state.get("teams")
    try:
        pairs = [(team["organization"]["login"], team["slug"]) for team in teams]  # type: ignore[union-attr]
    except (TypeError, KeyError):
        raise SignInRefused("groups", f"teams are not GitHub teams: {describe(teams)}") from None
    if not all(isinstance(org, str) and isinstance(slug, str) for org, slug in pairs):
        raise SignInRefused("groups", f"teams are not GitHub teams: {describe(teams)}")
    orgs = {org.lower() for org, _ in pairs}
    return sorted(orgs | {f"{org.lower()}:{slug.lower()}" for org, slug in pairs})


# --------------------------------------------------------------------------- handlers


class OnHostRedirects(BaseHandler):
    """After sign-in, go to a path on this host, whatever ``next`` or the state said."""

    def get_next_url(self, user: Any = None) -> str:
        url = super().get_next_url(user)
        if is_on_host(url):
            return str(url)
        self.log.warning("Refused to redirect off the host to %s", describe(url))
        return str(url_path_join(self.hub.base_url, "home"))


class StatboxLoginHandler(OnHostRedirects, LoginHandler):
    """The hub's login page, saying why a sign-in was refused (``?refused=<key>``), and never
    echoing back a username that is not one."""

    def _render(self, login_error: Any = None, username: Any = None, **kwargs: Any) -> Any:
        if login_error is None:
            refusal = REFUSALS.get(self.get_argument("refused", ""))
            login_error = refusal.message if refusal else None
        if username and not is_valid_username(str(username).strip().lower()):
            username = ""
        return super()._render(login_error=login_error, username=username, **kwargs)

    async def post(self) -> None:
        try:
            await super().post()
        except SignInThrottled as throttled:
            self.set_status(429)
            self.set_header("Retry-After", str(throttled.seconds))
            self.finish(await self._render(login_error=throttled.jupyterhub_message))


def refusal_url(handler: BaseHandler, key: str) -> str:
    """The login page that explains refusal ``key``."""
    return str(url_concat(url_path_join(handler.hub.base_url, "login"), {"refused": key}))


class StatboxOAuthLoginHandler(OAuthLoginHandler):
    """Start the authorization-code flow, once the provider's endpoints are known."""

    async def get(self) -> None:
        try:
            await self.authenticator.discover_endpoints()
        except SignInRefused as refusal:
            self.log.warning("Sign-in refused (%s): %s", refusal.key, refusal.detail)
            self.redirect(refusal_url(self, refusal.key))
            return
        super().get()


class StatboxOAuthCallbackHandler(OnHostRedirects, OAuthCallbackHandler):
    """The provider's redirect back: signs the user in, or sends them to the login page with
    the reason, a 302 and no session cookie (upstream answers some of these with a 500)."""

    # upstream check, the refusal it becomes
    CHECKS = (("check_error", "provider"), ("check_code", "code"), ("check_state", "state"))

    def check_arguments(self) -> None:
        for check, key in self.CHECKS:
            try:
                getattr(self, check)()
            except web.HTTPError as exc:
                raise SignInRefused(key, describe(exc.log_message or exc.reason)) from None

    async def get(self) -> None:
        try:
            self.check_arguments()
            user = await self.login_user()
            if user is None:
                raise SignInRefused("not-allowed", "not allowed, or blocked (see above)")
        except SignInRefused as refusal:
            self.log.warning("Sign-in refused (%s): %s", refusal.key, refusal.detail)
            self.clear_cookie(STATE_COOKIE_NAME)
            self.redirect(refusal_url(self, refusal.key))
            return
        self.redirect(self.get_next_url(user))


# --------------------------------------------------------------------------- authenticators


class StatboxAuthMixin(_AuthenticatorBase):
    """What every Statbox authenticator does after it has checked who someone is: groups and
    admin rights from the role, and Statbox's login page. Mix in before the authenticator."""

    settings = Instance(Settings, config=True, help="Statbox settings (set by hub_config.py).")

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        # The authenticator's handlers stand first among the hub's: the request limits and the
        # checked API handlers (statbox.identity.hubapi) take precedence over upstream's.
        upstream = [(path, h) for path, h in super().get_handlers(app) if path != "/login"]
        return [*limit_handlers(), ("/login", StatboxLoginHandler), *upstream]

    def statbox_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        """Set ``groups`` and ``admin`` from the settings and the provider's groups."""
        name = auth_model["name"]
        groups = groups_for(self.settings, name, auth_model.get("groups") or [])
        auth_model["groups"] = groups
        auth_model["admin"] = resolve_role(self.settings, name, groups).role == "admin"
        return auth_model

    async def run_post_auth_hook(self, handler: Any, authentication: dict[str, Any]) -> Any:
        authentication = self.statbox_auth_model(authentication)
        return await super().run_post_auth_hook(handler, authentication)


class StatboxSharedPasswordAuthenticator(StatboxAuthMixin, SharedPasswordAuthenticator):
    """A class password for trainees and analysts, a staff password for instructors and admins.

    Upstream gives the admin password to ``admin_users`` only and makes everyone who uses it a
    JupyterHub admin. Statbox's instructors need the stronger password too, but not admin
    rights: ``staff_users`` must use the admin password, and only ``admin_users`` become admins.
    """

    staff_users = Set(
        Unicode(),
        config=True,
        help="Users who must log in with admin_password (instructors and admins).",
    )
    forwarded_for_from = Enum(
        ["proxy-socket", "proxy-host"],
        "proxy-socket",
        config=True,
        help="Whose X-Forwarded-For gives the client address of a sign-in, the hub's own "
        "proxy's only, known either by the account owning the connecting socket in the hub's "
        "network namespace (proxy-socket: the proxy runs beside the hub), or by the peer's "
        "address being one proxy_host resolves to (proxy-host: the proxy has a network "
        "namespace of its own, a container or pods, and others, users' servers among them, "
        "reach the hub too). Every other peer is counted by its own address.",
    )
    proxy_host = Unicode(
        "",
        config=True,
        help="With forwarded_for_from = proxy-host: a name that resolves to the proxy's "
        "addresses where it reaches the hub, and to nobody else's (a container name on a "
        "private network; a headless Service selecting the proxy's pods).",
    )
    proxy_host_ttl = Float(
        5.0,
        config=True,
        help="Seconds a lookup of proxy_host is kept (a proxy created again is believed "
        "this long after its name resolves to it).",
    )
    proxy_account = Unicode(
        "",
        config=True,
        help="Account the hub's proxy runs as when the hub is root; empty: the hub's own.",
    )
    throttle = Instance(SignInThrottle, help="Failed sign-ins, per name and address.")
    proxy_peers = Instance(ProxyPeers, help="Where proxy_host is (forwarded_for_from proxy-host).")

    @default("proxy_peers")
    def _default_proxy_peers(self) -> ProxyPeers:
        return ProxyPeers(self.proxy_host, ttl=self.proxy_host_ttl)

    @default("throttle")
    def _default_throttle(self) -> SignInThrottle:
        return SignInThrottle()

    def proxy_uid(self) -> int:
        """The uid of the hub's proxy: ``proxy_account``'s when the hub is root (local mode
        then starts the proxy under it), else the hub's own."""
        if self.proxy_account and os.geteuid() == 0:
            return pwd.getpwnam(self.proxy_account).pw_uid
        return os.geteuid()

    async def client_address(self, handler: Any) -> str:
        """The address a sign-in comes from (see :mod:`statbox.identity.throttle`); "unknown"
        without a request (a call from the hub's own code)."""
        if handler is None:
            return "unknown"
        request = handler.request
        peer = request.connection.context.address
        forwarded = request.headers.get("X-Forwarded-For")
        if not isinstance(peer, tuple):  # a Unix socket: only the proxy is given one
            return forwarded_client(forwarded, "unix")
        if self.forwarded_for_from == "proxy-host":
            trusted = normal_ip(peer[0]) in await self.proxy_peers.addresses()
            return forwarded_client(forwarded, peer[0]) if trusted else normal_ip(peer[0])
        stream = request.connection.stream
        local = stream.socket.getsockname() if stream and stream.socket else None
        if local and socket_owner(read_socket_tables(), peer, local) == self.proxy_uid():
            return forwarded_client(forwarded, peer[0])
        return normal_ip(peer[0])

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        username = checked_username(data.get("username", ""))
        address = await self.client_address(handler)
        wait = self.throttle.wait(username, address)
        if wait > 0:
            self.log.warning("Sign-in of %s from %s throttled", describe(username), address)
            raise SignInThrottled(wait)
        result = self.check_password(username, data.get("password", ""))
        if result is None:
            self.throttle.failed(username, address)
        else:
            self.throttle.succeeded(username, address)
        return result

    def check_password(self, username: str, password: str) -> dict[str, Any] | None:
        if not isinstance(password, str):
            return None
        if username in self.staff_users or username in self.admin_users:
            expected = self.admin_password
        else:
            expected = self.user_password
        if not expected or not compare_digest(password.encode(), expected.encode()):
            self.log.warning("Failed login for %s", describe(username))
            return None
        return {"name": username, "admin": username in self.admin_users, "groups": []}


class StatboxOAuthMixin(StatboxAuthMixin):
    """Statbox's rules over any OAuthenticator: safe usernames bound to one identity, groups
    that must be a list, the settings' allow and block rules, refusals instead of 500s."""

    callback_handler = StatboxOAuthCallbackHandler
    login_handler = StatboxOAuthLoginHandler

    identity_claim = Unicode(
        "sub", config=True, help="Claim of the user data that identifies the person for good."
    )
    identity_realm = Unicode(
        config=True, help="Who vouches for identity_claim (the issuer): part of the binding."
    )

    async def discover_endpoints(self) -> None:
        """Make sure the provider's endpoints are known (OIDC discovery); refuse if not."""

    def get_custom_html(self, base_url: str) -> str:
        # Upstream's login page shows no error for OAuth sign-in: this one does.
        return LOGIN_BUTTON_HTML

    def user_info_to_username(self, user_info: dict[str, Any]) -> str:
        if self.username_claim == "email" and user_info.get("email_verified") is not True:
            raise SignInRefused("email", "email is the username claim, and it is not verified")
        return checked_username(claim(user_info, self.username_claim))

    async def get_token_info(self, handler: Any, params: dict[str, Any]) -> Any:
        try:
            return await super().get_token_info(handler, params)
        except HTTPClientError as exc:
            # 4xx: the code was used before, expired, or is not ours (invalid_grant)
            key = "code" if exc.code and 400 <= exc.code < 500 else "provider"
            raise SignInRefused(key, f"token endpoint answered {exc.code}") from None
        except SignInRefused:
            raise
        except (web.HTTPError, OSError, ValueError) as exc:
            raise SignInRefused("code", f"no access token: {describe(str(exc))}") from None

    async def token_to_user(self, token_info: dict[str, Any]) -> Any:
        try:
            user_info = await super().token_to_user(token_info)
        except HTTPClientError as exc:
            raise SignInRefused("provider", f"user data endpoint answered {exc.code}") from None
        except (web.HTTPError, OSError, ValueError) as exc:
            raise SignInRefused("provider", f"no user data: {describe(str(exc))}") from None
        if not isinstance(user_info, dict):
            raise SignInRefused("provider", f"user data is not an object: {describe(user_info)}")
        return user_info

    def provider_groups(self, auth_state: dict[str, Any]) -> Any:
        """The raw groups claim from ``auth_state`` (checked by :func:`checked_groups`)."""
        raise NotImplementedError

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        return set(checked_groups(self.provider_groups(auth_state)))

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        auth_model = await super().update_auth_model(auth_model)
        user_info = auth_model["auth_state"][self.user_auth_state_key]
        identity = claim(user_info, self.identity_claim)
        if not isinstance(identity, str | int) or isinstance(identity, bool) or identity == "":
            raise SignInRefused("provider", f"no usable {self.identity_claim!r} claim")
        auth_model["user_info"] = {
            "identity": f"{self.identity_realm} {identity}",
            **full_name(user_info),
        }
        return auth_model

    async def check_blocked_users(self, username: str, authentication: Any = None) -> bool:
        groups = (authentication or {}).get("groups") or []
        decision = sign_in(self.settings, username, groups)
        if decision.blocked:
            self.log.warning("Sign-in of %s blocked: %s", describe(username), decision.reason)
        return not decision.blocked

    async def run_post_auth_hook(self, handler: Any, authentication: dict[str, Any]) -> Any:
        await self.check_identity(handler, authentication)
        return await super().run_post_auth_hook(handler, authentication)

    async def check_identity(self, handler: Any, authentication: dict[str, Any]) -> None:
        """Refuse a second identity for a username that is already bound to one."""
        user = handler.find_user(authentication["name"])
        bound = ((user.user_info if user is not None else None) or {}).get("identity")
        if bound is not None and bound != authentication["user_info"]["identity"]:
            raise SignInRefused(
                "identity",
                f"{describe(authentication['name'])} is bound to another identity",
            )


NAME_CLAIM = "name"
"""The claim holding a person's full name (OpenID Connect's standard claim; GitHub's user
object has the same key): certificates print it (statbox.classroom, statbox.certify)."""

MAX_NAME_CHARACTERS = 200


def full_name(user_info: dict[str, Any]) -> dict[str, str]:
    """``{"name": ...}`` from the provider's name claim, kept in the hub's user model
    (``user_info``, which a service reads with its identify scopes), or nothing when the
    provider sends none usable. Only length is bounded here: whoever shows it makes it
    safe to show (statbox.certify.certificates.display_safe)."""
    name = user_info.get(NAME_CLAIM)
    if not isinstance(name, str) or not name.strip():
        return {}
    return {"name": name.strip()[:MAX_NAME_CHARACTERS]}


LOGIN_BUTTON_HTML = """\
<div class="service-login">
  {% if login_error %}<p class="login_error alert alert-danger">{{ login_error | e }}</p>{% endif %}
  <a role="button" class="btn btn-jupyter btn-lg" id="statbox_sign_in"
     href="{{ authenticator_login_url | e }}">Sign in with {{ authenticator.login_service | e }}</a>
</div>
"""
"""The login page of the OAuth modes: upstream's button, plus the reason of a refusal."""


DISCOVERED_ENDPOINTS = (
    ("authorize_url", "authorization_endpoint"),
    ("token_url", "token_endpoint"),
    ("userdata_url", "userinfo_endpoint"),
)
"""OAuthenticator's endpoint traits, and the OpenID discovery keys that fill them."""


class StatboxOIDCAuthenticator(StatboxOAuthMixin, GenericOAuthenticator):
    """Sign-in with any OpenID Connect provider; its endpoints are discovered from the issuer
    unless configured, and the settings' allow and block rules decide who enters."""

    issuer = Unicode(config=True, help="The provider's issuer URL.")
    groups_claim = Unicode(
        "groups", config=True, help="User-data claim holding the groups (dotted when nested)."
    )

    async def discover_endpoints(self) -> None:
        if all(getattr(self, trait) for trait, _ in DISCOVERED_ENDPOINTS):
            return
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            document = await self.httpfetch(url, "discovering the provider's endpoints")
        except (HTTPClientError, OSError, ValueError) as exc:
            raise SignInRefused("provider", f"discovery at {url} failed: {exc}") from None
        if not isinstance(document, dict) or document.get("issuer") != self.issuer.rstrip("/"):
            raise SignInRefused("provider", f"{url} does not describe issuer {self.issuer}")
        for trait, key in DISCOVERED_ENDPOINTS:
            if not getattr(self, trait):
                setattr(self, trait, str(document.get(key) or ""))

    async def authenticate(self, handler: Any, data: Any = None, **kwargs: Any) -> Any:
        await self.discover_endpoints()  # after a hub restart, the callback comes first
        return await super().authenticate(handler, data, **kwargs)

    def provider_groups(self, auth_state: dict[str, Any]) -> Any:
        return claim(auth_state[self.user_auth_state_key], self.groups_claim)

    async def check_allowed(self, username: str, auth_model: Any) -> bool:
        decision = sign_in(self.settings, username, (auth_model or {}).get("groups") or [])
        self.log.info("Sign-in of %s: %s", describe(username), decision.reason)
        return decision.allowed


class StatboxGitHubAuthenticator(StatboxOAuthMixin, GitHubOAuthenticator):
    """Sign-in with GitHub: upstream asks GitHub about ``allowed_organizations``; teams become
    groups "org:team" (and "org"); a login is bound to GitHub's numeric user id, since GitHub
    lets a renamed login be taken by someone else."""

    def provider_groups(self, auth_state: dict[str, Any]) -> Any:
        return github_groups(auth_state)

    async def check_allowed(self, username: str, auth_model: Any) -> bool:
        # Upstream lets admin_users in whatever their organisations; Statbox's allow rule is
        # the organisations alone (see statbox.identity.roles.sign_in).
        return bool(await super().check_allowed(username, {**(auth_model or {}), "admin": None}))
