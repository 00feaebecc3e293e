"""Shared pieces of the certificate tests: attempts as the store gives them back, and hubs
(a state directory each, with its own signing key)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from statbox.certify.certificates import Keys, certificate_id, make_record, sign
from statbox.certify.store import StoredAttempt
from statbox.certify.trust import verify_url

KIGALI = "https://statbox.kigali.example"
BRASILIA = "https://statbox.brasilia.example"


def stored(trainee: str = "alice", total: float = 9, digest: str = "ab" * 32) -> StoredAttempt:
    when = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    return StoredAttempt(
        id=1,
        cohort="cohort-a",
        trainee=trainee,
        course="shop-prices",
        exercise="exercise",
        variant={"seed": 1},
        scores={"total": total},
        feedback={},
        total=total,
        max_score=10,
        passed=total >= 5,
        reason="",
        grader_error=False,
        submission_hash=digest,
        grader_version="statbox 0.1.0; grader 1",
        started_at=when,
        finished_at=when,
        gradings=1,
    )


def hub(root: Path, name: str) -> Keys:
    """A hub's keys under ``root/name`` (its signing key made now)."""
    keys = Keys(root / name)
    keys.signing_key(create=True)
    return keys


def issue(
    keys: Keys,
    trainee: str = "alice",
    person: str | None = None,
    issuer: str = "Statbox Kigali, Rwanda regional hub",
    base_url: str = KIGALI,
) -> tuple[dict, bytes]:
    """A certificate of ``trainee`` signed by ``keys``: its record and its file's bytes."""
    attempt = stored(trainee)
    url = verify_url(base_url, certificate_id(attempt))
    record = make_record(attempt, "Shop prices", issuer, person, url)
    key = keys.signing_key()
    assert key is not None
    return record, sign(record, key)
