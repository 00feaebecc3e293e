"""Whose certificates verify here: this hub's own keys, and other hubs' published documents.

Each hub publishes two documents (the classroom service serves them at :data:`KEYS_PATH` and
:data:`REVOCATIONS_PATH`; ``statbox certify keys --out DIR`` writes them as files):

- its public keys as a JSON Web Key Set (RFC 7517; Ed25519 keys as ``OKP`` JWKs, RFC 8037),
  the same keys that sign its certificates and its Open Badges credentials;
- its revocation list, signed with its own key like a certificate, so a copy carried to
  another hub cannot lose an entry on the way unnoticed.

Another hub names these documents in ``certify.trusted_issuers`` and then verifies the first
hub's certificates offline. Invariant: a revocation list counts only for certificates its own
issuer signed (Brasília cannot revoke Kigali's certificates), except this hub's own list, which
is the local operator's refusal of any certificate, and says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from statbox.certify.certificates import (
    Issuer,
    Keys,
    Trust,
    canonical,
    key_id,
    open_envelope,
    public_pem,
    revocation_digest,
    seal_reason,
    sign,
)
from statbox.errors import BadInput

SERVICE_PATH = "/services/classroom"
"""Where the hub's classroom service is, below the hub's public URL."""
KEYS_PATH = f"{SERVICE_PATH}/keys.json"
REVOCATIONS_PATH = f"{SERVICE_PATH}/revocations.json"
VERIFY_PATH = SERVICE_PATH + "/verify/{certificate}"
REVOCATIONS_TYPE = "statbox-revocations"


def public_base_url(hub: Any) -> str:
    """The hub's public address from its settings (``hub.public_url``, else the local
    proxy's ip and port): where its verification page and published documents are."""
    if hub.public_url:
        return str(hub.public_url).rstrip("/")
    host = "127.0.0.1" if hub.ip in ("0.0.0.0", "") else hub.ip
    return f"http://{host}:{hub.port}"


def issuer_name(hub: Any) -> str:
    """How certificates name the issuing hub: its name and region."""
    return f"{hub.name}, {hub.region}" if hub.region else str(hub.name)


def verify_url(base_url: str, certificate: str) -> str:
    """The public page that verifies ``certificate`` (what its link and QR code open)."""
    return base_url.rstrip("/") + VERIFY_PATH.format(certificate=certificate)


def key_uri(base_url: str, public: Ed25519PublicKey) -> str:
    """A key's ``kid``: its JWK in the published key set (a URI, as Open Badges 3.0 asks)."""
    return f"{base_url.rstrip('/')}{KEYS_PATH}#{key_id(public)}"


def jwk(public: Ed25519PublicKey, base_url: str) -> dict[str, Any]:
    """The public JWK of ``public`` (never the private part: it is built from the public key)."""
    data = dict(OKPKey.import_key(public_pem(public)).as_dict(private=False))
    data.update(kid=key_uri(base_url, public), use="sig", alg="EdDSA")
    return data


def jwks(keys: Keys, base_url: str) -> dict[str, Any]:
    """This hub's JSON Web Key Set (makes the signing key on first use)."""
    key = keys.signing_key(create=True)
    assert key is not None
    return {"keys": [jwk(key.public_key(), base_url)]}


def public_keys(document: Any, source: str) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JSON Web Key Set, by Statbox key id; ``source`` names it in errors."""
    try:
        key_set = KeySet.import_key_set(document)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{source}: not a JSON Web Key Set ({exc})") from None
    found: dict[str, Ed25519PublicKey] = {}
    for key in key_set.keys:
        public = key.get_op_key("verify") if isinstance(key, OKPKey) else None
        if isinstance(public, Ed25519PublicKey):
            found[key_id(public)] = public
    if not found:
        raise BadInput(f"{source}: no Ed25519 public key in this key set")
    return found


def revocation_list(keys: Keys, issuer: str) -> bytes:
    """This hub's revocation list as the signed document it publishes."""
    key = keys.signing_key(create=True)
    assert key is not None
    # Each certificate's digest, date and reason sealed with its id: no id (verify/<id> would
    # name the person), no bar (it names the trainee), no reason in clear (the hub's words
    # about a person); who holds the certificate reads the reason, a stranger cannot.
    entries = sorted(
        (
            {
                "digest": revocation_digest(str(entry["certificate"])),
                "at": str(entry["at"]),
                "sealed_reason": seal_reason(str(entry["certificate"]), str(entry["reason"])),
            }
            for entry in keys.revoked().values()
        ),
        key=lambda entry: entry["digest"],
    )
    return sign({"type": REVOCATIONS_TYPE, "issuer": issuer, "revoked": entries}, key)


