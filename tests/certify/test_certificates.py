"""Anyone can verify, anywhere: verdicts (valid, tampered, revoked, unknown issuer) with what
a certificate certifies, each hub's published keys and revocation list, and another hub
trusting them offline (Kigali's certificate verified in Brasília) without letting anyone but
the issuer revoke, or an edited revocation list pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statbox.certify.certificates import Status, revoke, verify
from statbox.certify.trust import export_documents, trust
from statbox.cli import main
from statbox.errors import BadInput
from statbox.settings.model import TrustedIssuer
from tests.certify.certificates import BRASILIA, KIGALI, hub, issue

KIGALI_NAME = "Statbox Kigali, Rwanda regional hub"


@pytest.fixture
def hubs(tmp_path):
    """Two hubs, each with its key; Kigali has published its documents into ``published``."""
    kigali, brasilia = hub(tmp_path, "kigali"), hub(tmp_path, "brasilia")
    return kigali, brasilia, tmp_path / "published"


def publish(kigali, directory: Path) -> list[Path]:
    return export_documents(kigali, KIGALI_NAME, KIGALI, directory)


def brasilia_trusting(brasilia, directory: Path, **entry):
    """Brasília's trust, with Kigali's published documents in ``certify.trusted_issuers``."""
    issuer = TrustedIssuer(
        name="Statbox Kigali",
        keys_file=Path("keys.json"),
        revocations_file=Path("revocations.json"),
        **entry,
    )
    return trust(brasilia, [issuer], base=directory)


def test_a_certificate_of_kigali_verifies_in_brasilia_offline_and_says_what_it_certifies(hubs):
    kigali, brasilia, published = hubs
    record, content = issue(kigali, person="Amina Uwase")
    before = verify(content, brasilia)
    assert before.status is Status.UNKNOWN_ISSUER and before.certifies is None
    publish(kigali, published)
    verdict = verify(content, brasilia_trusting(brasilia, published))
    assert verdict.status is Status.VALID, verdict.message
    assert verdict.signed_by == "Statbox Kigali"
    certifies = verdict.certifies
    assert certifies is not None
    assert (certifies.person, certifies.username, certifies.course_title) == (
        "Amina Uwase",
        "alice",
        "Shop prices",
    )
    assert (certifies.score, certifies.max_score, certifies.date) == (9, 10, "2026-12-01")
    assert (certifies.issuer, certifies.issuer_as_written) == ("Statbox Kigali", KIGALI_NAME)
    assert certifies.verify_url == f"{KIGALI}/services/classroom/verify/{record['certificate']}"
    data = json.loads(json.dumps(verdict.as_json()))  # JSON-able for the public page's API
    assert data["status"] == "valid" and data["certifies"]["person"] == "Amina Uwase"
    assert "Amina Uwase (alice) passed Shop prices" in verdict.message


def test_inline_jwks_in_the_settings_is_trusted_like_a_keys_file(hubs):
    kigali, brasilia, published = hubs
    _, content = issue(kigali)
    keys_file, _ = publish(kigali, published)
    inline = TrustedIssuer(name="Statbox Kigali", jwks=json.loads(keys_file.read_text()))
    assert verify(content, trust(brasilia, [inline])).status is Status.VALID


def test_a_changed_byte_is_tampered_and_a_stranger_hub_is_an_unknown_issuer(hubs, tmp_path):
    kigali, _, _ = hubs
    _, content = issue(kigali)
    assert verify(content, kigali).status is Status.VALID
    for old, new in ((b'"score":9', b'"score":8'), (b'"trainee":"alice"', b'"trainee":"alicf"')):
        changed = content.replace(old, new)
        assert changed != content
        verdict = verify(changed, kigali)
        assert verdict.status is Status.TAMPERED and verdict.certifies is None, verdict.message
    # a hub no one trusts signs a certificate naming Kigali as its issuer
    stranger = hub(tmp_path, "stranger")
    _, forged = issue(stranger, issuer=KIGALI_NAME)
    verdict = verify(forged, kigali)
    assert verdict.status is Status.UNKNOWN_ISSUER and verdict.certifies is None
    assert verify(b"%PDF-1.7 not json", kigali).status is Status.NOT_A_CERTIFICATE


def test_revoked_by_its_issuer_is_revoked_everywhere_with_the_reason(hubs):
    kigali, brasilia, published = hubs
    record, content = issue(kigali)
    revoke(kigali, record["certificate"], "answers copied from a classmate")
    publish(kigali, published)
    here = verify(content, kigali)
    there = verify(content, brasilia_trusting(brasilia, published))
    for verdict in (here, there):
        assert verdict.status is Status.REVOKED, verdict.message
        assert verdict.revocation is not None
        assert verdict.revocation["reason"] == "answers copied from a classmate"
        assert verdict.certifies is not None  # what was revoked is shown
    assert there.revocation is not None and there.revocation["by"] == "Statbox Kigali"


def test_another_hub_cannot_revoke_kigalis_certificates(hubs, tmp_path):
    """Brasília's published list naming Kigali's certificate does not revoke it in a third hub."""
    kigali, brasilia, published = hubs
    record, content = issue(kigali)
    publish(kigali, published)
    revoke(brasilia, record["certificate"], "we do not like Kigali")
    brasilia_docs = tmp_path / "brasilia-published"
    export_documents(brasilia, "Statbox Brasília", BRASILIA, brasilia_docs)
    third = hub(tmp_path, "lisbon")
    issuers = [
        TrustedIssuer(
            name="Statbox Kigali",
            keys_file=published / "keys.json",
            revocations_file=published / "revocations.json",
        ),
        TrustedIssuer(
            name="Statbox Brasília",
            keys_file=brasilia_docs / "keys.json",
            revocations_file=brasilia_docs / "revocations.json",
        ),
    ]
    assert verify(content, trust(third, issuers)).status is Status.VALID


def test_a_trusted_hub_writing_another_hubs_name_is_shown_as_itself(hubs, tmp_path):
    _, brasilia, _ = hubs
    _, content = issue(brasilia, issuer=KIGALI_NAME)  # Brasília claims to be Kigali
    brasilia_docs = tmp_path / "brasilia-published"
    export_documents(brasilia, "Statbox Brasília", BRASILIA, brasilia_docs)
    trusted = TrustedIssuer(name="Statbox Brasília", keys_file=brasilia_docs / "keys.json")
    verdict = verify(content, trust(hub(tmp_path, "lisbon"), [trusted]))
    assert verdict.status is Status.VALID and verdict.certifies is not None
    assert verdict.certifies.issuer == "Statbox Brasília"
    assert f"issued by Statbox Brasília (the certificate says {KIGALI_NAME!r})" in verdict.message


def test_an_edited_revocation_list_is_refused_naming_the_file(hubs):
    kigali, brasilia, published = hubs
    record, _ = issue(kigali)
    revoke(kigali, record["certificate"], "plagiarism")
    _, revocations = publish(kigali, published)
    envelope = json.loads(revocations.read_bytes())
    envelope["record"]["revoked"] = []  # someone on the way drops the entry
    revocations.write_bytes(json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(BadInput, match=r"revocations\.json.*changed after its issuer signed it"):
        brasilia_trusting(brasilia, published)
    # ... and a list signed by another hub is not taken as Kigali's
    export_documents(brasilia, "Statbox Brasília", BRASILIA, published / "b")
    (published / "b" / "revocations.json").replace(revocations)
    with pytest.raises(BadInput, match="not a revocation list signed by one of this issuer"):
        brasilia_trusting(brasilia, published)


def test_the_published_key_set_holds_public_keys_only(hubs):
    kigali, _, published = hubs
    keys_file, _ = publish(kigali, published)
    document = json.loads(keys_file.read_text())
    (key,) = document["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA"
    assert "d" not in key  # never the private part
    assert key["kid"].startswith(f"{KIGALI}/services/classroom/keys.json#")


def test_the_cli_exports_keys_and_another_hubs_settings_trust_them(tmp_path, capsys):
    def settings(name, extra=""):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"hub: {{name: Statbox {name}, region: R, public_url: https://{name}.example}}\n"
            f"paths: {{state_dir: {tmp_path / name}}}\n{extra}"
        )
        return str(path)

    kigali = settings("kigali")
    assert main(["certify", "keys", "--out", str(tmp_path / "docs"), "--config", kigali]) == 0
    assert "trusted_issuers" in capsys.readouterr().out
    record, content = issue(hub(tmp_path, "kigali"))
    certificate = tmp_path / "alice.json"
    certificate.write_bytes(content)
    trusting = (
        "certify:\n  trusted_issuers:\n  - {name: Statbox Kigali, keys_file: docs/keys.json,"
        " revocations_file: docs/revocations.json}\n"
    )
    brasilia = settings("brasilia", trusting)
    assert main(["certify", "verify", str(certificate), "--config", settings("lisbon")]) == 1
    assert "unknown issuer" in capsys.readouterr().out
    assert main(["certify", "verify", str(certificate), "--json", "--config", brasilia]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["status"] == "valid" and verdict["signed_by"] == "Statbox Kigali"
    # the certificate is revoked at home; Brasília sees it once it has the new list
    revoking = ["certify", "revoke", record["certificate"], "--reason", "x", "--config", kigali]
    assert main(revoking) == 0
    assert main(["certify", "keys", "--out", str(tmp_path / "docs"), "--config", kigali]) == 0
    capsys.readouterr()
    assert main(["certify", "verify", str(certificate), "--config", brasilia]) == 1
    assert "revoked on" in capsys.readouterr().out


BAD_TRUST = {
    "both-key-sources": (
        "trusted_issuers: [{name: K, keys_file: k.json, jwks: {keys: []}}]",
        "exactly one of keys_file and jwks",
    ),
    "missing-keys-file": (
        "trusted_issuers: [{name: K, keys_file: nowhere.json}]",
        "nowhere.json: cannot read certify.trusted_issuers[0] (K)'s keys_file",
    ),
    "not-a-key-set": ("trusted_issuers: [{name: K, jwks: {keys: 3}}]", "not a JSON Web Key Set"),
    "bad-username": ('people: {"Not A User": Someone}', "Not A User"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRUST))
def test_bad_trust_settings_exit_2_naming_the_key(case, tmp_path, capsys):
    setting, message = BAD_TRUST[case]
    config = tmp_path / "statbox.yaml"
    config.write_text(f"paths: {{state_dir: {tmp_path / 'state'}}}\ncertify: {{{setting}}}\n")
    _, content = issue(hub(tmp_path, "kigali"))
    (tmp_path / "alice.json").write_bytes(content)
    assert main(["certify", "verify", str(tmp_path / "alice.json"), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
