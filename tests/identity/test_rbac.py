"""The RBAC matrix on a real local stack whose users signed in through the real OpenID
provider: for each role and each resource, the allowed or denied outcome, with every request
made with the person's own API token (which carries exactly their role's permissions).

People (see ``tests/identity/conftest.py``): alice (trainee, cohort-a), carol (trainee,
cohort-a), bob (trainee, cohort-b), ines (instructor of cohort-a), ana (analyst), ada (admin).
"""

from __future__ import annotations

import html
import re
import textwrap
import time
from urllib.parse import urljoin

import pytest
import requests

from tests.identity.oidcclient import OIDCUser
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.identity, pytest.mark.oidc, pytest.mark.slow]

ROLES = {"trainee": "alice", "instructor": "ines", "analyst": "ana", "admin": "ada"}
PEOPLE = ("alice", "carol", "bob", "ines", "ana", "ada")
GATEWAY = "/services/dask-gateway/api/v1"

# resource -> allowed for (trainee, instructor, analyst, admin)
MATRIX = {
    "own server": (True, True, True, True),
    "another trainee's server": (False, True, False, True),  # carol, in ines's cohort
    "a trainee of another cohort": (False, False, False, True),  # bob
    "the admin API": (False, False, False, True),
    "another user's Dask cluster": (False, False, False, True),  # carol's
}
CASES = [
    pytest.param(role, resource, allowed, id=f"{role}-{resource.replace(' ', '-')}")
    for resource, outcomes in MATRIX.items()
    for role, allowed in zip(ROLES, outcomes, strict=True)
]


@pytest.fixture(scope="module")
def people(oidc_stack, oidc_provider) -> dict[str, HubUser]:
    """Everyone signed in through the provider, with a token and a running server."""
    signed_in = {}
    for name in PEOPLE:
        person = OIDCUser(oidc_stack.base_url, name, issuer=oidc_provider.issuer)
        assert person.sign_in().status_code == 302 and person.signed_in
        person.create_token()
        person.start_server()
        signed_in[name] = person
    return signed_in


@pytest.fixture(scope="module")
def carols_cluster(people):
    """A Dask cluster of carol's, made through the gateway's API with her token."""
    carol = people["carol"]
    made = carol.api("POST", f"{GATEWAY}/clusters/", scheme="jupyterhub", json={})
    assert made.status_code == 201, made.text
    name = made.json()["name"]
    yield name
    carol.api("DELETE", f"{GATEWAY}/clusters/{name}", scheme="jupyterhub")


def server_ready(people, name: str) -> bool:
    model = people["ada"].api("GET", f"/hub/api/users/{name}").json()
    server = model.get("servers", {}).get("")
    return bool(server and server.get("ready"))


def wait_for(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout} s")


def open_in_browser(subject: HubUser, target: str) -> requests.Response:
    """Open ``target``'s JupyterLab with ``subject``'s hub session, as a browser does: the
    server sends it through the hub's OAuth, which decides."""
    page = subject.session.get(f"{subject.base_url}/user/{target}/lab", timeout=60)
    if page.status_code == 200 and "/hub/api/oauth2/authorize" in page.url:
        # the hub asks before letting someone into another user's server: say yes
        form = re.search(r'<form[^>]*action="([^"]*)"', page.text)
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
        assert form is not None, page.text[:500]
        page = subject.session.post(
            urljoin(page.url, html.unescape(form.group(1)) or page.url),
            data={k: html.unescape(v) for k, v in fields.items()},
            headers={"Referer": page.url},
            timeout=60,
        )
    return page


def check_server(
    people, subject: HubUser, target: str, allowed: bool, restart: bool = True
) -> None:
    """Read, open, stop and start ``target``'s server as ``subject`` (stop and start only
    when ``restart``: each costs a server start)."""
    model = subject.api("GET", f"/hub/api/users/{target}")
    opened = open_in_browser(subject, target)
    if not allowed:
        assert model.status_code in (403, 404), model.text
        assert opened.status_code in (403, 404), (opened.status_code, opened.url)
        direct = subject.api("GET", f"/user/{target}/api/status", allow_redirects=False)
        assert direct.status_code in (403, 404), direct.status_code
        assert subject.api("DELETE", f"/hub/api/users/{target}/server").status_code in (403, 404)
        assert subject.api("POST", f"/hub/api/users/{target}/server").status_code in (403, 404)
        assert server_ready(people, target), "a refused stop stopped the server"
        return
    assert model.status_code == 200 and model.json()["name"] == target
    assert opened.status_code == 200, (opened.status_code, opened.url)
    assert opened.url.endswith(f"/user/{target}/lab") and "jupyterlab" in opened.text.lower()
    if not restart:
        return
    assert subject.api("DELETE", f"/hub/api/users/{target}/server").status_code in (202, 204)
    wait_for(lambda: not server_ready(people, target), f"{target}'s server did not stop")
    assert subject.api("POST", f"/hub/api/users/{target}/server").status_code in (201, 202)
    wait_for(lambda: server_ready(people, target), f"{target}'s server did not start")


