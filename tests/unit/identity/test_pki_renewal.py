"""Attest-to-renew and renewal at half-life."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pytest

from identity.pki import (
    NO_REVOCATIONS,
    CertificateAuthority,
    CsrError,
    PkiError,
    RenewalError,
    VerifiedSvid,
    renew_at,
    renew_svid,
    should_renew,
    verify_client_svid,
)
from tests.unit.identity.test_pki_support import T0, Clock, dt, make_ca, make_csr


class Status(Enum):
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"


@dataclass(frozen=True)
class Result:
    status: object


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ca(clock: Clock) -> CertificateAuthority:
    return make_ca(clock)


@pytest.fixture
def current(ca: CertificateAuthority) -> VerifiedSvid:
    issued = ca.issue_svid(make_csr(), "acme", "n1")
    return verify_client_svid(issued.chain_pem, ca.trust_bundle(), T0, NO_REVOCATIONS)


@pytest.mark.parametrize(
    "attestation",
    [
        True,
        "affirming",
        "AFFIRMING",
        Status.AFFIRMING,
        Result(Status.AFFIRMING),
        Result("affirming"),
    ],
)
def test_renewal_with_passing_attestation(
    ca: CertificateAuthority, current: VerifiedSvid, clock: Clock, attestation: object
) -> None:
    clock.advance(1800)
    renewed = renew_svid(ca, make_csr(), current, attestation)
    assert renewed.spiffe_id == current.spiffe_id
    assert renewed.serial != current.serial
    assert renewed.certificate.not_valid_before_utc == dt(T0 + 1800)
    got = verify_client_svid(renewed.chain_pem, ca.trust_bundle(), clock.now, NO_REVOCATIONS)
    assert (got.operator, got.node_id) == ("acme", "n1")


def test_renewal_without_attestation(ca: CertificateAuthority, current: VerifiedSvid) -> None:
    with pytest.raises(RenewalError) as info:
        renew_svid(ca, make_csr(), current, None)
    assert info.value.reason == "attestation_required"


@pytest.mark.parametrize(
    "attestation",
    [
        False,
        "contraindicated",
        "warning",
        "",
        "unknown",
        1,
        Status.CONTRAINDICATED,
        Result("warning"),
        Result(None),
    ],
)
def test_renewal_with_failing_attestation(
    ca: CertificateAuthority, current: VerifiedSvid, attestation: object
) -> None:
    with pytest.raises(RenewalError) as info:
        renew_svid(ca, make_csr(), current, attestation)
    assert info.value.reason == "attestation_failed"


def test_warning_passes_only_when_accepted(ca: CertificateAuthority, current: VerifiedSvid) -> None:
    renewed = renew_svid(ca, make_csr(), current, Status.WARNING, accept_warning=True)
    assert renewed.spiffe_id == current.spiffe_id


def test_renewal_still_checks_the_csr_and_operator(
    ca: CertificateAuthority, current: VerifiedSvid
) -> None:
    with pytest.raises(CsrError):
        renew_svid(ca, make_csr(ca=True), current, True)
    ca.revoke_operator("acme")
    with pytest.raises(PkiError) as info:
        renew_svid(ca, make_csr(), current, True)
    assert info.value.reason == "operator_revoked"


def test_should_renew_at_half_life(ca: CertificateAuthority) -> None:
    cert = ca.issue_svid(make_csr(), "acme", "n1").certificate
    assert renew_at(cert) == dt(T0 + 1800)
    assert not should_renew(cert, T0)
    assert not should_renew(cert, T0 + 1799)
    assert should_renew(cert, T0 + 1800)
    assert should_renew(cert, dt(T0 + 4000))
