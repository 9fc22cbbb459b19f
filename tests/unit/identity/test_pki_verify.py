"""verify_client_svid: one negative test per numbered step, each with its stable reason."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from identity.errors import VerificationError
from identity.pki import (
    NO_REVOCATIONS,
    CertificateAuthority,
    IssuedSvid,
    OperatorCa,
    PkiError,
    RevocationSet,
    SpiffeIdError,
    SvidVerificationError,
    TrustBundle,
    VerifiedSvid,
    verify_client_svid,
)
from tests.unit.identity.test_pki_support import (
    T0,
    TD,
    Clock,
    der,
    dt,
    forge_leaf,
    make_ca,
    make_csr,
    pem,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ca(clock: Clock) -> CertificateAuthority:
    return make_ca(clock, operators=("acme", "beta"))


@pytest.fixture
def svid(ca: CertificateAuthority) -> IssuedSvid:
    return ca.issue_svid(make_csr(), "acme", "n1")


def refused(
    chain: object,
    bundle: TrustBundle,
    now: float = T0 + 1,
    revocations: RevocationSet = NO_REVOCATIONS,
) -> SvidVerificationError:
    with pytest.raises(SvidVerificationError) as info:
        verify_client_svid(chain, bundle, now, revocations)  # type: ignore[arg-type]
    assert isinstance(info.value, VerificationError)
    return info.value


def test_valid_svid_in_every_encoding(ca: CertificateAuthority, svid: IssuedSvid) -> None:
    bundle = ca.trust_bundle()
    leaf, op = svid.certificate, ca.operator("acme").certificate
    for chain in (svid.chain_pem, svid.leaf_pem, der(leaf), [der(leaf), der(op)], (der(leaf),)):
        got = verify_client_svid(chain, bundle, T0 + 1, NO_REVOCATIONS)
        assert got == VerifiedSvid(
            spiffe_id=svid.spiffe_id,
            operator="acme",
            node_id="n1",
            serial=leaf.serial_number,
            not_after=leaf.not_valid_after_utc,
            issuer_serial=op.serial_number,
        )
    assert verify_client_svid(svid.chain_pem, bundle, dt(T0 + 1), NO_REVOCATIONS).node_id == "n1"
    with pytest.raises(FrozenInstanceError):
        got.node_id = "x"  # type: ignore[misc]


def test_bundle_from_pem_verifies(ca: CertificateAuthority, svid: IssuedSvid) -> None:
    bundle = TrustBundle.from_pem(TD, svid.trust_bundle_pem)  # roots only, as a node has it
    assert verify_client_svid(svid.chain_pem, bundle, T0 + 1, NO_REVOCATIONS).operator == "acme"
    # with roots only, a leaf without its operator CA cannot be chained
    assert refused(svid.leaf_pem, bundle).reason == "untrusted_chain"
    full = TrustBundle.from_pem(
        TD, ca.trust_bundle().to_pem(), ca.trust_bundle().intermediates_pem()
    )
    assert verify_client_svid(svid.leaf_pem, full, T0 + 1, NO_REVOCATIONS).node_id == "n1"


# step 1 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "chain",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"\x30\x82\xff\xff",
        b"A" * 70_000,
        [],
        [b"x"],
        [b"\x30\x00"] * 9,
        "text",
        None,
    ],
)
def test_step1_malformed(ca: CertificateAuthority, chain: object) -> None:
    err = refused(chain, ca.trust_bundle())
    assert (err.reason, err.step) == ("malformed", 1)


# step 2 ----------------------------------------------------------------------------------


def test_step2_operator_ca_as_leaf(ca: CertificateAuthority) -> None:
    op = ca.operator("acme").certificate
    err = refused(pem(op, ca.root_certificate), ca.trust_bundle())
    assert (err.reason, err.step) == ("ca_as_leaf", 2)


def test_step2_root_as_leaf(ca: CertificateAuthority) -> None:
    assert refused(pem(ca.root_certificate), ca.trust_bundle()).reason == "ca_as_leaf"


def test_step2_leaf_with_ca_bit(ca: CertificateAuthority) -> None:
    leaf = forge_leaf(ca.operator("acme"), ca=True)
    assert refused(pem(leaf), ca.trust_bundle()).reason == "ca_as_leaf"


# step 3 ----------------------------------------------------------------------------------


def test_step3_chain_from_another_root(ca: CertificateAuthority, clock: Clock) -> None:
    other = make_ca(clock)  # same trust domain and operator name, different root
    foreign = other.issue_svid(make_csr(), "acme", "n1")
    err = refused(foreign.chain_pem, ca.trust_bundle())
    assert (err.reason, err.step) == ("untrusted_chain", 3)
    assert refused(foreign.leaf_pem, ca.trust_bundle()).reason == "untrusted_chain"


def test_step3_foreign_intermediate_presented_under_our_root(
    ca: CertificateAuthority, clock: Clock
) -> None:
    other = make_ca(clock)
    foreign = other.issue_svid(make_csr(), "acme", "n1")
    chain = foreign.leaf_pem + pem(other.operator("acme").certificate, ca.root_certificate)
    assert refused(chain, ca.trust_bundle()).reason == "untrusted_chain"


def test_step3_leaf_signed_directly_by_root(ca: CertificateAuthority) -> None:
    root_as_issuer = OperatorCa("acme", ca.root_certificate, ca.root_key)
    leaf = forge_leaf(root_as_issuer)
    assert refused(pem(leaf), ca.trust_bundle()).reason == "untrusted_chain"


# step 4 ----------------------------------------------------------------------------------


def test_step4_expired(ca: CertificateAuthority, svid: IssuedSvid) -> None:
    err = refused(svid.chain_pem, ca.trust_bundle(), now=T0 + 3601)
    assert (err.reason, err.step) == ("expired", 4)
    assert err.serial == svid.serial
    verify_client_svid(svid.chain_pem, ca.trust_bundle(), T0 + 3600, NO_REVOCATIONS)


def test_step4_not_yet_valid(ca: CertificateAuthority, svid: IssuedSvid) -> None:
    err = refused(svid.chain_pem, ca.trust_bundle(), now=T0 - 1)
    assert (err.reason, err.step) == ("not_yet_valid", 4)


def test_step4_operator_ca_expired(clock: Clock) -> None:
    ca = CertificateAuthority.create(TD, clock=clock)
    op = ca.add_operator("acme", ttl=timedelta(minutes=10))
    leaf = forge_leaf(op, not_after=T0 + 7200)
    err = refused(pem(leaf, op.certificate), ca.trust_bundle(), now=T0 + 3600)
    assert err.reason == "expired"
    assert err.serial == op.certificate.serial_number


# step 5 ----------------------------------------------------------------------------------


def test_step5_no_eku(ca: CertificateAuthority) -> None:
    err = refused(pem(forge_leaf(ca.operator("acme"), eku=None)), ca.trust_bundle())
    assert (err.reason, err.step) == ("missing_client_auth", 5)


def test_step5_server_auth_only(ca: CertificateAuthority) -> None:
    leaf = forge_leaf(ca.operator("acme"), eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    assert refused(pem(leaf), ca.trust_bundle()).reason == "missing_client_auth"


def test_step5_key_usage_without_digital_signature(ca: CertificateAuthority) -> None:
    leaf = forge_leaf(ca.operator("acme"), digital_signature=False)
    assert refused(pem(leaf), ca.trust_bundle()).reason == "key_usage"


def test_step5_unknown_critical_extension(ca: CertificateAuthority) -> None:
    leaf = forge_leaf(ca.operator("acme"), unknown_critical=True)
    assert refused(pem(leaf), ca.trust_bundle()).reason == "critical_extension"


# step 6 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "extra", "reason"),
    [
        (None, (), "spiffe_id"),
        (
            f"spiffe://{TD}/operator/acme/node/n1",
            (f"spiffe://{TD}/operator/acme/node/n2",),
            "spiffe_id",
        ),
        (f"spiffe://{TD}/operator/acme/node/..", (), "spiffe_id"),
        (f"spiffe://{TD}/operator/acme/node/%2e%2e", (), "spiffe_id"),
        (f"SPIFFE://{TD}/operator/acme/node/n1", (), "spiffe_id"),
        (f"spiffe://{TD}/operator/acme/node/n1/", (), "spiffe_id"),
        (f"spiffe://{TD}/admin", (), "spiffe_id"),
        ("spiffe://evil.org/operator/acme/node/n1", (), "other_trust_domain"),
    ],
)
def test_step6_spiffe_id(
    ca: CertificateAuthority, uri: str | None, extra: tuple[str, ...], reason: str
) -> None:
    leaf = forge_leaf(ca.operator("acme"), uri=uri, extra_uris=extra)
    err = refused(pem(leaf), ca.trust_bundle())
    assert (err.reason, err.step) == (reason, 6)


# step 7 ----------------------------------------------------------------------------------


def test_step7_operator_mismatch(ca: CertificateAuthority) -> None:
    leaf = forge_leaf(ca.operator("acme"), uri=f"spiffe://{TD}/operator/beta/node/n1")
    err = refused(pem(leaf), ca.trust_bundle())
    assert (err.reason, err.step) == ("operator_mismatch", 7)


# step 8 ----------------------------------------------------------------------------------


def test_step8_revoked_serial(ca: CertificateAuthority, svid: IssuedSvid) -> None:
    err = refused(
        svid.chain_pem, ca.trust_bundle(), revocations=RevocationSet.of(serials=[svid.serial])
    )
    assert (err.reason, err.step) == ("revoked", 8)


def test_step8_revoked_spiffe_id(ca: CertificateAuthority, svid: IssuedSvid) -> None:
    revoked = RevocationSet.of(spiffe_ids=[svid.spiffe_id.uri])
    assert refused(svid.chain_pem, ca.trust_bundle(), revocations=revoked).reason == "revoked"
    # a new certificate for the same node is refused too
    fresh = ca.issue_svid(make_csr(), "acme", "n1")
    assert refused(fresh.chain_pem, ca.trust_bundle(), revocations=revoked).reason == "revoked"
    other = ca.issue_svid(make_csr(), "acme", "n2")
    verify_client_svid(other.chain_pem, ca.trust_bundle(), T0 + 1, revoked)


def test_step8_operator_revoked_by_name_or_ca_serial(
    ca: CertificateAuthority, svid: IssuedSvid
) -> None:
    op_serial = ca.operator("acme").certificate.serial_number
    for revocations in (
        RevocationSet.of(operators=["acme"]),
        RevocationSet.of(serials=[op_serial]),
    ):
        err = refused(svid.chain_pem, ca.trust_bundle(), revocations=revocations)
        assert (err.reason, err.step) == ("operator_revoked", 8)
    merged = RevocationSet.of(serials=[1]).union(RevocationSet.of(operators=["beta"]))
    assert merged == RevocationSet.of(serials=[1], operators=["beta"])
    verify_client_svid(svid.chain_pem, ca.trust_bundle(), T0 + 1, merged)


# step 9 ----------------------------------------------------------------------------------


def test_step9_rfc5280_path_validation_for_ecdsa(clock: Clock) -> None:
    ca = make_ca(clock, key_algorithm="ecdsa-p256")
    node_key = ec.generate_private_key(ec.SECP256R1())
    good = ca.issue_svid(make_csr(node_key), "acme", "n1")
    verify_client_svid(good.chain_pem, ca.trust_bundle(), T0 + 1, NO_REVOCATIONS)
    # passes steps 1-8 but breaks RFC 5280: a critical SAN beside a non-empty subject
    leaf = forge_leaf(ca.operator("acme"), san_critical=True, key=node_key)
    err = refused(pem(leaf), ca.trust_bundle())
    assert (err.reason, err.step) == ("path_validation", 9)


def test_step1_regressions_found_by_fuzzing(ca: CertificateAuthority, svid: IssuedSvid) -> None:
    leaf = der(svid.certificate)
    version_v3 = b"\xa0\x03\x02\x01\x02"
    assert version_v3 in leaf
    bad_version = leaf.replace(version_v3, b"\xa0\x03\x02\x01\x07", 1)
    ed25519_oid = b"\x06\x03\x2b\x65\x70"
    unknown_key = leaf.replace(ed25519_oid + b"\x03\x21", b"\x06\x03\x2a\x65\x70\x03\x21", 1)
    assert unknown_key != leaf
    for chain in (bad_version, unknown_key, [unknown_key]):
        err = refused(chain, ca.trust_bundle())
        assert (err.reason, err.step) == ("malformed", 1)


def test_step4_root_expired(clock: Clock) -> None:

    ca = CertificateAuthority.create(TD, clock=clock, root_ttl=timedelta(minutes=20))
    # an operator CA that outlives the root (our CA clamps; a forged one need not)
    op_key = ed25519.Ed25519PrivateKey.generate()
    root_ski = ca.root_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    op_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "acme CA")]))
        .issuer_name(ca.root_certificate.subject)
        .public_key(op_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt(T0 - 60))
        .not_valid_after(dt(T0 + 86400))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{TD}/operator/acme")]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(op_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski.value), False
        )
        .sign(ca.root_key, None)
    )
    op = OperatorCa("acme", op_cert, op_key)
    leaf = forge_leaf(op, not_after=T0 + 7200)
    bundle = TrustBundle(TD, (ca.root_certificate,), (op_cert,))
    verify_client_svid(pem(leaf), bundle, T0 + 60, NO_REVOCATIONS)
    err = refused(pem(leaf), bundle, now=T0 + 3600)
    assert (err.reason, err.serial) == ("expired", ca.root_certificate.serial_number)


def test_naive_datetime_is_refused(ca: CertificateAuthority, svid: IssuedSvid) -> None:

    with pytest.raises(PkiError) as info:
        verify_client_svid(svid.chain_pem, ca.trust_bundle(), datetime(2027, 1, 1), NO_REVOCATIONS)
    assert info.value.reason == "naive_datetime"


def test_bundle_trust_domain_is_validated(ca: CertificateAuthority) -> None:

    with pytest.raises(SpiffeIdError):
        TrustBundle("Bad Domain", (ca.root_certificate,))
