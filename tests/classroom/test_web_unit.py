"""The classroom service's rules that need no stack (the service itself: tests/integration/
test_classroom.py, on a real local stack)."""

from __future__ import annotations

from statbox.classroom.web.app import unisolated_grading


def test_the_service_grades_only_in_isolation():
    """Grading from the service with rlimits would run trainees' code as the hub's account,
    beside the hub's secrets and the signing key: refused, saying what to do instead."""
    refused = unisolated_grading("rlimits")
    assert refused is not None and "statbox certify grade" in refused
    assert unisolated_grading("sandbox") is None
    assert "not a backend" in (unisolated_grading("nonsense") or "")
