"""Each certificate also as an Open Badges 3.0 ``OpenBadgeCredential``, signed as a VC-JWT.

Open Badges 3.0 (1EdTech) makes a badge a W3C Verifiable Credential, so digital credential
wallets and standard verifiers accept it. The credential says what the Statbox certificate
says (person, course, score, date, issuer); its proof is a compact JWS (section 8.2 of the
specification, "VC-JWT"): header ``alg: EdDSA`` with ``kid`` the key's URI in the hub's
published key set (:data:`statbox.certify.trust.KEYS_PATH`), payload the credential plus the
JWT claims ``iss`` (issuer.id), ``jti`` (id), ``nbf`` (validFrom) and ``sub``
(credentialSubject.id). It is signed with the same Ed25519 key as the certificate, through
joserfc (a maintained JOSE library) rather than by hand.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError, SecurityWarning
from joserfc.jwk import OKPKey

from statbox.certify.certificates import (
    OWN,
    Certifies,
    Keys,
    Status,
    Trust,
    Verdict,
    public_pem,
    signed_verdict,
    verify,
)
from statbox.certify.trust import SERVICE_PATH, key_uri, verify_url

CONTEXTS = (
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
)
TYPES = ("VerifiableCredential", "OpenBadgeCredential")
ALGORITHM = "EdDSA"


def subject_id(record: Mapping[str, Any], base_url: str) -> str:
    """The person as a URI: their account on the issuing hub (``acct:``, RFC 7565)."""
    host = urlsplit(base_url).netloc or "statbox.invalid"
    return f"acct:{quote(str(record['trainee']))}@{host}"


def credential(record: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """The unsigned ``OpenBadgeCredential`` of certificate ``record``, issued by the hub at
    ``base_url`` (its public address)."""
    base = base_url.rstrip("/")
    certificate = str(record["certificate"])
    course = record["course"]
    person = str(record.get("name") or record["trainee"])
    valid_from = f"{record['date']}T00:00:00Z"
    return {
        "@context": list(CONTEXTS),
        # the verification page: the same certificate, the same id, and a verifier can open it
        "id": verify_url(base, certificate),
        "type": list(TYPES),
        "name": f"{course['title']}: {person}",
        "description": f"{person} passed the certification exercise of {course['title']}.",
        "issuer": {"id": base, "type": ["Profile"], "name": str(record["issuer"]), "url": base},
        "validFrom": valid_from,
        "credentialSubject": {
            "id": subject_id(record, base),
            "type": ["AchievementSubject"],
            "term": f"cohort {record['cohort']}",
            "identifier": [
                {
                    "type": "IdentityObject",
                    "hashed": False,
                    "identityHash": str(record["trainee"]),
                    "identityType": "userName",
                },
                {
                    "type": "IdentityObject",
                    "hashed": False,
                    "identityHash": person,
                    "identityType": "ext:fullName",
                },
            ],
            "achievement": {
                "id": f"{base}{SERVICE_PATH}/courses/{quote(str(course['id']))}"
                f"#{quote(str(record['exercise']))}",
                "type": ["Achievement"],
                "achievementType": "Certificate",
                "name": str(course["title"]),
                "description": f"The certification exercise of {course['title']}, graded by "
                "Statbox's isolated grader.",
                "criteria": {
                    "narrative": f"Reach the pass mark in the certification exercise "
                    f"'{record['exercise']}' of {course['title']}."
                },
            },
            "result": [{"type": ["Result"], "value": f"{record['score']:g}/{record['max_score']}"}],
        },
        "evidence": [
            {
                "id": verify_url(base, certificate),
                "type": ["Evidence"],
                "name": f"Statbox certificate {certificate}",
                "description": f"Submission SHA-256 {record['submission_sha256']}",
            }
        ],
    }


def issue(record: Mapping[str, Any], key: Ed25519PrivateKey, base_url: str) -> str:
    """The credential of ``record`` as a VC-JWT (a compact JWS) signed with ``key``."""
    body = credential(record, base_url)
    claims = {
        **body,
        "iss": body["issuer"]["id"],
        "jti": body["id"],
        "nbf": int(datetime.fromisoformat(body["validFrom"]).astimezone(UTC).timestamp()),
        "sub": body["credentialSubject"]["id"],
    }
    header = {"alg": ALGORITHM, "kid": key_uri(base_url, key.public_key()), "typ": "JWT"}
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with warnings.catch_warnings():
        # joserfc warns that RFC 9864 deprecates "EdDSA" for the fully specified "Ed25519":
        # the same Ed25519 signature, but Open Badges 3.0 verifiers know only "EdDSA".
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode(header, claims, OKPKey.import_key(pem), algorithms=[ALGORITHM])


BADGE = re.compile(rb"^\s*eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\s*$")


def _claims_certify(claims: Mapping[str, Any], trusted_name: str) -> Certifies:
    """What a checked credential certifies, read back from where :func:`credential` put it."""
    subject = claims["credentialSubject"]
    names = {i["identityType"]: i["identityHash"] for i in subject["identifier"]}
    achievement = subject["achievement"]
    score, max_score = (float(x) for x in subject["result"][0]["value"].split("/"))
    where = urlsplit(achievement["id"])  # .../courses/<course>#<exercise>, as credential() wrote
    course, exercise = unquote(where.path.rsplit("/", 1)[-1]), unquote(where.fragment)
    written = str(claims["issuer"]["name"])
    return Certifies(
        certificate=str(claims["id"]).rsplit("/", 1)[-1],
        person=str(names.get("ext:fullName") or names["userName"]),
        username=str(names["userName"]),
        course=course,
        course_title=str(achievement["name"]),
        exercise=exercise,
        cohort=str(subject["term"]).removeprefix("cohort "),
        score=score,
        max_score=max_score,
        percent=round(100 * score / max_score, 1) if max_score else 0.0,
        date=str(claims["validFrom"])[:10],
        issuer=written if trusted_name == OWN else trusted_name,
        issuer_as_written=written,
        verify_url=str(claims["id"]),
    )


def verify_badge(token: bytes, trust: Trust) -> Verdict:
    """The verdict on an Open Badges credential this hub or a trusted one issued: the JWS
    signature under the key its ``kid`` names, the JWT claims against the credential (Open
    Badges 3.0 section 8.2), then revocation, as for the certificate itself."""
    value = token.strip()
    try:
        header = jws.extract_compact(value).protected
    except (JoseError, ValueError) as exc:
        return Verdict(Status.TAMPERED, f"invalid: tampered (not a readable credential: {exc})")
    signer = str(header.get("kid", "")).rsplit("#", 1)[-1]
    issuer = trust.issuer_of(signer)
    if issuer is None or header.get("alg") != ALGORITHM:
        return Verdict(
            Status.UNKNOWN_ISSUER,
            f"invalid: unknown issuer: signed by an unknown key {signer[:32]!r} (not this "
            "hub's signing key, nor one of certify.trusted_issuers)",
        )
    public = OKPKey.import_key(public_pem(issuer.keys[signer]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)  # EdDSA: see issue()
            claims = dict(jwt.decode(value, public, algorithms=[ALGORITHM]).claims)
        consistent = (
            claims["iss"] == claims["issuer"]["id"]
            and claims["jti"] == claims["id"]
            and claims["sub"] == claims["credentialSubject"]["id"]
            and datetime.fromtimestamp(claims["nbf"], UTC)
            == datetime.fromisoformat(claims["validFrom"])
            and set(TYPES) <= set(claims["type"])
        )
        certifies = _claims_certify(claims, issuer.name) if consistent else None
    except BadSignatureError:
        return Verdict(Status.TAMPERED, "invalid: tampered (the signature does not match)")
    except (JoseError, KeyError, TypeError, ValueError, AttributeError, IndexError):
        certifies = None
    if certifies is None:
        return Verdict(
            Status.TAMPERED, "invalid: tampered (the credential does not match its JWT claims)"
        )
    return signed_verdict(claims, certifies, issuer, trust)


def verify_upload(content: bytes, trust: Keys | Trust) -> Verdict:
    """What ``statbox certify verify`` and the public verification page call: the verdict on
    a certificate's ``.json`` record or on its ``.badge.jwt`` Open Badges credential."""
    if isinstance(trust, Keys):
        trust = trust.trust()
    if BADGE.match(content):
        return verify_badge(content, trust)
    return verify(content, trust)
