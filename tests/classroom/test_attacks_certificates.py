"""Attacks on certificates and Open Badges credentials, as a trainee who wants one unearned.

The trainee holds a real certificate and its badge (their own, or a classmate's), the hub's
public keys (published: anyone has them) and a key of their own. Each test forges or alters
something and hands it to the verifier the public page and ``statbox certify verify`` use
(:func:`statbox.certify.openbadges.verify_upload`, :func:`statbox.certify.certificates.verify`).
A test marked ``xfail(strict=True, reason="HOLE: ...")`` is an attack that succeeds today.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from statbox.certify.certificates import (
    Status,
    canonical,
    key_id,
    lift,
    make_record,
    person_name,
    revoke,
    sign,
    verify,
)
from statbox.certify.openbadges import issue as issue_badge
from statbox.certify.openbadges import verify_upload
from statbox.certify.trust import jwk, jwks, key_uri, revocation_list, trust
from statbox.errors import BadInput
from statbox.settings.model import TrustedIssuer
from tests.certify.certificates import BRASILIA, KIGALI, hub, issue, stored

KIGALI_NAME = "Statbox Kigali"
BRASILIA_NAME = "Statbox Brasília"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload))


def compact(header: dict, payload: dict, signature: bytes) -> bytes:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    ).encode()


def signing_input(header: dict, payload: dict) -> bytes:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}".encode()


@pytest.fixture
def kigali(tmp_path):
    """Kigali's keys, a certificate of bob's (9 of 10) and its badge: the attacker starts
    from a real one and raises what it says."""
    keys = hub(tmp_path, "kigali")
    record, content = issue(keys, trainee="bob", person="Bob Mugisha")
    key = keys.signing_key()
    assert key is not None
    return keys, record, content, issue_badge(record, key, KIGALI)


def raised(payload: dict) -> dict:
    """The badge's claims saying 10/10 (what the trainee wants it to say)."""
    payload = json.loads(json.dumps(payload))
    payload["credentialSubject"]["result"][0]["value"] = "10/10"
    return payload


# ------------------------------------------------------------------ Open Badges (VC-JWT)


def test_a_badge_with_alg_none_does_not_verify(kigali):
    keys, _, _, badge = kigali
    header, payload = parts(badge)
    for signature in (b"", b"\x00"):
        forged = compact({**header, "alg": "none"}, raised(payload), signature)
        verdict = verify_upload(forged, keys)
        assert verdict.status is not Status.VALID, (signature, verdict.message)
        assert verdict.certifies is None


def test_a_badge_hmac_signed_with_the_published_public_key_does_not_verify(kigali):
    """The classic key confusion: HS256 with the public key (as published) as the secret."""
    keys, _, _, badge = kigali
    header, payload = parts(badge)
    public = keys.signing_key().public_key()  # type: ignore[union-attr]
    published = jwk(public, KIGALI)
    secrets = [
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        published["x"].encode(),
        json.dumps(published).encode(),
    ]
    for secret in secrets:
        forged_header = {**header, "alg": "HS256"}
        body = raised(payload)
        mac = hmac.new(secret, signing_input(forged_header, body), hashlib.sha256).digest()
        verdict = verify_upload(compact(forged_header, body, mac), keys)
        assert verdict.status is not Status.VALID, verdict.message


def test_a_badge_carrying_its_own_key_or_key_url_does_not_verify(kigali):
    """``jwk``/``jku`` in the header name the attacker's key; ``kid`` either the attacker's
    key or the hub's: signed by the attacker, neither is believed."""
    keys, _, _, badge = kigali
    header, payload = parts(badge)
    mine = Ed25519PrivateKey.generate()
    my_jwk = jwk(mine.public_key(), "https://attacker.example")
    for kid in (key_uri("https://attacker.example", mine.public_key()), header["kid"]):
        forged_header = {
            **header,
            "kid": kid,
            "jwk": my_jwk,
            "jku": "https://attacker.example/services/classroom/keys.json",
        }
        body = raised(payload)
        forged = compact(forged_header, body, mine.sign(signing_input(forged_header, body)))
        verdict = verify_upload(forged, keys)
        assert verdict.status in (Status.UNKNOWN_ISSUER, Status.TAMPERED), verdict.message


def test_a_badge_with_a_changed_claim_keeps_its_signature_and_is_refused(kigali):
    keys, _, _, badge = kigali
    header, payload = parts(badge)
    signature = unb64(badge.split(".")[2])
    verdict = verify_upload(compact(header, raised(payload), signature), keys)
    assert verdict.status is Status.TAMPERED


