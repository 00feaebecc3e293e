"""Role resolution: one rule, used by hub, gateway and CLI."""

from __future__ import annotations

from statbox.identity.roles import groups_for, resolve_role, users_with_role
from statbox.settings.model import parse_settings


def test_named_user_gets_their_role(settings):
    assert resolve_role(settings, "ines").role == "instructor"
    assert "roles.instructor.users" in resolve_role(settings, "ines").reason


def test_group_gives_role(settings):
    resolution = resolve_role(settings, "zoe", ["analysts"])
    assert resolution.role == "analyst"
    assert "'analysts'" in resolution.reason


def test_nobody_matching_gets_default(settings):
    assert resolve_role(settings, "zoe", ["cohort-2026a"]).role == "trainee"


def test_precedence_admin_over_instructor_over_analyst():
    s = parse_settings({"roles": {"analyst": {"groups": ["g"]}, "instructor": {"groups": ["g"]}}})
    assert resolve_role(s, "x", ["g"]).role == "instructor"
    s = parse_settings({"roles": {"admin": {"groups": ["g"]}, "instructor": {"groups": ["g"]}}})
    assert resolve_role(s, "x", ["g"]).role == "admin"


def test_default_role_is_configurable():
    s = parse_settings({"default_role": "analyst"})
    assert resolve_role(s, "anyone").role == "analyst"


def test_forged_role_groups_grant_nothing(settings):
    # a provider group that pretends to be Statbox's admin role group is ignored
    assert resolve_role(settings, "mallory", ["statbox-role-admin"]).role == "trainee"
    groups = groups_for(settings, "mallory", ["statbox-role-admin", "staff"])
    assert groups == ["staff", "statbox-role-trainee"]


def test_groups_for_adds_settings_groups_and_one_role_group(settings):
    assert groups_for(settings, "ana") == ["analysts", "statbox-role-analyst"]
    assert groups_for(settings, "alice", ["x"]) == ["cohort-2026a", "statbox-role-trainee", "x"]


def test_users_with_role_follow_settings_groups(settings):
    assert users_with_role(settings, "analyst") == {"ana"}
    assert users_with_role(settings, "instructor", "admin") == {"ines", "admin"}
