"""The scheduler's TLS server certificate: profile, refusals, never a client SVID."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from identity.pki import (
    NO_REVOCATIONS,
    CertificateAuthority,
    PkiError,
    SvidVerificationError,
    issue_server_certificate,
    verify_client_svid,
)

NOW = 1_800_000_000.0


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("cntrust.local", clock=lambda: NOW)


def test_profile(ca):
    issued = issue_server_certificate(ca, ["sched.example", "127.0.0.1", "::1"])
    cert = issued.certificate
    cert.verify_directly_issued_by(ca.root_certificate)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["sched.example"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cntrust.local/scheduler"
    ]
    assert issued.not_after.timestamp() == NOW + 30 * 86400
    assert b"PRIVATE KEY" in issued.private_key_pem


@pytest.mark.parametrize("hosts", [[], ["bad host"], ["a..b"], ["x" * 300], ["h"] * 33])
def test_bad_hosts_refused(ca, hosts):
    with pytest.raises(PkiError) as err:
        issue_server_certificate(ca, hosts)
    assert err.value.reason == "host"


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(days=91)])
def test_bad_lifetime_refused(ca, ttl):
    with pytest.raises(PkiError) as err:
        issue_server_certificate(ca, ["localhost"], ttl=ttl)
    assert err.value.reason == "lifetime"


def test_server_certificate_is_never_a_node_svid(ca):
    issued = issue_server_certificate(ca, ["localhost"])
    with pytest.raises(SvidVerificationError) as err:
        verify_client_svid(issued.certificate_pem, ca.trust_bundle(), NOW, NO_REVOCATIONS)
    assert err.value.reason in ("untrusted_chain", "missing_client_auth")