def check_admin_api(people, subject: HubUser, allowed: bool) -> None:
    """Things only the admin API does: make a user, make someone admin, read the proxy,
    make a group, and list everyone."""
    everyone = set(PEOPLE)
    attempts = [
        subject.api("POST", "/hub/api/users/newcomer"),
        subject.api("PATCH", "/hub/api/users/bob", json={"admin": True}),
        subject.api("GET", "/hub/api/proxy"),
        subject.api("POST", "/hub/api/groups/statbox-rbac-test"),
    ]
    listed = subject.api("GET", "/hub/api/users")
    if allowed:
        assert [a.status_code for a in attempts] == [201, 200, 200, 201]
        assert everyone <= {u["name"] for u in listed.json()}
        for undo in (
            subject.api("DELETE", "/hub/api/users/newcomer"),
            subject.api("PATCH", "/hub/api/users/bob", json={"admin": False}),
            subject.api("DELETE", "/hub/api/groups/statbox-rbac-test"),
        ):
            assert undo.status_code in (200, 204)
        return
    assert [a.status_code for a in attempts] == [403] * 4, [a.text[:80] for a in attempts]
    assert listed.status_code == 403 or not everyone <= {u["name"] for u in listed.json()}
    admin = people["ada"]
    assert admin.api("GET", "/hub/api/users/newcomer").status_code == 404
    assert admin.api("GET", "/hub/api/users/bob").json()["admin"] is False
    assert admin.api("GET", "/hub/api/groups/statbox-rbac-test").status_code == 404


def check_cluster(people, subject: HubUser, cluster: str, allowed: bool) -> None:
    """See and stop carol's cluster through the gateway, as ``subject``."""
    seen = subject.api("GET", f"{GATEWAY}/clusters/{cluster}", scheme="jupyterhub")
    if not allowed:
        assert seen.status_code == 403, seen.text
        stop = subject.api("DELETE", f"{GATEWAY}/clusters/{cluster}", scheme="jupyterhub")
        assert stop.status_code == 403
        still = people["carol"].api("GET", f"{GATEWAY}/clusters/{cluster}", scheme="jupyterhub")
        assert still.json()["status"] not in ("STOPPING", "STOPPED", "FAILED")
        return
    assert seen.status_code == 200 and seen.json()["name"] == cluster
    stop = subject.api("DELETE", f"{GATEWAY}/clusters/{cluster}", scheme="jupyterhub")
    assert stop.status_code == 204
    gone = people["carol"].api("GET", f"{GATEWAY}/clusters/{cluster}", scheme="jupyterhub")
    assert gone.json()["status"] in ("STOPPING", "STOPPED")


@pytest.mark.parametrize(("role", "resource", "allowed"), CASES)
def test_rbac_matrix(people, request, role, resource, allowed):
    subject = people[ROLES[role]]
    if resource == "own server":
        # every start was checked by the fixture; stop and start again as the trainee only
        check_server(people, subject, subject.name, allowed, restart=role == "trainee")
    elif resource == "another trainee's server":
        check_server(people, subject, "carol", allowed)
    elif resource == "a trainee of another cohort":
        check_server(people, subject, "bob", allowed)
    elif resource == "the admin API":
        check_admin_api(people, subject, allowed)
    else:
        check_cluster(people, subject, request.getfixturevalue("carols_cluster"), allowed)


def test_an_instructor_lists_exactly_their_cohorts_trainees(people):
    listed = people["ines"].api("GET", "/hub/api/users")
    assert listed.status_code == 200
    names = {user["name"] for user in listed.json()}
    everyone = people["ada"].api("GET", "/hub/api/users").json()
    trainees_of_a = {u["name"] for u in everyone if "statbox-learns-cohort-a" in u["groups"]}
    assert names == trainees_of_a
    assert {"alice", "carol"} <= names
    assert not names & {"bob", "ines", "ana", "ada"}


NOTEBOOK_TOKEN = textwrap.dedent(
    """
    import json, os, requests
    from dask_gateway import Gateway
    api = os.environ["JUPYTERHUB_API_URL"]
    headers = {"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}
    me = requests.get(api + "/user", headers=headers).json()
    print(json.dumps({
        "name": me["name"],
        "scopes": me["scopes"],
        "list_users": requests.get(api + "/users", headers=headers).status_code,
        "read_other": requests.get(api + "/users/carol", headers=headers).status_code,
        "new_token": requests.post(api + "/users/" + me["name"] + "/tokens", headers=headers,
                                   json={}).status_code,
        "gateway_clusters": len(Gateway().list_clusters()) >= 0,
    }))
    """
)


@pytest.mark.parametrize("name", ["alice", "ines"])
def test_notebook_tokens_carry_what_dask_gateway_needs_and_no_more(people, name):
    result = people[name].run(NOTEBOOK_TOKEN)
    assert result.error is None, result.stderr
    out = result.json()
    assert out["name"] == name
    # expanded by the hub: users:activity implies read:users:activity, and every token may
    # read its owner's name and groups (which is how the gateway learns the user's role)
    assert sorted(out["scopes"]) == sorted(
        [
            f"access:servers!server={name}/",
            "access:services!service=dask-gateway",
            f"users:activity!user={name}",
            f"read:users:activity!user={name}",
            f"read:users:name!user={name}",
            f"read:users:groups!user={name}",
        ]
    )
    assert out["list_users"] == 403  # even an instructor's notebook cannot list her cohort
    assert out["read_other"] in (403, 404)
    assert out["new_token"] == 403
    assert out["gateway_clusters"] is True


def test_analysts_get_larger_dask_limits_than_trainees_from_their_provider_group(people):
    def max_cores(person: HubUser) -> int:
        spec = person.api("GET", f"{GATEWAY}/options", scheme="jupyterhub").json()
        fields = {f["field"]: f["spec"] for f in spec["cluster_options"]}
        return int(fields["worker_cores"]["max"])

    assert (max_cores(people["alice"]), max_cores(people["ana"])) == (1, 2)
