"""TPM-rooted enrollment through the scheduler, against a real software TPM.

The test provisions a swtpm with an EK certificate from a local CA (the fixture of
test_swtpm.py), starts a scheduler replica whose EK CA file holds that CA, and runs
``cntrust node enroll --tpm`` as a node would: EK certificate + AK -> MakeCredential
(server) -> tpm2_activatecredential (node) -> SVID, then uses the SVID over mTLS.
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys

import httpx
import pytest
from sqlmodel import select

from identity.attestation import Tpm2Tools
from scheduler.tables.identity_tpm import IdentityTpmKey
from tests.conftest import bearer
from tests.integration.mtls_helpers import start_replica, tls_client
from tests.integration.test_swtpm import BIN_DIR, Swtpm, swtpm  # noqa: F401 (fixture)

pytestmark = pytest.mark.swtpm


@pytest.fixture
def ek_ca_file(swtpm: Swtpm, tmp_path):  # noqa: F811
    path = tmp_path / "ek-ca.pem"
    path.write_bytes(
        (swtpm.ca_dir / "swtpm-localca-rootca-cert.pem").read_bytes()
        + (swtpm.ca_dir / "issuercert.pem").read_bytes()
    )
    return path


@pytest.fixture
def replica(tmp_path, database_url, ek_ca_file):
    rep = start_replica(tmp_path / "data", database_url, tpm_ek_ca_file=ek_ca_file)
    with httpx.Client(base_url=rep.plain_url) as client:
        resp = client.post("/v1/operators", json={"name": "acme"}, headers=admin(rep))
        assert resp.status_code == 201, resp.text
    yield rep
    rep.stop()


def admin(rep):
    return bearer(rep.service, "admin", "admin")


def join_token(rep) -> str:
    with httpx.Client(base_url=rep.plain_url) as client:
        resp = client.post("/v1/operators/acme/join-tokens", json={}, headers=admin(rep))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["join_token"])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "scheduler.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_node_enroll_tpm_end_to_end(replica, swtpm, tmp_path):  # noqa: F811
    node_dir = tmp_path / "tpm-node"
    proc = cli(
        *("node", "enroll", "--tpm", "--tcti", swtpm.tcti),
        *("--server", replica.tls_url, "--ca-bundle", str(replica.tls.ca_path)),
        *("--token", join_token(replica), "--dir", str(node_dir), "--node-id", "tpm-node"),
        "--json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "spiffe://cntrust.local/operator/acme/node/tpm-node" in proc.stdout
    # the server recorded the EK (with its certificate) and the AK the node made
    with replica.service.read() as session:
        keys = session.exec(select(IdentityTpmKey)).all()
    assert [k.node_id for k in keys] == ["tpm-node"]
    assert base64.b64decode(keys[0].ak_public) == (node_dir / "tpm" / "ak.pub").read_bytes()
    assert keys[0].ek_certificate is not None
    # the SVID works over mTLS
    from scheduler.agent_identity import AgentIdentity

    ctx = AgentIdentity.load(node_dir).ssl_context()
    with tls_client(replica.tls_url, ctx) as client:
        resp = client.post("/v1/nodes/register", json={"cpu_cores": 1, "memory_mb": 64})
    assert resp.status_code == 201, resp.text


def _begin(rep, tpm: Tpm2Tools, token: str, node_id: str, **overrides: object) -> httpx.Response:
    from identity.pki import build_csr, generate_node_key

    cert = tpm.ek_certificate()
    body = {
        "join_token": token,
        "csr_pem": build_csr(generate_node_key()).decode(),
        "node_id": node_id,
        "ek_public": base64.b64encode(tpm.ek_public()).decode(),
        "ek_certificate": base64.b64encode(cert).decode() if cert else None,
        "ak_public": base64.b64encode(tpm.create_ak()).decode(),
        **overrides,
    }
    ctx = ssl.create_default_context(cafile=str(rep.tls.ca_path))
    with tls_client(rep.tls_url, ctx) as client:
        return client.post("/v1/enroll/tpm", json=body)


def _finish(rep, challenge_id: str, token: str, activated: bytes) -> httpx.Response:
    body = {"join_token": token, "activated_credential": base64.b64encode(activated).decode()}
    with httpx.Client(base_url=rep.plain_url) as client:
        return client.post(f"/v1/enroll/tpm/{challenge_id}", json=body)


def test_wrong_answer_and_replayed_challenge_are_refused(replica, swtpm, tmp_path):  # noqa: F811
    tpm = Tpm2Tools(swtpm.tcti, tmp_path / "tpm", bin_dir=BIN_DIR)
    token = join_token(replica)
    begin = _begin(replica, tpm, token, "n-wrong")
    assert begin.status_code == 201, begin.text
    wrong = _finish(replica, begin.json()["challenge_id"], token, b"\x00" * 16)
    assert wrong.status_code == 403 and wrong.json()["reason"] == "activation"
    activated = tpm.activate_credential(base64.b64decode(begin.json()["credential_blob"]))
    good = _finish(replica, begin.json()["challenge_id"], token, activated)
    assert good.status_code == 201, good.text
    again = _finish(replica, begin.json()["challenge_id"], token, activated)
    assert again.status_code == 401 and again.json()["reason"] == "challenge_used"
    reused = _begin(replica, tpm, token, "n-again")  # the join token was consumed
    assert reused.status_code == 401 and reused.json()["reason"] == "reused"


def test_ek_checks(replica, swtpm, tmp_path, database_url):  # noqa: F811
    tpm = Tpm2Tools(swtpm.tcti, tmp_path / "tpm", bin_dir=BIN_DIR)
    token = join_token(replica)
    # no EK certificate while one is required
    resp = _begin(replica, tpm, token, "n1", ek_certificate=None)
    assert resp.status_code == 422 and resp.json()["reason"] == "ek_certificate"
    # the AK offered as the EK: not a restricted decryption key
    ak = base64.b64encode(tpm.create_ak()).decode()
    resp = _begin(replica, tpm, token, "n1", ek_public=ak)
    assert resp.status_code == 422 and resp.json()["reason"] == "ek_attributes"
    # garbage instead of a TPM2B_PUBLIC
    resp = _begin(replica, tpm, token, "n1", ak_public=base64.b64encode(b"\x00\x05abc").decode())
    assert resp.status_code == 422 and resp.json()["reason"] == "malformed"
    # an unknown join token
    resp = _begin(replica, tpm, "cnj_" + "0" * 40, "n1")
    assert resp.status_code == 401 and resp.json()["reason"] == "unknown", resp.text


def test_ek_certificate_from_an_unconfigured_ca_is_refused(swtpm, tmp_path, database_url):  # noqa: F811
    rep = start_replica(tmp_path / "data", database_url)  # no EK CA file
    try:
        with httpx.Client(base_url=rep.plain_url) as client:
            client.post("/v1/operators", json={"name": "acme"}, headers=admin(rep))
        tpm = Tpm2Tools(swtpm.tcti, tmp_path / "tpm", bin_dir=BIN_DIR)
        resp = _begin(rep, tpm, join_token(rep), "n1")
        assert resp.status_code == 422 and resp.json()["reason"] == "ek_certificate_chain"
    finally:
        rep.stop()
