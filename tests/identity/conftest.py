"""Identity tier: a real OpenID Connect provider on loopback, and real local stacks signing in.

Fixtures:

- ``oidc_provider``: ``tests/identity/oidc_provider.mjs`` (npm ``oidc-provider``) on a free
  loopback port, with the accounts of :data:`ACCOUNTS`; one for the session, stopped by its
  pid. ``oidc_provider.set_groups(login, groups)`` changes an account for the next sign-in.
- ``oidc_stack``: ``statbox up`` with ``auth.type: oidc`` against that provider (settings in
  :data:`SETTINGS`: cohorts ``cohort-a`` and ``cohort-b``, a blocked group, roles by group); one
  for the session, stopped by SIGTERM, and every process it started is checked gone.
- ``user(name)``: a fresh :class:`~tests.identity.oidcclient.OIDCUser` for an account (a new
  HTTP session each time: the provider's session outlives a hub logout).
- ``admin_token``: an API token of ``ada``, the admin, for looking at the hub from outside.
- ``password_stack``, ``passwords``: a shared-password stack with the integration tier's
  settings and passwords, one for the session, for the login form and the browser.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statbox.modes.local.stack import find_proxy, free_port
from tests.conftest import REPO, require_tool
from tests.identity.oidcclient import OIDCUser
from tests.integration.conftest import SETTINGS as PASSWORD_SETTINGS
from tests.integration.conftest import (  # noqa: F401  (a fixture reused by this tier)
    assert_all_gone,
    make_stack,
    passwords,
    stopped_whatever_happens,
)
from tests.integration.hubclient import StatboxProcess

NODE_MODULES = REPO / ".venv" / "node" / "node_modules"
CLIENT_ID = "statbox-tests"
CLIENT_SECRET = "client-secret-of-the-test-provider"

HUGE_NAME = "h" * 1024 * 1024
ALICE_NAME = "أليس  Mbabazi"
"""alice's full name claim (two spaces: kept as sent; whoever shows it tidies it)."""
BEA_NAME = "Béatrice Uwase 李蓓"


def account(username: Any, groups: Any = None) -> dict[str, Any]:
    """An account's claims: ``groups`` left out when None, else served exactly as given (a
    list, a string, ...). The account's login is its ``sub``."""
    claims: dict[str, Any] = {"preferred_username": username}
    if groups is not None:
        claims["groups"] = groups
    return claims


ACCOUNTS: dict[str, dict[str, Any]] = {
    # trainees: cohort-a (alice, carol), cohort-b (bob); bea and dora for the browser and sync
    "alice": {**account("alice", ["learners", "cohort-a"]), "name": ALICE_NAME},
    "carol": account("carol", ["learners", "cohort-a"]),
    "bob": account("bob", ["learners", "cohort-b"]),
    "bea": {**account("bea", ["learners", "cohort-a"]), "name": BEA_NAME},
    "dora": account("Dora", ["learners", "cohort-b"]),
    # the instructor of cohort-a, an analyst and an admin
    "ines": account("ines", ["staff", "instructors", "cohort-a"]),
    "ana": account("ana", ["learners", "analysts"]),
    "ada": account("ada", ["staff", "admins"]),
    # refused: not a member, blocked group, blocked user, bad groups claims, bad names
    "eve": account("eve", ["visitors"]),
    "sus": account("sus", ["learners", "suspended"]),
    "banned": account("banned", ["learners"]),
    "nogroups": account("nogroups"),
    "nullgroups": {"preferred_username": "nullg", "groups": None},
    "stringgroups": account("stringg", "learners"),
    "numbergroups": account("numberg", [1, 2]),
    "huge": account(HUGE_NAME, ["learners"]),
    "badname": account("robert'); drop table users;--", ["learners"]),
    "noname": account(None, ["learners"]),
    # another identity (sub) that calls itself alice; one that names Statbox's own groups
    "mallory": account("alice", ["learners"]),
    "forger": account(
        "forger", ["learners", "statbox-role-admin", "statbox-teaches-cohort-b", "statbox-learns-x"]
    ),
}


