"""Certificates: a signed JSON record per trainee who passed, with an HTML and a PDF copy.

The record binds trainee, course, exercise, cohort, score, date, the submission's SHA-256
and the grader's version, and is signed with the hub's Ed25519 key
(``<state>/secrets/certify/signing.key``, made on first use, mode 0600). The file is the
canonical JSON of ``{"record": ..., "signature": ...}`` (sorted keys, no spaces, ASCII), so
the bytes themselves are checked: any changed byte makes :func:`verify` refuse it.

:func:`verify` says ``valid`` or why not: not a certificate, tampered (the signature or the
bytes do not match), an unknown key (not this hub's, nor one in
``<state>/certify/trusted-keys/*.pem``, nor one given), or revoked (listed in
``<state>/certify/revoked.json``, which :func:`revoke` adds to).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from statbox.certify import pdf
from statbox.errors import BadInput
from statbox.privatefile import create_private_file

RECORD_TYPE = "statbox-certificate"
RECORD_VERSION = 1
ALGORITHM = "Ed25519"

if TYPE_CHECKING:  # annotations only: `certify verify` needs neither SQLAlchemy nor nbformat
    from statbox.certify.store import StoredAttempt


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class Keys:
    """The hub's signing key and the public keys it trusts, under the state directory."""

    def __init__(self, state_dir: Path):
        self.secret_path = state_dir / "secrets" / "certify" / "signing.key"
        self.trusted_dir = state_dir / "certify" / "trusted-keys"
        self.revoked_path = state_dir / "certify" / "revoked.json"

    def signing_key(self, create: bool = True) -> Ed25519PrivateKey | None:
        if self.secret_path.exists():
            key = serialization.load_pem_private_key(self.secret_path.read_bytes(), None)
            assert isinstance(key, Ed25519PrivateKey)
            return key
        if not create:
            return None
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        create_private_file(self.secret_path, pem)  # another process may have made it first
        return self.signing_key(create=False)

    def trusted(self, extra: Sequence[Path] = ()) -> dict[str, Ed25519PublicKey]:
        keys: dict[str, Ed25519PublicKey] = {}
        own = self.signing_key(create=False)
        if own is not None:
            keys[key_id(own.public_key())] = own.public_key()
        files = sorted(self.trusted_dir.glob("*.pem")) if self.trusted_dir.is_dir() else []
        for path in [*files, *extra]:
            try:
                public = serialization.load_pem_public_key(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise BadInput(f"{path}: not a PEM public key ({exc})") from None
            if isinstance(public, Ed25519PublicKey):
                keys[key_id(public)] = public
            else:
                raise BadInput(f"{path}: not an Ed25519 public key")
        return keys

    def revoked(self) -> dict[str, dict[str, str]]:
        if not self.revoked_path.exists():
            return {}
        try:
            data = json.loads(self.revoked_path.read_text())
            return {entry["certificate"]: entry for entry in data["revoked"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{self.revoked_path}: not a revocation list ({exc})") from None


def certificate_id(attempt: StoredAttempt) -> str:
    """The same attempt always gets the same id (reports can be written again)."""
    parts = (attempt.cohort, attempt.course, attempt.exercise, attempt.trainee)
    identity = "\0".join([*parts, attempt.submission_hash, attempt.grader_version])
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def make_record(attempt: StoredAttempt, course_title: str, issuer: str) -> dict[str, Any]:
    return {
        "type": RECORD_TYPE,
        "version": RECORD_VERSION,
        "certificate": certificate_id(attempt),
        "trainee": attempt.trainee,
        "course": {"id": attempt.course, "title": course_title},
        "exercise": attempt.exercise,
        "cohort": attempt.cohort,
        "score": attempt.total,
        "max_score": attempt.max_score,
        "percent": round(attempt.percent, 1),
        "date": attempt.finished_at.astimezone(UTC).date().isoformat(),
        "submission_sha256": attempt.submission_hash,
        "grader_version": attempt.grader_version,
        "issuer": issuer,
    }


def sign(record: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The certificate file's bytes: canonical JSON of the record and its signature."""
    signature = key.sign(canonical(record))
    envelope = {
        "record": record,
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": key_id(key.public_key()),
            "value": base64.b64encode(signature).decode(),
        },
    }
    return canonical(envelope) + b"\n"


@dataclass(frozen=True)
class Verdict:
    valid: bool
    message: str
    record: dict[str, Any] | None = None


def verify(content: bytes, keys: Keys, extra_keys: Sequence[Path] = ()) -> Verdict:
    """Whether ``content`` is a valid certificate of this hub, and why not."""
    try:
        envelope = json.loads(content)
        record = envelope["record"]
        signature = envelope["signature"]
        algorithm, signer, value = signature["algorithm"], signature["key_id"], signature["value"]
        raw = base64.b64decode(value, validate=True)
        if not isinstance(record, dict) or record.get("type") != RECORD_TYPE:
            raise ValueError("not a Statbox certificate record")
    except (ValueError, KeyError, TypeError) as exc:
        reason = (
            str(exc)
            if isinstance(exc, ValueError) and "Statbox" in str(exc)
            else ("not a certificate record (expected the .json file Statbox wrote)")
        )
        return Verdict(False, f"invalid: {reason}")
    if algorithm != ALGORITHM:
        return Verdict(False, f"invalid: unsupported signature algorithm {str(algorithm)[:20]!r}")
    trusted = keys.trusted(list(extra_keys))
    public = trusted.get(signer) if isinstance(signer, str) else None
    if public is None:
        return Verdict(
            False,
            f"invalid: signed by an unknown key {str(signer)[:32]!r} (not this hub's signing "
            f"key, nor one in {keys.trusted_dir})",
            record,
        )
    try:
        public.verify(raw, canonical(record))
    except InvalidSignature:
        return Verdict(False, "invalid: tampered (the signature does not match the record)", record)
    if content.rstrip(b"\n") != canonical(envelope):
        return Verdict(False, "invalid: tampered (the file differs from what was signed)", record)
    revoked = keys.revoked().get(str(record.get("certificate")))
    if revoked is not None:
        return Verdict(
            False,
            f"invalid: revoked on {revoked.get('at', '?')}: {revoked.get('reason', '')}".rstrip(),
            record,
        )
    return Verdict(
        True,
        f"valid: {record['trainee']} passed {record['course']['title']} ({record['course']['id']}) "
        f"with {record['score']:g}/{record['max_score']} on {record['date']}; certificate "
        f"{record['certificate']}, issued by {record['issuer']}",
        record,
    )


def revoke(keys: Keys, certificate: str, reason: str) -> dict[str, str]:
    """Add ``certificate`` (an id) to the revocation list; return the entry."""
    entries = keys.revoked()
    entry = {
        "certificate": certificate,
        "reason": reason,
        "at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    entries[certificate] = entry
    keys.revoked_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = keys.revoked_path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"revoked": list(entries.values())}, indent=1) + "\n")
    os.replace(temporary, keys.revoked_path)
    return entry


def certificate_html(record: dict[str, Any]) -> str:
    e = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Certificate: {e(record["trainee"])}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; background: #f4f4f4; }}
.certificate {{ max-width: 46rem; margin: 3rem auto; padding: 3rem; background: #fff;
  border: 6px double #1f4e79; text-align: center; }}
h1 {{ color: #1f4e79; letter-spacing: .1em; }} .small {{ color: #555; font-size: .85rem; }}
</style></head><body><div class="certificate">
<h1>CERTIFICATE</h1>
<p>This certifies that</p>
<h2>{e(record["trainee"])}</h2>
<p>passed the certification exercise of</p>
<h2>{e(record["course"]["title"])}</h2>
<p>with {record["score"]:g} of {record["max_score"]} points ({record["percent"]:g}%)
on {e(record["date"])}.</p>
<p>{e(record["issuer"])}</p>
<p class="small">Certificate {e(record["certificate"])}; cohort {e(record["cohort"])};
submission SHA-256 {e(record["submission_sha256"])}; {e(record["grader_version"])}.<br>
Check it: <code>statbox certify verify {e(record["certificate"])}.json</code></p>
</div></body></html>
"""


def certificate_pdf(record: dict[str, Any]) -> bytes:
    items: list[pdf.Text | pdf.Rectangle] = [
        pdf.Rectangle(30, 30, pdf.WIDTH - 60, pdf.HEIGHT - 60, 4),
        pdf.Rectangle(40, 40, pdf.WIDTH - 80, pdf.HEIGHT - 80, 1),
        pdf.Text("CERTIFICATE", 470, 40, "bold"),
        pdf.Text("This certifies that", 420, 16),
        pdf.Text(record["trainee"], 375, 30, "bold"),
        pdf.Text("passed the certification exercise of", 330, 16),
        pdf.Text(record["course"]["title"], 290, 24, "bold"),
        pdf.Text(
            f"with {record['score']:g} of {record['max_score']} points "
            f"({record['percent']:g}%) on {record['date']}",
            250,
            16,
        ),
        pdf.Text(record["issuer"], 200, 16),
        pdf.Text(
            f"Certificate {record['certificate']}   cohort {record['cohort']}   "
            f"{record['grader_version']}",
            100,
            9,
        ),
        pdf.Text(f"Submission SHA-256 {record['submission_sha256']}", 86, 9),
        pdf.Text(f"Check it: statbox certify verify {record['certificate']}.json", 72, 9),
    ]
    return pdf.render(items, title=f"Certificate: {record['trainee']}, {record['course']['title']}")
