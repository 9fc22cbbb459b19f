"""The CA: root + per-operator CAs, SVID profile, rotation, revocation, directory store."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from identity.errors import IdentityError
from identity.pki import (
    NO_REVOCATIONS,
    CaStoreError,
    CertificateAuthority,
    PkiError,
    SpiffeIdError,
    SvidVerificationError,
    load_ca,
    save_ca,
    verify_client_svid,
)
from tests.unit.identity.test_pki_support import T0, TD, Clock, make_ca, make_csr, ttl_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_svid_profile(clock: Clock, algorithm: str) -> None:
    ca = make_ca(clock, key_algorithm=algorithm)
    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(f"spiffe://{TD}/operator/other/node/admin"),
        x509.DNSName("scheduler.example.org"),
    ]
    issued = ca.issue_svid(make_csr(sans=sans), "acme", "n1")
    cert = issued.certificate
    ext = cert.extensions
    # the assigned SPIFFE ID is the only name; requested SANs are ignored
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier(f"spiffe://{TD}/operator/acme/node/n1")]
    assert str(issued.spiffe_id) == f"spiffe://{TD}/operator/acme/node/n1"
    assert "requested-name" not in cert.subject.rfc4514_string()
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    assert ttl_s(cert) == 3600
    assert cert.not_valid_before_utc.timestamp() == T0
    op_ski = ca.operator("acme").certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    )
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == op_ski.value.digest
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    # leaf + chain + trust bundle, PEM
    chain = x509.load_pem_x509_certificates(issued.chain_pem)
    assert chain == [cert, ca.operator("acme").certificate]
    assert x509.load_pem_x509_certificates(issued.trust_bundle_pem) == [ca.root_certificate]
    assert x509.load_pem_x509_certificate(issued.leaf_pem) == cert
    verified = verify_client_svid(issued.chain_pem, ca.trust_bundle(), clock.now, NO_REVOCATIONS)
    assert (verified.operator, verified.node_id) == ("acme", "n1")


def test_server_auth_is_optional(clock: Clock) -> None:
    cert = make_ca(clock).issue_svid(make_csr(), "acme", "n1", server_auth=True).certificate
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}


def test_serials_are_random_and_distinct(clock: Clock) -> None:
    ca = make_ca(clock)
    serials = {ca.issue_svid(make_csr(), "acme", "n1").serial for _ in range(20)}
    assert len(serials) == 20
    assert all(s.bit_length() > 64 for s in serials)


def test_ca_profiles(clock: Clock) -> None:
    ca = make_ca(clock)
    root, op = ca.root_certificate, ca.operator("acme").certificate
    root_bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    op_bc = op.extensions.get_extension_for_class(x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca and root_bc.value.path_length == 1
    assert op_bc.critical and op_bc.value.ca and op_bc.value.path_length == 0
    op.verify_directly_issued_by(root)
    op_san = op.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert op_san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://{TD}/operator/acme"
    ]
    assert isinstance(ca.root_key, ed25519.Ed25519PrivateKey)
    assert isinstance(
        make_ca(clock, key_algorithm="ecdsa-p256").root_key, ec.EllipticCurvePrivateKey
    )


def test_custom_lifetime_and_limits(clock: Clock) -> None:
    ca = make_ca(clock)
    assert (
        ttl_s(ca.issue_svid(make_csr(), "acme", "n1", ttl=timedelta(minutes=10)).certificate) == 600
    )
    for bad in (timedelta(0), timedelta(seconds=-1), timedelta(hours=25)):
        with pytest.raises(PkiError) as info:
            ca.issue_svid(make_csr(), "acme", "n1", ttl=bad)
        assert info.value.reason == "lifetime"


def test_svid_never_outlives_operator_ca(clock: Clock) -> None:
    ca = CertificateAuthority.create(TD, clock=clock)
    ca.add_operator("acme", ttl=timedelta(minutes=30))
    cert = ca.issue_svid(make_csr(), "acme", "n1").certificate
    assert cert.not_valid_after_utc == ca.operator("acme").certificate.not_valid_after_utc
    clock.advance(3600)
    with pytest.raises(PkiError) as info:
        ca.issue_svid(make_csr(), "acme", "n1")
    assert info.value.reason == "operator_ca_expired"


def test_unknown_and_duplicate_operator(clock: Clock) -> None:
    ca = make_ca(clock)
    with pytest.raises(PkiError) as info:
        ca.issue_svid(make_csr(), "nobody", "n1")
    assert info.value.reason == "unknown_operator"
    with pytest.raises(PkiError) as info:
        ca.add_operator("acme")
    assert info.value.reason == "exists"
    assert isinstance(info.value, IdentityError)


@pytest.mark.parametrize("node_id", ["..", "N1", "a/b", "", "x" * 64, "%2e"])
def test_unsafe_node_ids_are_refused(clock: Clock, node_id: str) -> None:
    with pytest.raises(SpiffeIdError):
        make_ca(clock).issue_svid(make_csr(), "acme", node_id)


def test_unsafe_operator_names_and_trust_domains_are_refused(clock: Clock) -> None:
    with pytest.raises(SpiffeIdError):
        make_ca(clock).add_operator("../etc")
    with pytest.raises(SpiffeIdError):
        CertificateAuthority.create("Example.ORG", clock=clock)


def test_operator_rotation_keeps_old_svids_valid(clock: Clock) -> None:
    ca = make_ca(clock, operators=("acme", "beta"))
    old = ca.issue_svid(make_csr(), "acme", "n1")
    beta_before = ca.operator("beta").certificate
    old_op = ca.operator("acme").certificate
    rotated = ca.rotate_operator("acme")
    assert rotated.certificate != old_op
    assert rotated.previous == (old_op,)
    assert ca.operator("beta").certificate == beta_before  # other operators untouched
    new = ca.issue_svid(make_csr(), "acme", "n2")
    new.certificate.verify_directly_issued_by(rotated.certificate)
    bundle = ca.trust_bundle()
    for issued in (old, new):
        verify_client_svid(issued.chain_pem, bundle, clock.now, NO_REVOCATIONS)
        verify_client_svid(issued.leaf_pem, bundle, clock.now, NO_REVOCATIONS)


def test_operator_revocation_is_alone(clock: Clock) -> None:
    ca = make_ca(clock, operators=("acme", "beta"))
    acme = ca.issue_svid(make_csr(), "acme", "n1")
    beta = ca.issue_svid(make_csr(), "beta", "n1")
    ca.revoke_operator("acme")
    with pytest.raises(PkiError) as info:
        ca.issue_svid(make_csr(), "acme", "n2")
    assert info.value.reason == "operator_revoked"
    with pytest.raises(PkiError):
        ca.rotate_operator("acme")
    revocations = ca.revocation_set()
    assert revocations.operators == {"acme"}
    with pytest.raises(SvidVerificationError) as err:
        verify_client_svid(acme.chain_pem, ca.trust_bundle(), clock.now, revocations)
    assert err.value.reason == "operator_revoked"
    verify_client_svid(beta.chain_pem, ca.trust_bundle(), clock.now, revocations)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_save_and_load(tmp_path: Path, clock: Clock) -> None:
    ca = make_ca(clock, operators=("acme", "beta"))
    ca.rotate_operator("beta")
    ca.revoke_operator("acme")
    issued = ca.issue_svid(make_csr(), "beta", "n1")
    target = tmp_path / "ca"
    save_ca(ca, target)
    assert mode(target) == 0o700
    for key_file in (
        target / "root.key",
        target / "operators" / "acme" / "ca.key",
        target / "operators" / "beta" / "ca.key",
    ):
        assert mode(key_file) == 0o600
    loaded = load_ca(target, clock=clock)
    assert loaded.trust_domain == TD
    assert loaded.root_certificate == ca.root_certificate
    assert [op.operator for op in loaded.operators()] == ["acme", "beta"]
    assert loaded.operator("acme").revoked
    assert loaded.operator("beta").previous == ca.operator("beta").previous
    assert loaded.revocation_set() == ca.revocation_set()
    # the loaded CA issues SVIDs that verify against the original bundle, and vice versa
    again = loaded.issue_svid(make_csr(), "beta", "n2")
    verify_client_svid(again.chain_pem, ca.trust_bundle(), clock.now, NO_REVOCATIONS)
    verify_client_svid(issued.chain_pem, loaded.trust_bundle(), clock.now, NO_REVOCATIONS)
    save_ca(loaded, target)  # saving over an existing directory works


def test_key_readable_by_others_is_refused(tmp_path: Path, clock: Clock) -> None:
    save_ca(make_ca(clock), tmp_path)
    os.chmod(tmp_path / "operators" / "acme" / "ca.key", 0o644)
    with pytest.raises(CaStoreError) as info:
        load_ca(tmp_path)
    assert info.value.reason == "permissions"
    assert info.value.path.endswith("ca.key")


def test_missing_and_malformed_store(tmp_path: Path, clock: Clock) -> None:
    with pytest.raises(CaStoreError) as info:
        load_ca(tmp_path / "absent")
    assert info.value.reason == "missing"
    save_ca(make_ca(clock), tmp_path)
    meta = tmp_path / "ca.json"
    for bad in (
        b"not json",
        b"[]",
        json.dumps({"format": "other"}).encode(),
        json.dumps(
            {"format": "cntrust-ca/1", "trust_domain": TD, "operators": {"../x": {}}}
        ).encode(),
        json.dumps({"format": "cntrust-ca/1", "trust_domain": "BAD", "operators": {}}).encode(),
    ):
        meta.write_bytes(bad)
        with pytest.raises(CaStoreError) as info:
            load_ca(tmp_path)
        assert info.value.reason == "malformed"
    meta.write_bytes(
        json.dumps({"format": "cntrust-ca/1", "trust_domain": TD, "operators": {}}).encode()
    )
    (tmp_path / "root.crt").write_bytes(b"garbage")
    with pytest.raises(CaStoreError) as info:
        load_ca(tmp_path)
    assert info.value.reason == "malformed"
    save_ca(make_ca(clock), tmp_path)
    (tmp_path / "root.key").write_bytes(b"garbage")
    with pytest.raises(CaStoreError) as info:
        load_ca(tmp_path)
    assert info.value.reason == "malformed"
    assert mode(tmp_path / "root.key") == 0o600
