"""Each certificate is also an Open Badges 3.0 credential that standard verifiers accept.

The VC-JWT is checked with jwcrypto (a JOSE library the product does not use to sign)
against the key set the hub publishes, and its credential against the Open Badges 3.0 JSON
schema vendored in ``schemas/`` (see its README for source and version).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from jwcrypto import jwk, jws, jwt

from statbox.certify.certificates import Status, revoke
from statbox.certify.openbadges import issue as issue_badge
from statbox.certify.openbadges import verify_upload
from statbox.certify.trust import jwks
from tests.certify.certificates import KIGALI, hub, issue

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "ob_v3p0_achievementcredential.json").read_text()
)


@pytest.fixture
def badge(tmp_path):
    keys = hub(tmp_path, "kigali")
    record, _ = issue(keys, person="أمينة الحسن")
    key = keys.signing_key()
    assert key is not None
    return record, issue_badge(record, key, KIGALI), keys


def claims_of(token: str, key_set: dict) -> dict:
    """The JWT's claims once jwcrypto checked its signature with the published key set."""
    checked = jwt.JWT(
        jwt=token,
        key=jwk.JWKSet.from_json(json.dumps(key_set)),
        algs=["EdDSA"],
        check_claims={"iss": KIGALI},
    )
    return json.loads(checked.claims)


def test_the_badge_verifies_with_an_independent_jose_library_and_the_published_keys(badge):
    record, token, keys = badge
    key_set = jwks(keys, KIGALI)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "EdDSA" and header["typ"] == "JWT"
    assert set(header) == {"alg", "kid", "typ"}  # OB 3.0: no other JOSE header
    assert header["kid"] in {key["kid"] for key in key_set["keys"]}
    claims = claims_of(token, key_set)
    # the JWT claims restate the credential, as Open Badges 3.0 section 8.2 requires
    assert claims["iss"] == claims["issuer"]["id"] == KIGALI
    assert claims["jti"] == claims["id"]
    assert claims["sub"] == claims["credentialSubject"]["id"]
    assert datetime.fromtimestamp(claims["nbf"], UTC) == datetime.fromisoformat(claims["validFrom"])
    subject = claims["credentialSubject"]
    assert {"identityType": "ext:fullName", "identityHash": "أمينة الحسن"}.items() <= (
        subject["identifier"][1].items()
    )
    assert subject["achievement"]["name"] == "Shop prices"
    assert subject["result"][0]["value"] == "9/10"
    assert claims["evidence"][0]["id"] == record["verify_url"]


def test_the_badge_validates_against_the_open_badges_3_schema(badge):
    _, token, keys = badge
    claims = claims_of(token, jwks(keys, KIGALI))
    credential = {k: v for k, v in claims.items() if k not in {"iss", "jti", "nbf", "sub"}}
    validator = jsonschema.Draft201909Validator(
        SCHEMA, format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(credential)]
    assert errors == []
    assert set(credential["type"]) == {"VerifiableCredential", "OpenBadgeCredential"}
    # the schema itself catches what a wallet would refuse
    broken = {**credential, "credentialSubject": {"type": ["AchievementSubject"]}}
    assert not validator.is_valid(broken)


def test_a_changed_badge_or_another_hubs_key_does_not_verify(badge, tmp_path):
    _, token, keys = badge
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["credentialSubject"]["result"][0]["value"] = "10/10"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    (public,) = jwks(keys, KIGALI)["keys"]
    forged = f"{header}.{forged_payload}.{signature}"
    with pytest.raises(jws.InvalidJWSSignature):
        jwt.JWT(jwt=forged, key=jwk.JWK(**public), algs=["EdDSA"])
    jwt.JWT(jwt=token, key=jwk.JWK(**public), algs=["EdDSA"])  # the same key takes the original
    stranger = hub(tmp_path, "stranger")
    with pytest.raises(jwt.JWTMissingKey):
        claims_of(token, jwks(stranger, KIGALI))


def test_statbox_verifies_the_badge_like_the_certificate(badge, tmp_path):
    record, token, keys = badge
    verdict = verify_upload(token.encode() + b"\n", keys)
    assert verdict.status is Status.VALID, verdict.message
    assert verdict.certifies is not None
    certifies = asdict(verdict.certifies)
    from_record = asdict(verify_upload(issue(keys, person="أمينة الحسن")[1], keys).certifies)
    assert certifies == from_record  # the badge certifies what the certificate does
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["credentialSubject"]["result"][0]["value"] = "10/10"
    changed = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert verify_upload(f"{header}.{changed}.{signature}".encode(), keys).status is (
        Status.TAMPERED
    )
    assert verify_upload(token.encode(), hub(tmp_path, "stranger")).status is (
        Status.UNKNOWN_ISSUER
    )
    revoke(keys, record["certificate"], "copied")
    revoked = verify_upload(token.encode(), keys)
    assert revoked.status is Status.REVOKED and revoked.revocation is not None
