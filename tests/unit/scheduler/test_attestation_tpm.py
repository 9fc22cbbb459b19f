"""The enrolled TPM AK as a node's quote key (scheduler/attestation_tpm.py): the latest
enrollment wins, an unreadable row is refused, another AK cannot be bound."""

from __future__ import annotations

import base64

import pytest

from scheduler.attestation_tpm import check_no_other_ak, enrolled_ak
from scheduler.errors import Conflict
from scheduler.tables.identity_tpm import IdentityTpmKey


def _key(node_id: str, ak_public: str, at: float) -> IdentityTpmKey:
    return IdentityTpmKey(
        node_id=node_id, ek_public="ZWs=", ak_public=ak_public, ak_name="00",
        svid_serial="1", enrolled_at=at,
    )  # fmt: skip


def _add(service, *rows: IdentityTpmKey) -> None:
    def op(session):
        for row in rows:
            session.add(row)

    service.write_sync(op)


def test_latest_enrollment_wins_and_other_nodes_have_none(service):
    first, second = base64.b64encode(b"ak-1").decode(), base64.b64encode(b"ak-2").decode()
    _add(service, _key("n1", first, 1.0))
    _add(service, _key("n1", second, 2.0))
    with service.read() as session:
        assert enrolled_ak(session, "n1") == b"ak-2"
        assert enrolled_ak(session, "n2") is None
        check_no_other_ak(session, "n1", b"ak-2")  # the enrolled AK itself: fine
        check_no_other_ak(session, "n1", None)  # an EAT-only binding: fine
        check_no_other_ak(session, "n2", b"anything")  # no TPM enrollment: first come
        with pytest.raises(Conflict) as err:
            check_no_other_ak(session, "n1", b"ak-1")
    assert err.value.extra["reason"] == "attestation_ak_enrolled"


def test_an_unreadable_enrolled_ak_is_refused(service):
    _add(service, _key("n1", "not base64!", 1.0))
    with service.read() as session, pytest.raises(Conflict) as err:
        enrolled_ak(session, "n1")
    assert err.value.extra["reason"] == "attestation_ak"