SETTINGS = """\
hub:
  name: Statbox identity tests
  port: 0
auth:
  type: oidc
  issuer: {issuer}
  client_id: {client_id}
  allowed_groups: [learners, staff]
  blocked_groups: [suspended]
  blocked_users: [banned]
  login_service: Statbox Test IdP
cohorts: [cohort-a, cohort-b]
roles:
  admin:
    users: []
  instructor:
    users: []
    groups: [instructors]
  trainee:
    dask: {{max_workers: 2, max_worker_cores: 1, max_worker_memory: 1G}}
  analyst:
    dask: {{max_workers: 4, max_worker_cores: 2, max_worker_memory: 2G}}
paths:
  catalog: {repo}/catalogs/statbox.yaml
  curriculum: {repo}/curriculum
  data_root: {repo}/data
"""


class Provider:
    """The running provider: its issuer, its config file, and a way to change an account."""

    def __init__(self, directory: Path, hub_port: int):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.config = directory / "provider.json"
        self.log = directory / "provider.log"
        self.accounts = json.loads(json.dumps(ACCOUNTS))
        self.hub_port = hub_port
        self.proc: subprocess.Popen[bytes] | None = None
        self._write()

    def _write(self) -> None:
        config = {
            "port": self.port,
            "client": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"http://127.0.0.1:{self.hub_port}/hub/oauth_callback"],
            },
            "accounts": self.accounts,
        }
        self.config.write_text(json.dumps(config))

    def set_groups(self, login: str, groups: list[str]) -> None:
        self.accounts[login]["groups"] = groups
        self._write()

    def start(self, timeout: float = 30) -> None:
        node = shutil.which("node")
        assert node is not None
        out = open(self.log, "ab")  # noqa: SIM115 (the child holds it)
        self.proc = subprocess.Popen(
            [
                node,
                str(REPO / "tests" / "identity" / "oidc_provider.mjs"),
                str(self.config),
                str(NODE_MODULES),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the provider exited:\n{self.log.read_text()}")
            if f"ready {self.issuer}" in self.log.read_text():
                return
            time.sleep(0.1)
        raise TimeoutError(f"the provider did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def identity_dir() -> Iterator[Path]:
    """A directory every account can traverse (servers run as an unprivileged account)."""
    require_tool("configurable-http-proxy", find_proxy() is not None)
    require_tool("node", shutil.which("node") is not None)
    require_tool("oidc-provider (npm)", (NODE_MODULES / "oidc-provider").is_dir())
    directory = Path(tempfile.mkdtemp(prefix="statbox-identity-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def hub_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def oidc_provider(identity_dir, hub_port) -> Iterator[Provider]:
    provider = Provider(identity_dir, hub_port)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def oidc_stack(identity_dir, hub_port, oidc_provider) -> Iterator[StatboxProcess]:
    config = identity_dir / "statbox.yaml"
    config.write_text(SETTINGS.format(issuer=oidc_provider.issuer, client_id=CLIENT_ID, repo=REPO))
    stack = StatboxProcess(
        config,
        hub_port,
        identity_dir / "state",
        env={"STATBOX_OAUTH_CLIENT_SECRET": CLIENT_SECRET},
    )
    with stopped_whatever_happens(stack):
        stack.start()
        yield stack
        stop_and_check(stack)


def stop_and_check(stack: StatboxProcess) -> None:
    if stack.proc is not None and stack.proc.poll() is None:
        tree = stack.process_tree()
        stack.stop(signal.SIGTERM)
        assert_all_gone(tree)


@pytest.fixture(scope="session")
def password_stack(identity_dir) -> Iterator[StatboxProcess]:
    directory = identity_dir / "password"
    directory.mkdir(mode=0o755)
    config = directory / "statbox.yaml"
    config.write_text(PASSWORD_SETTINGS.format(repo=REPO))
    stack = make_stack(config)
    with stopped_whatever_happens(stack):
        stack.start()
        yield stack
        stop_and_check(stack)


@pytest.fixture
def user(oidc_stack, oidc_provider):
    def make(login: str) -> OIDCUser:
        return OIDCUser(oidc_stack.base_url, login, issuer=oidc_provider.issuer)

    return make


@pytest.fixture(scope="session")
def admin_token(oidc_stack, oidc_provider) -> str:
    ada = OIDCUser(oidc_stack.base_url, "ada", issuer=oidc_provider.issuer)
    assert ada.sign_in().status_code == 302
    return ada.create_token()


def hub_log(stack: StatboxProcess) -> str:
    return (stack.state_dir / "logs" / "hub.log").read_text(errors="replace")
