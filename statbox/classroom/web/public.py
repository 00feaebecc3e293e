"""What anyone may read without signing in: certificates checked, keys and revocations.

Built on :mod:`statbox.certify.certificates` and :mod:`statbox.certify.trust` (the verdict,
the published key set and signed revocation list); this module only finds a certificate
this hub issued by its id, for the link and QR code printed on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statbox.certify.certificates import Issuer, Keys, Status, Trust, Verdict
from statbox.certify.openbadges import verify_upload
from statbox.certify.trust import jwks, revocation_list, trust
from statbox.classroom.state import Layout
from statbox.settings.model import Settings

CERTIFICATE_ID = re.compile(r"[0-9a-f]{24}")
"""Certificate ids are 24 hex digits (statbox.certify.certificates.certificate_id)."""


@dataclass(frozen=True)
class PublicDocuments:
    """The hub's keys, whom it trusts, and where its reports put certificates."""

    keys: Keys
    others: tuple[Issuer, ...]
    """Other hubs this one trusts (settings ``certify.trusted_issuers``), read at start."""
    layout: Layout
    issuer: str
    base_url: str

    @classmethod
    def of(cls, settings: Settings, state_dir: Path, issuer: str, base_url: str) -> PublicDocuments:
        """Read once at start: the trusted issuers' files are the operator's settings."""
        keys = Keys(state_dir)
        everyone = trust(keys, settings.certify.trusted_issuers).issuers
        others = everyone[len(keys.trust().issuers) :]
        return cls(keys, tuple(others), Layout(state_dir), issuer, base_url)

    def verify(self, content: bytes) -> Verdict:
        """The verdict on a certificate's signed ``.json`` file or its Open Badges 3.0
        credential (``.badge.jwt``)."""
        # This hub's own key and revocations are read at each check: the key is made on first
        # use (perhaps by a report after this service started), and a revocation made a
        # second ago counts.
        own = self.keys.trust()
        return verify_upload(content, Trust([*own.issuers, *self.others], own.own_revocations))

    def verify_by_id(self, certificate: str) -> Verdict | None:
        """The verdict ``verify/<id>`` shows (the link and QR code on a certificate); None
        when this hub issued no such certificate. A revoked one says only that, when and by
        whom: whoever has the id (the list of revocations named ids once) learns neither the
        person nor the reason. It says so after its report dropped its files, too."""
        if not CERTIFICATE_ID.fullmatch(certificate):
            return None
        entry = self.keys.revoked().get(certificate)
        verdict = None
        if entry is None:
            content = self.certificate(certificate)
            if content is None:
                return None
            verdict = self.verify(content)
            if verdict.status is not Status.REVOKED or verdict.revocation is None:
                return verdict
            entry = dict(verdict.revocation)
        at = str(entry.get("at", "?"))
        return Verdict(
            Status.REVOKED,
            f"invalid: certificate {certificate} was revoked on {at} by {self.issuer}; "
            "whoever holds the certificate file can upload it to see why",
            revocation={"at": at, "by": self.issuer, "reason": ""},
        )

    def certificate(self, certificate: str) -> bytes | None:
        """The signed file of a certificate a report of this hub wrote, by id; else None."""
        if not CERTIFICATE_ID.fullmatch(certificate):
            return None
        runs = self.layout.root / "gradings"
        for path in sorted(runs.glob("*/*/*/run/certificates/*.json")):
            try:
                content = path.read_bytes()
                if json.loads(content)["record"]["certificate"] == certificate:
                    return content
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return None

    def key_set(self) -> dict[str, Any]:
        return jwks(self.keys, self.base_url)

    def revocations(self) -> bytes:
        return revocation_list(self.keys, self.issuer)