def test_a_trusted_hubs_badge_naming_this_hub_as_issuer_is_shown_as_the_trusted_hub(
    kigali, tmp_path
):
    """Kigali (trusted by Brasília) issues a badge whose issuer id, iss and name say
    Brasília: Brasília's page must name Kigali, whose key signed it."""
    keys, record, _, _ = kigali
    brasilia = hub(tmp_path, "brasilia")
    lying = {**record, "issuer": BRASILIA_NAME}
    badge = issue_badge(lying, keys.signing_key(), BRASILIA).encode()  # type: ignore[arg-type]
    trusted = trust(brasilia, [TrustedIssuer(name=KIGALI_NAME, jwks=jwks(keys, KIGALI))])
    verdict = verify_upload(badge, trusted)
    assert verdict.status is Status.VALID
    assert verdict.certifies is not None
    assert (verdict.signed_by, verdict.certifies.issuer) == (KIGALI_NAME, KIGALI_NAME)
    # the certificate itself, likewise
    certificate = sign(lying, keys.signing_key())  # type: ignore[arg-type]
    shown = verify_upload(certificate, trusted)
    assert shown.certifies is not None and shown.certifies.issuer == KIGALI_NAME


def test_a_revoked_certificate_cannot_come_back_as_its_badge(kigali):
    keys, record, content, badge = kigali
    revoke(keys, record["certificate"], "copied answers")
    assert verify_upload(content, keys).status is Status.REVOKED
    assert verify_upload(badge.encode(), keys).status is Status.REVOKED
    # nor re-encoded: other whitespace, or the badge with other padding around it
    spaced = json.dumps(json.loads(content), indent=1).encode()
    assert verify_upload(spaced, keys).status is not Status.VALID
    assert verify_upload(b"\n  " + badge.encode() + b"\n\n", keys).status is Status.REVOKED


# ------------------------------------------------------------------ the signed .json record


def test_a_record_with_a_raised_score_or_extra_field_inside_is_tampered(kigali):
    keys, record, content, _ = kigali
    envelope = json.loads(content)
    for change in ({"score": 10, "percent": 100.0}, {"passed": True}, {"trainee": "alice"}):
        forged = canonical({**envelope, "record": {**record, **change}}) + b"\n"
        assert verify(forged, keys).status is Status.TAMPERED, change


def test_a_record_signed_with_alg_none_or_hmac_is_refused(kigali):
    keys, record, content, _ = kigali
    envelope = json.loads(content)
    body = {**record, "score": 10}
    public = keys.signing_key().public_key()  # type: ignore[union-attr]
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    mac = hmac.new(raw, canonical(body), hashlib.sha256).digest()
    for signature in (
        {**envelope["signature"], "algorithm": "none", "value": ""},
        {**envelope["signature"], "algorithm": "HS256", "value": base64.b64encode(mac).decode()},
    ):
        forged = canonical({"record": body, "signature": signature}) + b"\n"
        assert verify(forged, keys).status is not Status.VALID, signature["algorithm"]


def test_a_record_signed_by_the_trainee_under_the_hubs_key_id_is_tampered(kigali):
    keys, record, _, _ = kigali
    mine = Ed25519PrivateKey.generate()
    forged = json.loads(sign({**record, "score": 10}, mine))
    forged["signature"]["key_id"] = key_id(keys.signing_key().public_key())  # type: ignore[union-attr]
    assert verify(canonical(forged) + b"\n", keys).status is Status.TAMPERED


def test_a_field_added_outside_the_signed_record_is_refused(kigali):
    keys, _, content, _ = kigali
    envelope = json.loads(content)
    for forged in (
        {**envelope, "note": "verified by the registrar"},
        {**envelope, "signature": {**envelope["signature"], "x": 1}},
    ):
        assert verify(canonical(forged) + b"\n", keys).status is not Status.VALID


# ------------------------------------------------------------------ trust between hubs


