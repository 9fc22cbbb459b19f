"""Push-mode TPM quote attestation of a node enrolled with ``--tpm``, against a real swtpm.

The node enrolls with ``cntrust node enroll --tpm`` (EK certificate + AK, MakeCredential /
ActivateCredential), registers over mTLS with its SVID, and attests as the agent does
(:class:`scheduler.attest_agent.Attester`, which finds the enrolled TPM in its dir): the
agent and runtime digests are extended into PCR 23 and quoted with the scheduler's nonce;
the scheduler verifies with the AK recorded at enrollment and replays the log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl

import httpx
import pytest
from sqlmodel import select

from identity.attestation import Tpm2Tools
from scheduler.agent_identity import AgentIdentity
from scheduler.attest_agent import Attester, local_measurements
from scheduler.attest_tpm import STATE_FILE, TpmAttestError, TpmQuoter, evidence_body
from scheduler.tables.attestation import AttestationResultRow
from tests.integration.mtls_helpers import tls_client
from tests.integration.test_swtpm import BIN_DIR, Swtpm, swtpm  # noqa: F401 (fixture)
from tests.integration.test_tpm_enroll import (  # noqa: F401 (fixtures)
    admin,
    cli,
    ek_ca_file,
    join_token,
    replica,
)

pytestmark = pytest.mark.swtpm


@pytest.fixture
def node(replica, swtpm, tmp_path):  # noqa: F811
    """A node enrolled with --tpm and registered over mTLS: (dir, ssl context)."""
    node_dir = tmp_path / "tpm-node"
    proc = cli(
        *("node", "enroll", "--tpm", "--tcti", swtpm.tcti),
        *("--server", replica.tls_url, "--ca-bundle", str(replica.tls.ca_path)),
        *("--token", join_token(replica), "--dir", str(node_dir), "--node-id", "tpm-node"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ctx = AgentIdentity.load(node_dir).ssl_context()
    with tls_client(replica.tls_url, ctx) as client:
        resp = client.post("/v1/nodes/register", json={"cpu_cores": 1, "memory_mb": 64})
    assert resp.status_code == 201, resp.text
    return node_dir, ctx


def _attest(replica, ctx: ssl.SSLContext, attester: Attester) -> dict:  # noqa: F811
    async def once() -> dict:
        async with httpx.AsyncClient(base_url=replica.tls_url, verify=ctx, timeout=30) as c:
            return await attester.attest_once(c, {}, "tpm-node")

    return asyncio.run(once())


def _nonce(client: httpx.Client) -> tuple[bytes, str]:
    resp = client.post("/v1/attestation/nonce")
    assert resp.status_code == 201, resp.text
    text = resp.json()["nonce"]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), text


def test_enrolled_node_attests_with_quotes(replica, node):  # noqa: F811
    node_dir, ctx = node
    assert json.loads((node_dir / "tpm" / STATE_FILE).read_text())["pcr"] == 23
    attester = Attester(node_dir)
    assert attester.use_tpm
    result = _attest(replica, ctx, attester)
    assert result["status"] == "affirming", result["reasons"]
    assert any(
        "quote signed by the enrolled AK" in r for r in result["reasons"]["instance-identity"]
    )
    # a second round (PCR reset and extended again) is affirming too; both are history
    assert _attest(replica, ctx, attester)["status"] == "affirming"
    with replica.service.read() as session:
        rows = session.exec(
            select(AttestationResultRow).where(AttestationResultRow.node_id == "tpm-node")
        ).all()
    assert [r.evidence_type for r in rows] == ["tpm-quote", "tpm-quote"]
    with httpx.Client(base_url=replica.plain_url) as client:  # what `node show` reads
        shown = client.get("/v1/attestation/nodes/tpm-node", headers=admin(replica)).json()
    assert shown["identity"]["tpm_enrolled"] is True
    assert shown["attestation"]["status"] == "affirming"


def test_quote_signed_by_another_ak_is_refused(replica, node, swtpm, tmp_path):  # noqa: F811
    _, ctx = node
    other = Tpm2Tools(swtpm.tcti, tmp_path / "other-ak", bin_dir=BIN_DIR)
    other.create_ak()
    quoter = TpmQuoter(other)
    with tls_client(replica.tls_url, ctx) as client:
        nonce, text = _nonce(client)
        body = quoter.evidence(nonce, text, local_measurements())
        resp = client.post("/v1/attestation/evidence", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["type"].endswith("attestation-evidence-signature")
    with replica.service.read() as session:  # refused evidence stores no result
        assert session.exec(select(AttestationResultRow)).all() == []


def test_pcr_and_log_mismatch_is_contraindicated(replica, node):  # noqa: F811
    node_dir, ctx = node
    quoter = TpmQuoter.load(node_dir)
    measured = local_measurements()
    with tls_client(replica.tls_url, ctx) as client:
        nonce, text = _nonce(client)
        quoter.measure_into_pcr(measured)  # the TPM holds the real digests ...
        quote, signature = quoter.quote(nonce)
        claimed = {**measured, "agent": bytes(32)}  # ... the log claims another agent
        from identity.attestation import MeasurementLog

        forged = MeasurementLog.of((23, d, n) for n, d in sorted(claimed.items()))
        resp = client.post(
            "/v1/attestation/evidence", json=evidence_body(text, quote, signature, forged)
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "contraindicated" and not body["permits_work"]
    assert any("PCR" in r or "pcr" in r for rs in body["reasons"].values() for r in rs)


def test_drifted_agent_digest_is_contraindicated(replica, node):  # noqa: F811
    node_dir, ctx = node
    drifted = {**local_measurements(), "agent": b"\x01" * 32}
    result = _attest(replica, ctx, Attester(node_dir, measure=lambda: drifted))
    assert result["status"] == "contraindicated"
    assert any("drifted" in r for r in result["reasons"]["executables"])


def test_another_ak_cannot_be_bound_to_a_tpm_node(replica, node, swtpm, tmp_path):  # noqa: F811
    _, ctx = node
    other = Tpm2Tools(swtpm.tcti, tmp_path / "bind-ak", bin_dir=BIN_DIR).create_ak()
    jwk = Attester(tmp_path / "eat").key.public().to_jwk()
    body = {"jwk": jwk, "ueid": "01" + "ab" * 32, "ak_public": other.hex()}
    with tls_client(replica.tls_url, ctx) as client:
        resp = client.post("/v1/attestation/key", json=body)
    assert resp.status_code == 409, resp.text
    assert resp.json()["reason"] == "attestation_ak_enrolled"


def test_unusable_tpm_state_is_a_specific_error(tmp_path):
    with pytest.raises(TpmAttestError) as err:
        TpmQuoter.load(tmp_path)
    assert err.value.reason == "tpm_state"
    (tmp_path / "tpm").mkdir()
    for state in ("not json", json.dumps({"tcti": "", "pcr": 23}), json.dumps({"pcr": 7})):
        (tmp_path / "tpm" / STATE_FILE).write_text(state)
        with pytest.raises(TpmAttestError) as err:
            TpmQuoter.load(tmp_path)
        assert err.value.reason == "tpm_state"
    (tmp_path / "tpm" / STATE_FILE).write_text(json.dumps({"tcti": "swtpm:port=1", "pcr": 23}))
    with pytest.raises(TpmAttestError, match="no AK context"):
        TpmQuoter.load(tmp_path)


def test_unreachable_tpm_is_a_specific_error(tmp_path):
    quoter = TpmQuoter(Tpm2Tools("swtpm:host=127.0.0.1,port=1", tmp_path, bin_dir=BIN_DIR))
    with pytest.raises(TpmAttestError) as err:
        quoter.quote(b"n" * 32)
    assert err.value.reason == "tpm"
    with pytest.raises(TpmAttestError) as err:
        quoter.measure_into_pcr({"Bad Name": bytes(32)})
    assert err.value.reason == "measurement"