def read_revocation_list(
    content: bytes, signers: Mapping[str, Ed25519PublicKey], source: str
) -> dict[str, dict[str, str]]:
    """The entries of a published revocation list, by :func:`revocation_digest`, once its signature
    proves it is the issuer's own; else :class:`BadInput` naming ``source``."""
    try:
        record, signer, signature = open_envelope(content)
    except ValueError as exc:
        raise BadInput(f"{source}: not a revocation list ({exc})") from None
    public = signers.get(signer)
    if record.get("type") != REVOCATIONS_TYPE or public is None:
        raise BadInput(
            f"{source}: not a revocation list signed by one of this issuer's keys: "
            "download it again from the issuer's revocations.json"
        )
    try:
        public.verify(signature, canonical(record))
    except InvalidSignature:
        raise BadInput(
            f"{source}: this revocation list was changed after its issuer signed it: "
            "download it again from the issuer"
        ) from None
    try:
        # by digest; a list published before digests names ids, read as their digests
        return {
            str(entry["digest"])
            if "digest" in entry
            else revocation_digest(str(entry["certificate"])): dict(entry)
            for entry in record["revoked"]
        }
    except (KeyError, TypeError) as exc:
        raise BadInput(f"{source}: not a revocation list ({exc})") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read {what}: {exc.strerror}") from None


def trusted_issuer(entry: Any, base: Path, index: int) -> Issuer:
    """One ``certify.trusted_issuers`` entry, its files read relative to ``base``."""
    where = f"certify.trusted_issuers[{index}] ({entry.name})"
    if entry.keys_file is not None:
        path = entry.keys_file if entry.keys_file.is_absolute() else base / entry.keys_file
        try:
            document = json.loads(_read(path, f"{where}'s keys_file"))
        except ValueError as exc:
            raise BadInput(f"{path}: {where}'s keys_file is not JSON ({exc})") from None
        keys = public_keys(document, f"{path} ({where}'s keys_file)")
    else:
        keys = public_keys(entry.jwks, f"{where}.jwks")
    revoked: dict[str, dict[str, str]] = {}
    if entry.revocations_file is not None:
        path = entry.revocations_file
        path = path if path.is_absolute() else base / path
        revoked = read_revocation_list(
            _read(path, f"{where}'s revocations_file"), keys, f"{path} ({where})"
        )
    return Issuer(entry.name, keys, revoked)


def trust(
    keys: Keys,
    trusted_issuers: Sequence[Any] = (),
    base: Path = Path("."),
    extra_keys: Sequence[Path] = (),
) -> Trust:
    """Who this hub trusts: :meth:`Keys.trust` (its own key, legacy PEM files and
    ``extra_keys``) and the settings' trusted issuers, their files relative to ``base``."""
    own = keys.trust(extra_keys)
    issuers = [trusted_issuer(e, base, i) for i, e in enumerate(trusted_issuers)]
    refuse_shared_keys(own.issuers, issuers)
    return Trust([*own.issuers, *issuers], own.own_revocations)


def refuse_shared_keys(local: Sequence[Issuer], others: Sequence[Issuer]) -> None:
    """A key belongs to exactly one issuer: public keys are public, so a hub listing another
    hub's key (or this hub's) among its own would be taken as the issuer of that hub's
    certificates, and its revocation list would revoke them. :class:`BadInput` naming both.
    ``local`` (this hub's key, the operator's own PEM files) may repeat each other."""
    holder = {kid: issuer.name for issuer in local for kid in issuer.keys}
    for issuer in others:
        for kid in issuer.keys:
            if kid in holder:
                raise BadInput(
                    f"certify.trusted_issuers: {issuer.name!r} lists the public key {kid} that "
                    f"{holder[kid]!r} also holds; a key belongs to one issuer: remove it from "
                    "the keys of the one it is not"
                )
        holder.update(dict.fromkeys(issuer.keys, issuer.name))


def hub_trust(loaded: Any, extra_keys: Sequence[Path] = ()) -> Trust:
    """Whom the hub of ``loaded`` (a :class:`statbox.settings.model.LoadedSettings`) trusts:
    its own key and its ``certify.trusted_issuers``, files relative to the settings file."""
    base = Path(loaded.source).resolve().parent if loaded.source is not None else Path.cwd()
    issuers = loaded.settings.certify.trusted_issuers
    return trust(Keys(loaded.paths.state_dir), issuers, base, extra_keys)


def export_documents(keys: Keys, issuer: str, base_url: str, out: Path) -> list[Path]:
    """Write ``keys.json`` and ``revocations.json`` into ``out``; return their paths."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "keys.json", out / "revocations.json"]
        written[0].write_text(json.dumps(jwks(keys, base_url), indent=1) + "\n")
        written[1].write_bytes(revocation_list(keys, issuer))
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot write there: {exc.strerror}") from None
    return written
