"""Certificates: a signed JSON record per trainee who passed, with an HTML and a PDF copy.

The record binds the person (username and full name), course, exercise, cohort, score, date,
the submission's SHA-256, the grader's version and the page that verifies it, and is signed
with the hub's Ed25519 key (``<state>/secrets/certify/signing.key``, made on first use, mode
0600). The file is the canonical JSON of ``{"record": ..., "signature": ...}`` (sorted keys,
no spaces, ASCII), so the bytes themselves are checked: any changed byte makes :func:`verify`
refuse it.

:func:`verify` gives a :class:`Verdict`: valid, tampered (the signature or the bytes do not
match), revoked (by its issuer, or by this hub), unknown issuer (a key no one here trusts), or
not a certificate; with what a signed certificate certifies. Whom to trust is a
:class:`Trust`: this hub's key, legacy ``<state>/certify/trusted-keys/*.pem`` files, and
other hubs' published keys and revocation lists (:mod:`statbox.certify.trust`).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import html
import json
import os
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from statbox.errors import BadInput
from statbox.i18n import Speaker
from statbox.i18n import _ as N_
from statbox.privatefile import create_private_file

RECORD_TYPE = "statbox-certificate"
RECORD_VERSION = 2
"""Version 2 added the person's full name (``name``) and ``verify_url``; 1 still verifies."""
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

    @staticmethod
    def public_key_file(path: Path) -> dict[str, Ed25519PublicKey]:
        """The Ed25519 public key in PEM file ``path``, by key id."""
        try:
            public = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path}: not a PEM public key ({exc})") from None
        if not isinstance(public, Ed25519PublicKey):
            raise BadInput(f"{path}: not an Ed25519 public key")
        return {key_id(public): public}

    def trust(self, extra: Sequence[Path] = ()) -> Trust:
        """This hub's own key, the PEM files of ``trusted_dir`` and ``extra`` (public keys
        without revocation lists), and this hub's revocations."""
        own = self.signing_key(create=False)
        issuers = [Issuer(OWN, {key_id(own.public_key()): own.public_key()} if own else {})]
        files = sorted(self.trusted_dir.glob("*.pem")) if self.trusted_dir.is_dir() else []
        for path in [*files, *extra]:
            issuers.append(Issuer(f"the key in {path}", self.public_key_file(path)))
        return Trust(issuers, self.revoked())

    def revoked(self) -> dict[str, dict[str, Any]]:
        if not self.revoked_path.exists():
            return {}
        try:
            data = json.loads(self.revoked_path.read_text())
            return {entry["certificate"]: entry for entry in data["revoked"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{self.revoked_path}: not a revocation list ({exc})") from None


OWN = "this hub"


@dataclass(frozen=True)
class Issuer:
    """A hub whose certificates verify here: its keys (by key id) and what it revoked."""

    name: str
    keys: Mapping[str, Ed25519PublicKey]
    revoked: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Its published revocations, by :func:`revocation_digest` of the certificate id."""


@dataclass(frozen=True)
class Trust:
    """Every issuer this hub accepts (this hub first) and this hub's own revocations."""

    issuers: Sequence[Issuer]
    own_revocations: Mapping[str, Mapping[str, str]]

    def issuer_of(self, signer: str) -> Issuer | None:
        """The issuer holding key ``signer`` (a key id)."""
        return next((i for i in self.issuers if signer in i.keys), None)


def certificate_id(attempt: StoredAttempt) -> str:
    """The same attempt always gets the same id (reports can be written again)."""
    parts = (attempt.cohort, attempt.course, attempt.exercise, attempt.trainee)
    identity = "\0".join([*parts, attempt.submission_hash, attempt.grader_version])
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def person_name(
    username: str, people: Mapping[str, str] | None = None, claims: Mapping[str, Any] | None = None
) -> str:
    """How a certificate names ``username``: the identity provider's ``name`` claim when the
    hub has it, else ``certify.people`` in the settings, else the username itself."""
    claimed = (claims or {}).get("name")
    if isinstance(claimed, str) and display_safe(claimed):
        return display_safe(claimed)[:120]
    return display_safe((people or {}).get(username) or "") or username


JOINERS = frozenset("\u200c\u200d")
"""ZERO WIDTH NON-JOINER and JOINER: Arabic- and Indic-script names need them to be spelt."""


def display_safe(text: str) -> str:
    """``text`` without format characters (Unicode category Cf: the bidirectional marks,
    embeddings, overrides and isolates U+200E/F, U+202A-202E, U+2066-2069, U+061C, and
    invisible ones) except the joiners, and with runs of white space as one space: a name
    cannot then reorder what is shown after it (a verdict line's username or score).
    Every name a certificate shows passes through here."""
    kept = "".join(
        ch for ch in text if ch in JOINERS or unicodedata.category(ch) not in ("Cf", "Cc")
    )
    return " ".join(kept.split())


def make_record(
    attempt: StoredAttempt,
    course_title: str,
    issuer: str,
    person: str | None = None,
    verify_url: str | None = None,
) -> dict[str, Any]:
    """The certificate of ``attempt``; ``person`` is the full name (default: the username),
    ``verify_url`` the public page that verifies it (:func:`statbox.certify.trust.verify_url`)."""
    return {
        "type": RECORD_TYPE,
        "version": RECORD_VERSION,
        "certificate": certificate_id(attempt),
        "trainee": attempt.trainee,
        "name": display_safe(person or "") or attempt.trainee,
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
        "verify_url": verify_url,
    }


def file_name(record: Mapping[str, Any], suffix: str) -> str:
    """The name a certificate's ``suffix`` copy is written under (``alice.json``): what the
    report writes and what the certificate tells people to check, from one place."""
    return f"{record['trainee']}{suffix}"


def sign(record: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The signed file's bytes: canonical JSON of the record and its signature."""
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


ENVELOPE_KEYS = frozenset({"record", "signature"})
SIGNATURE_KEYS = frozenset({"algorithm", "key_id", "value"})


def open_envelope(content: bytes) -> tuple[dict[str, Any], str, bytes]:
    """The record, signer key id and signature of a file :func:`sign` wrote, once its bytes
    are exactly the canonical form; ValueError saying what is wrong otherwise."""
    try:
        envelope = json.loads(content)
        record, signature = envelope["record"], envelope["signature"]
        algorithm, signer = signature["algorithm"], signature["key_id"]
        raw = base64.b64decode(signature["value"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a signed Statbox document ({type(exc).__name__})") from None
    if not isinstance(record, dict) or not isinstance(signer, str):
        raise ValueError("not a signed Statbox document")
    # Only what sign() writes: a field beside the record or in the signature is unsigned
    # text a reader might believe ("verified by the registrar"), so the file is refused.
    if envelope.keys() != ENVELOPE_KEYS or signature.keys() != SIGNATURE_KEYS:
        raise ValueError("the file has fields outside the signed record")
    if algorithm != ALGORITHM:
        raise ValueError(f"unsupported signature algorithm {str(algorithm)[:20]!r}")
    if content.rstrip(b"\n") != canonical(envelope):
        raise ValueError("the file differs from what was signed")
    return record, signer, raw


class Status(enum.StrEnum):
    VALID = "valid"
    TAMPERED = "tampered"
    REVOKED = "revoked"
    UNKNOWN_ISSUER = "unknown issuer"
    NOT_A_CERTIFICATE = "not a certificate"


@dataclass(frozen=True)
class Certifies:
    """What a certificate whose signature holds says (shown for valid and revoked ones)."""

    certificate: str
    person: str
    username: str
    course: str
    course_title: str
    exercise: str
    cohort: str
    score: float
    max_score: float
    percent: float
    date: str
    issuer: str
    """Who vouches for it: for this hub's own certificates, the hub as they name it (name
    and region); for another hub's, that hub's name in ``certify.trusted_issuers`` (whose
    key signed it), never what the certificate claims."""
    issuer_as_written: str
    """The issuer as the certificate names itself (a trusted hub could write any name)."""
    verify_url: str | None

    @classmethod
    def of(cls, record: Mapping[str, Any], signed_by: str = OWN) -> Certifies:
        return cls(
            certificate=str(record["certificate"]),
            # a trusted hub's (or an older) certificate may carry any name: shown safe here too
            person=display_safe(str(record.get("name") or "")) or str(record["trainee"]),
            username=str(record["trainee"]),
            course=str(record["course"]["id"]),
            course_title=str(record["course"]["title"]),
            exercise=str(record["exercise"]),
            cohort=str(record["cohort"]),
            score=float(record["score"]),
            max_score=float(record["max_score"]),
            percent=float(record["percent"]),
            date=str(record["date"]),
            issuer=str(record["issuer"]) if signed_by == OWN else signed_by,
            issuer_as_written=str(record["issuer"]),
            verify_url=record.get("verify_url"),
        )


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: ``status``, a one-line ``message`` for people, and, when
    the signature holds, what the certificate ``certifies`` and who ``signed_by`` (the
    trusted issuer's name here, "this hub" for our own key)."""

    status: Status
    message: str
    record: dict[str, Any] | None = None
    """The record as found in the file (not to be believed unless status is valid)."""
    certifies: Certifies | None = None
    signed_by: str | None = None
    revocation: Mapping[str, str] | None = None
    """For a revoked certificate: its ``reason``, ``at`` (when) and ``by`` (who revoked it)."""

    @property
    def valid(self) -> bool:
        return self.status is Status.VALID

    def as_json(self) -> dict[str, Any]:
        """The verdict as JSON-able data (what the classroom service's API answers)."""
        return {
            "status": str(self.status),
            "valid": self.valid,
            "message": self.message,
            "certifies": asdict(self.certifies) if self.certifies else None,
            "signed_by": self.signed_by,
            "revocation": dict(self.revocation) if self.revocation else None,
        }


def verify(content: bytes, trust: Keys | Trust, extra_keys: Sequence[Path] = ()) -> Verdict:
    """Whether ``content`` is a valid certificate of an issuer ``trust`` accepts, and why not.
    ``trust`` may be the hub's :class:`Keys` (its own key, legacy PEM files, ``extra_keys``)."""
    if isinstance(trust, Keys):
        trust = trust.trust(extra_keys)
    try:
        record, signer, signature = open_envelope(content)
    except ValueError as exc:
        if RECORD_TYPE.encode() in content and b'"signature"' in content:
            # It was a certificate until a byte changed what JSON (or the canonical form) says.
            return Verdict(Status.TAMPERED, f"invalid: tampered ({exc})")
        return Verdict(
            Status.NOT_A_CERTIFICATE,
            "invalid: not a certificate record (expected the .json file Statbox wrote)",
        )
    if record.get("type") != RECORD_TYPE:
        if {"certificate", "trainee", "course"} <= record.keys():  # a byte of its type changed
            return Verdict(Status.TAMPERED, "invalid: tampered (not a certificate's type)", record)
        return Verdict(
            Status.NOT_A_CERTIFICATE, "invalid: not a Statbox certificate record", record
        )
    issuer = trust.issuer_of(signer)
    if issuer is None:
        return Verdict(
            Status.UNKNOWN_ISSUER,
            f"invalid: unknown issuer: signed by an unknown key {signer[:32]!r} (not this "
            "hub's signing key, nor one of certify.trusted_issuers)",
            record,
        )
    try:
        issuer.keys[signer].verify(signature, canonical(record))
        certifies = Certifies.of(record, issuer.name)
    except (InvalidSignature, KeyError, TypeError, ValueError):
        return Verdict(
            Status.TAMPERED, "invalid: tampered (the signature does not match the record)", record
        )
    return signed_verdict(record, certifies, issuer, trust)


def signed_verdict(
    record: dict[str, Any], certifies: Certifies, issuer: Issuer, trust: Trust
) -> Verdict:
    """The verdict on a document whose signature by ``issuer`` holds: revoked (by its issuer,
    or by this hub) or valid. Shared by certificates and their Open Badges credentials."""
    signed_by = issuer.name
    revoked: Mapping[str, str] | None = issuer.revoked.get(revocation_digest(certifies.certificate))
    if revoked is not None and "sealed_reason" in revoked:
        reason = open_reason(certifies.certificate, str(revoked["sealed_reason"]))
        revoked = {**revoked, "reason": reason}
    revoked_by = signed_by
    if revoked is None and certifies.certificate in trust.own_revocations:
        revoked, revoked_by = trust.own_revocations[certifies.certificate], OWN
    if revoked is None and issuer.name == OWN:
        # this hub's revocation bars the trainee's course and cohort, whatever submission
        revoked = barring(trust.own_revocations.values(), certifies)
    if revoked is not None:
        revocation = {
            "reason": str(revoked.get("reason", "")),
            "at": str(revoked.get("at", "?")),
            "by": revoked_by,
        }
        reason = f": {revocation['reason']}" if revocation["reason"] else ""
        return Verdict(
            Status.REVOKED,
            f"invalid: revoked on {revocation['at']} by {revoked_by}{reason}",
            record,
            certifies,
            signed_by,
            revocation,
        )
    person = certifies.person
    if person != certifies.username:
        person = f"{person} ({certifies.username})"
    foreign = ""
    if certifies.issuer_as_written != certifies.issuer:
        foreign = f" (the certificate says {certifies.issuer_as_written!r})"
    return Verdict(
        Status.VALID,
        f"valid: {person} passed {certifies.course_title} ({certifies.course}) with "
        f"{certifies.score:g}/{certifies.max_score:g} on {certifies.date}; certificate "
        f"{certifies.certificate}, issued by {certifies.issuer}{foreign}",
        record,
        certifies,
        signed_by,
    )


BARRED_FIELDS = ("trainee", "course", "exercise", "cohort")
"""What a revocation bars, besides its one certificate: a new certificate of the same
trainee, course, exercise and cohort (another submission has another id) until lifted."""


def revocation_digest(certificate: str) -> str:
    """How a published revocation list names a certificate: a holder computes it from the
    id on the certificate; someone holding only the list cannot turn it back into an id (ids
    hash the submission's SHA-256), so cannot open ``verify/<id>`` to learn who it was."""
    return hashlib.sha256(f"statbox-revoked\0{certificate}".encode()).hexdigest()


def _bars(record: Mapping[str, Any]) -> dict[str, str]:
    course = record["course"]
    course_id = course["id"] if isinstance(course, Mapping) else course
    return {
        "trainee": str(record["trainee"]),
        "course": str(course_id),
        "exercise": str(record["exercise"]),
        "cohort": str(record["cohort"]),
    }


def _reason_key(certificate: str) -> bytes:
    return hashlib.sha256(f"statbox-revocation-reason\0{certificate}".encode()).digest()


def seal_reason(certificate: str, reason: str) -> str:
    """``reason`` encrypted (AES-GCM) under a key only the certificate's id gives."""
    nonce = os.urandom(12)
    sealed = AESGCM(_reason_key(certificate)).encrypt(nonce, reason.encode(), None)
    return base64.b64encode(nonce + sealed).decode()


def open_reason(certificate: str, sealed: str) -> str:
    """The reason :func:`seal_reason` sealed for ``certificate``; "" when it does not open."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        return AESGCM(_reason_key(certificate)).decrypt(raw[:12], raw[12:], None).decode()
    except (ValueError, InvalidTag, UnicodeDecodeError):
        return ""


def barring(entries: Any, certified: Any) -> Mapping[str, str] | None:
    """This hub's revocation entry that bars ``certified`` (a :class:`Certifies` or a stored
    attempt: anything with trainee/username, course, exercise and cohort), else None."""
    trainee = getattr(certified, "username", None) or certified.trainee
    wanted = {
        "trainee": str(trainee),
        "course": str(certified.course),
        "exercise": str(certified.exercise),
        "cohort": str(certified.cohort),
    }
    return next((e for e in entries if e.get("bars") == wanted), None)


def revoke(
    keys: Keys, certificate: str, reason: str, record: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Add ``certificate`` (an id) to the revocation list; return the entry. With its
    ``record``, the revocation also bars re-issuing to that trainee, course, exercise and
    cohort until :func:`lift` (a changed byte in the submission would make a new id)."""
    entries = keys.revoked()
    entry: dict[str, Any] = {
        "certificate": certificate,
        "reason": reason,
        "at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    if record is not None:
        entry["bars"] = _bars(record)
    entries[certificate] = entry
    _write_revoked(keys, entries)
    return entry


def lift(keys: Keys, certificate: str) -> dict[str, Any]:
    """An instructor lifts the bar of ``certificate``'s revocation: the trainee may be
    certified again (the revoked certificate itself stays revoked). Return the entry."""
    entries = keys.revoked()
    if certificate not in entries:
        raise BadInput(f"{certificate[:64]!r}: no revoked certificate with that id")
    entry = dict(entries[certificate])
    entry.pop("bars", None)
    entry["lifted"] = datetime.now(UTC).replace(microsecond=0).isoformat()
    entries[certificate] = entry
    _write_revoked(keys, entries)
    return entry


def _write_revoked(keys: Keys, entries: Mapping[str, Any]) -> None:
    keys.revoked_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = keys.revoked_path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"revoked": list(entries.values())}, indent=1) + "\n")
    os.replace(temporary, keys.revoked_path)


def check_lines(record: Mapping[str, Any]) -> list[str]:
    """How a certificate tells people to check it: the command, naming the file as the
    report writes it, and the hub's public verification page when it has one."""
    lines = [f"Check it: statbox certify verify {file_name(record, '.json')}"]
    if record.get("verify_url"):
        lines.append(f"or open {record['verify_url']}")
    return lines


CERTIFICATE_WORDS = {
    "title": N_("CERTIFICATE"),
    "certifies": N_("This certifies that"),
    "passed": N_("passed the certification exercise of"),
    "score": N_("with %(score)s of %(max)s points (%(percent)s%%) on %(date)s"),
    "scan": N_("Scan to verify"),
}
"""What a certificate says around the person's name and the course, in English; each is
printed beside its translation in the hub's language (statbox.i18n catalogs)."""


def certificate_words(record: Mapping[str, Any], language: str) -> dict[str, tuple[str, str]]:
    """Each of :data:`CERTIFICATE_WORDS` as (English, hub language), filled in from ``record``."""
    values = {
        "score": f"{record['score']:g}",
        "max": str(record["max_score"]),
        "percent": f"{record['percent']:g}",
        "date": str(record["date"]),
    }
    local = Speaker(language)
    # Dates and scores read left to right inside a right-to-left sentence: isolated (LRI ...
    # PDI), or the bidirectional algorithm turns 2026-12-01 into 01-12-2026.
    isolated = {k: f"\u2066{v}\u2069" for k, v in values.items()} if local.dir == "rtl" else values
    return {
        key: (text % values, local.gettext(text) % isolated)
        if "%(" in text
        else (text, local.gettext(text))
        for key, text in CERTIFICATE_WORDS.items()
    }


def certificate_html(record: dict[str, Any], language: str = "en") -> str:
    """The HTML copy of certificate ``record``: English and the hub's ``language`` side by
    side (each in its own direction)."""
    e = html.escape
    person = record.get("name") or record["trainee"]
    url = record.get("verify_url")
    link = f', or open <a href="{e(url)}">{e(url)}</a>' if url else ""
    words = certificate_words(record, language)
    local = Speaker(language)

    def pair(key: str, tag: str = "p") -> str:
        english, translated = words[key]
        if english == translated:
            return f"<{tag}>{e(english)}</{tag}>"
        return (
            f'<div class="pair"><{tag} lang="en" dir="ltr">{e(english)}</{tag}>'
            f'<{tag} lang="{e(local.language)}" dir="{local.dir}">{e(translated)}</{tag}></div>'
        )

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Certificate: {e(person)}</title>
<style>
body {{ font-family: "Noto Sans", "Noto Sans Arabic", "Noto Sans CJK SC", sans-serif;
  background: #f4f4f4; }}
.certificate {{ max-width: 46rem; margin: 3rem auto; padding: 3rem; background: #fff;
  border: 6px double #1f4e79; text-align: center; }}
h1 {{ color: #1f4e79; letter-spacing: .1em; }}

.pair {{ display: flex; gap: 2rem; justify-content: center; }} .pair > * {{ flex: 1; }}
.small {{ color: #555; font-size: .85rem; }}
</style></head><body><div class="certificate">
{pair("title", "h1")}
{pair("certifies")}
<h2 dir="auto">{e(person)}</h2>
{pair("passed")}
<h2 dir="auto">{e(record["course"]["title"])}</h2>
{pair("score")}
<p dir="auto">{e(record["issuer"])}</p>
<p class="small">Certificate {e(record["certificate"])}; {e(record["trainee"])}, cohort
{e(record["cohort"])}; submission SHA-256 {e(record["submission_sha256"])};
{e(record["grader_version"])}.<br>{e(check_lines(record)[0])}{link}</p>
</div></body></html>
"""