def test_a_trusted_hub_cannot_claim_or_revoke_another_hubs_certificates(kigali, tmp_path):
    """Kigali lists Brasília's public key among its own: Lima's settings are refused, naming
    both; and Kigali's revocation list, naming Brasília's certificate, does not revoke it."""
    keys, _, _, _ = kigali
    brasilia, lima = hub(tmp_path, "brasilia"), hub(tmp_path, "lima")
    record, content = issue(brasilia, trainee="carla", issuer=BRASILIA_NAME, base_url=BRASILIA)
    # Kigali publishes Brasília's public key among its own, and revokes Brasília's certificate
    claimed = {"keys": jwks(keys, KIGALI)["keys"] + jwks(brasilia, BRASILIA)["keys"]}
    revoke(keys, record["certificate"], "Kigali says so")
    published = tmp_path / "kigali-revocations.json"
    published.write_bytes(revocation_list(keys, KIGALI_NAME))
    brasilia_entry = TrustedIssuer(name=BRASILIA_NAME, jwks=jwks(brasilia, BRASILIA))
    kigali_entry = TrustedIssuer(name=KIGALI_NAME, jwks=claimed, revocations_file=published)
    for entries in ([kigali_entry, brasilia_entry], [brasilia_entry, kigali_entry]):
        with pytest.raises(BadInput) as refused:
            trust(lima, entries, base=Path("/"))
        assert KIGALI_NAME in str(refused.value) and BRASILIA_NAME in str(refused.value)
    # nor this hub's own key
    own = TrustedIssuer(name=KIGALI_NAME, jwks=jwks(lima, "https://lima.example"))
    with pytest.raises(BadInput, match="this hub"):
        trust(lima, [own], base=Path("/"))
    lima_trusts = trust(
        lima,
        [
            TrustedIssuer(name=KIGALI_NAME, jwks=jwks(keys, KIGALI), revocations_file=published),
            brasilia_entry,
        ],
        base=Path("/"),
    )
    verdict = verify(content, lima_trusts)
    assert (verdict.status, verdict.signed_by) == (Status.VALID, BRASILIA_NAME), verdict.message


# ------------------------------------------------------------------ names


def test_bidi_controls_in_the_name_claim_do_not_reach_the_certificate():
    for claimed in ("Alice Uwase \u202e(yrollam)", "Alice\u2067 Uwase\u2069", "A\u200fb"):
        name = person_name("mallory", claims={"name": claimed})
        assert not any(
            ch in name
            for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
        ), name


def test_a_look_alike_name_still_shows_the_real_username(kigali):
    """mallory's certificate with the name claim 'Alice Uwase' spelt with a Cyrillic A: the
    verdict names mallory too, so a verifier can tell it from alice's."""
    keys, _, _, _ = kigali
    look_alike = person_name("mallory", claims={"name": "\u0410lice Uwase"})
    _, content = issue(keys, trainee="mallory", person=look_alike)
    verdict = verify(content, keys)
    assert verdict.status is Status.VALID
    assert "(mallory)" in verdict.message


def test_joiners_that_names_need_are_kept():
    """ZWNJ/ZWJ spell Persian and Indic names; only display-reordering controls go."""
    for claimed in ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0915\u094d\u200d\u0937"):
        assert person_name("mallory", claims={"name": claimed}) == claimed
    assert person_name("mallory", claims={"name": "\u202e\u2066"}) == "mallory"


# ------------------------------------------------------------------ revocations


def test_a_revocation_bars_another_submission_until_lifted(kigali):
    """The same trainee, course, exercise and cohort with another submission (a new id):
    revoked with the first, until an instructor lifts the bar; the first stays revoked."""
    keys, record, content, _ = kigali
    revoke(keys, record["certificate"], "copied answers", record)
    again = stored("bob", digest="cd" * 32)
    other = sign(make_record(again, "Shop prices", KIGALI_NAME, "Bob Mugisha"), keys.signing_key())  # type: ignore[arg-type]
    assert json.loads(other)["record"]["certificate"] != record["certificate"]
    assert verify(other, keys).status is Status.REVOKED
    # another trainee, or the same trainee's other cohort, is not barred
    for changed in (stored("alice", digest="cd" * 32), replace(again, cohort="cohort-b")):
        fresh = sign(make_record(changed, "Shop prices", KIGALI_NAME), keys.signing_key())  # type: ignore[arg-type]
        assert verify(fresh, keys).status is Status.VALID
    lift(keys, record["certificate"])
    assert verify(other, keys).status is Status.VALID
    assert verify(content, keys).status is Status.REVOKED


def test_the_published_revocation_list_names_no_one(kigali, tmp_path):
    """Published: digests, dates and reasons only the certificate opens; another hub holding
    the certificate reads the reason."""
    keys, record, content, _ = kigali
    revoke(keys, record["certificate"], "copied answers", record)
    published = revocation_list(keys, KIGALI_NAME)
    for secret in (record["certificate"], "copied answers", "bob", "cohort"):
        assert secret.encode() not in published, secret
    elsewhere = tmp_path / "revocations.json"
    elsewhere.write_bytes(published)
    lima = trust(
        hub(tmp_path, "lima"),
        [TrustedIssuer(name=KIGALI_NAME, jwks=jwks(keys, KIGALI), revocations_file=elsewhere)],
        base=Path("/"),
    )
    verdict = verify(content, lima)
    assert verdict.status is Status.REVOKED and verdict.revocation is not None
    assert verdict.revocation["reason"] == "copied answers"
