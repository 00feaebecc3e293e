"""Sign-in through the real authorization-code flow, as a browser does it, with ``requests``.

:class:`OIDCUser` is a :class:`tests.integration.hubclient.HubUser` that signs in through the
hub's ``/hub/oauth_login``, the provider's development login and consent forms, and back to
``/hub/oauth_callback``. The flow is split so tests can tamper with what comes back:
:meth:`OIDCUser.authorize` walks to the provider's redirect and returns the callback URL
without visiting it; :meth:`OIDCUser.callback` visits it. Redirects are followed by hand, so
every hop is checked to stay on the hub or the provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

import requests

from tests.integration.hubclient import HubUser

SESSION_COOKIE = "jupyterhub-hub-login"


class FlowError(AssertionError):
    pass


@dataclass
class OIDCUser(HubUser):
    issuer: str = ""
    login_name: str = ""
    """The provider account to sign in as (defaults to ``name``)."""

    def authorize(self, start: str = "/hub/oauth_login") -> str:
        """From ``start`` on the hub through the provider's forms; the callback URL."""
        hub_host = urlparse(self.base_url).netloc
        provider_host = urlparse(self.issuer).netloc
        response = self.session.get(f"{self.base_url}{start}", allow_redirects=False, timeout=30)
        for _ in range(20):
            if response.is_redirect:
                target = urljoin(response.url, response.headers["location"])
                host = urlparse(target).netloc
                if host not in (hub_host, provider_host):
                    raise FlowError(f"redirected off the hub and provider: {target}")
                if host == hub_host and urlparse(target).path.endswith("/hub/oauth_callback"):
                    return target
                response = self.session.get(target, allow_redirects=False, timeout=30)
            elif response.status_code == 200 and 'name="prompt" value="login"' in response.text:
                response = self._submit(
                    response, {"prompt": "login", "login": self.login_name or self.name}
                )
            elif response.status_code == 200 and 'name="prompt" value="consent"' in response.text:
                response = self._submit(response, {"prompt": "consent"})
            else:
                raise FlowError(f"{response.status_code} at {response.url}: {response.text[:300]}")
        raise FlowError("the flow did not reach the hub's callback in 20 steps")

    def _submit(self, page: requests.Response, fields: dict[str, str]) -> requests.Response:
        action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
        if action is None:
            raise FlowError(f"no form at {page.url}")
        return self.session.post(
            urljoin(page.url, action.group(1)),
            data={**fields, "password": "any password"},
            allow_redirects=False,
            timeout=30,
        )

    def callback(self, url: str) -> requests.Response:
        """Visit the hub's callback; the hub's answer (a redirect), not followed."""
        return self.session.get(url, allow_redirects=False, timeout=60)

    def sign_in(self, start: str = "/hub/oauth_login") -> requests.Response:
        """The whole flow; the hub's answer to the callback."""
        return self.callback(self.authorize(start))

    @property
    def signed_in(self) -> bool:
        """Whether the hub gave this browser a session cookie."""
        return any(cookie.name == SESSION_COOKIE for cookie in self.session.cookies)


def refusal_of(response: requests.Response) -> str | None:
    """The refusal key a hub redirect names (``/hub/login?refused=KEY``), else None."""
    match = re.search(r"/hub/login\?refused=([a-z-]+)$", response.headers.get("location", ""))
    return match.group(1) if response.status_code == 302 and match else None
