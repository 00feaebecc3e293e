"""Authentication rules without a hub: names, groups claims, redirects, identity binding, the
allow rule, and how each kind of sign-in is configured on a bare traitlets Config."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from statbox.configure.hub import configure_hub
from statbox.configure.runtime import MissingEnvironment
from statbox.identity.auth import (
    REFUSALS,
    SignInRefused,
    StatboxGitHubAuthenticator,
    StatboxOIDCAuthenticator,
    StatboxSharedPasswordAuthenticator,
    checked_groups,
    checked_username,
    claim,
    github_groups,
    is_on_host,
)
from statbox.identity.roles import cohort_roles, groups_for, sign_in
from statbox.settings.model import parse_settings
from statbox.settings.names import describe

OIDC = {
    "type": "oidc",
    "issuer": "https://id.example.org/realms/stats",
    "client_id": "statbox",
    "allowed_groups": ["learners", "staff"],
    "blocked_groups": ["suspended"],
    "blocked_users": ["mallory"],
}


def oidc_runtime(runtime, **auth):
    settings = parse_settings(
        {
            "auth": {**OIDC, **auth},
            "cohorts": ["cohort-a"],
            "hub": {"public_url": "https://hub.example.org/"},
        }
    )
    secrets = {**runtime.secrets, "oauth_client_secret": "from-the-provider"}
    return dataclasses.replace(runtime, settings=settings, secrets=secrets)


@pytest.mark.parametrize(
    ("raw", "name"), [("alice", "alice"), (" Alice.B ", "alice.b"), ("a-1_2", "a-1_2")]
)
def test_usernames_are_normalised(raw, name):
    assert checked_username(raw) == name


@pytest.mark.parametrize(
    "raw",
    ["", "-x", "a b", "a/b", "ä", "\uff21\uff2c\uff29", "x" * 64, "ali\nce", None, 7, "h" * 2**20],
)
def test_unsafe_usernames_are_refused_with_a_bounded_detail(raw):
    with pytest.raises(SignInRefused) as refused:
        checked_username(raw)
    assert refused.value.key == "username"
    assert refused.value.status_code == 403
    assert len(refused.value.detail) < 120


def test_describe_bounds_what_reaches_a_log():
    assert describe("alice") == "'alice'"
    assert describe(None) == "None"
    assert len(describe("x" * 2**20)) < 80
    assert "(1048576 characters)" in describe("x" * 2**20)


@pytest.mark.parametrize("value", [None, "learners", 3, {"a": 1}, [1, 2], ["ok", None]])
def test_groups_claims_that_are_not_lists_of_strings_are_refused(value):
    with pytest.raises(SignInRefused) as refused:
        checked_groups(value)
    assert refused.value.key == "groups"


def test_groups_claim_keeps_valid_names_and_refuses_floods():
    assert checked_groups(["b", "a", "a", "/cohorts/x", "bad\nname", "z" * 200]) == [
        "/cohorts/x",
        "a",
        "b",
    ]
    with pytest.raises(SignInRefused):
        checked_groups([f"g{i}" for i in range(1001)])


def test_nested_claims():
    data = {"realm_access": {"roles": ["a"]}, "groups": None}
    assert claim(data, "realm_access.roles") == ["a"]
    assert claim(data, "groups") is None
    assert repr(claim(data, "missing.key")) == "<missing>"


@pytest.mark.parametrize(
    ("url", "on_host"),
    [
        ("/hub/home", True),
        ("/user/alice/lab?x=1", True),
        ("//other.example", False),
        ("///other.example", False),
        ("/\\other.example", False),
        ("https://other.example/", False),
        ("http:other.example", False),
        ("other.example", False),
        ("/\t/other.example", False),
        ("", False),
    ],
)
def test_redirects_stay_on_the_host(url, on_host):
    assert is_on_host(url) is on_host


def test_github_teams_become_groups():
    teams = [
        {"slug": "trainers", "organization": {"login": "UN-Stats"}},
        {"slug": "cohort-2026a", "organization": {"login": "un-stats"}},
    ]
    assert github_groups({"teams": teams}) == [
        "un-stats",
        "un-stats:cohort-2026a",
        "un-stats:trainers",
    ]
    for bad in (None, "team", [{"slug": "x"}], [{"slug": 1, "organization": {"login": "o"}}]):
        with pytest.raises(SignInRefused):
            github_groups({"teams": bad})


def test_every_refusal_has_a_message_and_a_status():
    for key, refusal in REFUSALS.items():
        assert refusal.status in (400, 403, 502), key
        assert refusal.message.endswith("."), key


def test_a_block_wins_over_an_allow():
    s = parse_settings({"auth": OIDC})
    assert sign_in(s, "alice", ["learners"]).allowed
    assert not sign_in(s, "alice", ["visitors"]).allowed
    suspended = sign_in(s, "alice", ["learners", "suspended"])
    assert (suspended.allowed, suspended.blocked) == (False, True)
    assert sign_in(s, "mallory", ["staff"]).blocked
    # being named in a role is no allow rule with an identity provider
    assert not sign_in(s, "admin", []).allowed


def test_cohort_groups_are_for_instructors_and_trainees_only():
    s = parse_settings({"cohorts": ["cohort-a"], "auth": OIDC})
    assert "statbox-teaches-cohort-a" in groups_for(s, "ines", ["instructors", "cohort-a"])
    assert "statbox-learns-cohort-a" in groups_for(s, "alice", ["cohort-a"])
    analyst = groups_for(s, "ana", ["analysts", "cohort-a"])
    assert not [g for g in analyst if g.startswith(("statbox-learns", "statbox-teaches"))]
    # a provider cannot hand out Statbox's own groups
    forged = groups_for(s, "eve", ["statbox-teaches-cohort-a", "statbox-learns-x"])
    assert forged == ["statbox-role-trainee"]


def test_a_cohort_role_reaches_its_trainees_and_nothing_else():
    (role,) = cohort_roles(parse_settings({"cohorts": ["Cohort 2026/A"]}))
    assert role["groups"] == ["statbox-teaches-Cohort 2026/A"]
    scoped = [s for s in role["scopes"] if s != "admin-ui"]
    assert all(s.endswith("!group=statbox-learns-Cohort 2026/A") for s in scoped)
    assert {s.split("!")[0] for s in scoped} == {
        "list:users",
        "read:users",
        "read:servers",
        "servers",
        "access:servers",
    }
    assert not [s for s in role["scopes"] if s.startswith(("admin:", "tokens", "shares"))]


def test_oidc_configuration(runtime):
    c = Config()
    configure_hub(c, oidc_runtime(runtime))
    a = c.StatboxOIDCAuthenticator
    assert c.JupyterHub.authenticator_class == "statbox.identity.auth.StatboxOIDCAuthenticator"
    assert a.oauth_callback_url == "https://hub.example.org/hub/oauth_callback"
    assert a.client_secret == "from-the-provider"
    assert a.issuer == a.identity_realm == OIDC["issuer"]
    assert (a.username_claim, a.identity_claim, a.groups_claim) == (
        "preferred_username",
        "sub",
        "groups",
    )
    assert a.authorize_url == ""  # discovered at the first sign-in
    assert a.allow_all is False and "allow_all" not in c.Authenticator
    assert c.Authenticator.manage_groups is True
    roles = {r["name"] for r in c.JupyterHub.load_roles}
    assert any(name.startswith("statbox-cohort-cohort-a-") for name in roles)


def test_oidc_needs_the_client_secret(runtime):
    rt = oidc_runtime(runtime)
    rt = dataclasses.replace(rt, secrets={k: v for k, v in rt.secrets.items() if "oauth" not in k})
    with pytest.raises(MissingEnvironment, match="STATBOX_OAUTH_CLIENT_SECRET"):
        configure_hub(Config(), rt)


def test_github_configuration(runtime):
    settings = parse_settings(
        {"auth": {"type": "github", "client_id": "x", "allowed_organizations": ["un-stats"]}}
    )
    rt = dataclasses.replace(
        runtime, settings=settings, secrets={**runtime.secrets, "oauth_client_secret": "s"}
    )
    c = Config()
    configure_hub(c, rt)
    a = c.StatboxGitHubAuthenticator
    assert a.allowed_organizations == {"un-stats"}
    assert (a.identity_claim, a.identity_realm) == ("id", "github")
    assert a.populate_teams_in_auth_state is True and "read:org" in a.scope
    assert a.oauth_callback_url == "http://127.0.0.1:8080/hub/oauth_callback"


def make(cls, rt):
    c = Config()
    configure_hub(c, rt)
    return cls(config=c)


def test_sign_in_models_get_role_groups_and_admin(runtime):
    auth = make(StatboxSharedPasswordAuthenticator, runtime)
    model = auth.statbox_auth_model({"name": "ana", "groups": ["statbox-role-admin"]})
    assert model["groups"] == ["analysts", "statbox-role-analyst"]
    assert model["admin"] is False
    assert auth.statbox_auth_model({"name": "admin", "groups": None})["admin"] is True
    assert dict(auth.get_handlers(None))["/login"].__name__ == "StatboxLoginHandler"


def test_the_password_form_refuses_unsafe_names_before_the_password(runtime):
    auth = make(StatboxSharedPasswordAuthenticator, runtime)
    with pytest.raises(SignInRefused):
        asyncio.run(
            auth.authenticate(None, {"username": "x" * 2**20, "password": "class-password"})
        )
    ok = asyncio.run(auth.authenticate(None, {"username": "Zoe", "password": "class-password"}))
    assert ok == {"name": "zoe", "admin": False, "groups": []}
    assert asyncio.run(auth.authenticate(None, {"username": "zoe", "password": "wrong"})) is None


def test_oidc_usernames_and_verified_email(runtime):
    auth = make(StatboxOIDCAuthenticator, oidc_runtime(runtime))
    assert auth.user_info_to_username({"preferred_username": "Alice"}) == "alice"
    auth.username_claim = "email"
    with pytest.raises(SignInRefused) as refused:
        auth.user_info_to_username({"email": "a@b.org", "email_verified": False})
    assert refused.value.key == "email"


def test_a_username_stays_bound_to_its_first_identity(runtime):
    auth = make(StatboxOIDCAuthenticator, oidc_runtime(runtime))
    bound = SimpleNamespace(user_info={"identity": f"{OIDC['issuer']} sub-1"})
    handler = SimpleNamespace(find_user=lambda name: bound if name == "alice" else None)

    def model(name, sub):
        return {"name": name, "user_info": {"identity": f"{OIDC['issuer']} {sub}"}}

    asyncio.run(auth.check_identity(handler, model("alice", "sub-1")))
    asyncio.run(auth.check_identity(handler, model("newcomer", "sub-9")))  # binds
    with pytest.raises(SignInRefused) as refused:
        asyncio.run(auth.check_identity(handler, model("alice", "sub-2")))
    assert refused.value.key == "identity"


def test_the_identity_comes_from_the_configured_claim(runtime):
    auth = make(StatboxOIDCAuthenticator, oidc_runtime(runtime))
    state = {"oauth_user": {"sub": "abc", "preferred_username": "alice"}}
    model = asyncio.run(auth.update_auth_model({"name": "alice", "auth_state": state}))
    assert model["user_info"] == {"identity": f"{OIDC['issuer']} abc"}
    with pytest.raises(SignInRefused):
        asyncio.run(auth.update_auth_model({"name": "x", "auth_state": {"oauth_user": {}}}))


def test_github_admins_are_not_let_in_without_their_organisation(runtime):
    settings = parse_settings(
        {"auth": {"type": "github", "client_id": "x", "allowed_organizations": ["org"]}}
    )
    rt = dataclasses.replace(
        runtime, settings=settings, secrets={**runtime.secrets, "oauth_client_secret": "s"}
    )
    auth = make(StatboxGitHubAuthenticator, rt)
    seen = {}

    async def membership(org_team, username, token, token_type):
        seen[org_team] = username
        return False

    auth._check_membership_allowed_organizations = membership
    model = {
        "admin": True,
        "auth_state": {"token_response": {"access_token": "t", "token_type": "bearer"}},
    }
    assert asyncio.run(auth.check_allowed("admin", model)) is False
    assert seen == {"org": "admin"}
