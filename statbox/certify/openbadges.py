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

import uuid
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey

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
        # a URN derived from the verification page: the same certificate, the same id
        "id": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, verify_url(base, certificate))}",
        "type": list(TYPES),
        "name": f"{course['title']}: {person}",
        "description": f"{person} passed the certification exercise of {course['title']}.",
        "issuer": {"id": base, "type": ["Profile"], "name": str(record["issuer"]), "url": base},
        "validFrom": valid_from,
        "credentialSubject": {
            "id": subject_id(record, base),
            "type": ["AchievementSubject"],
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
