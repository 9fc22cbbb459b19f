"""``cntrust up --chain-rpc URL --chain-key FILE [--contract ADDR]`` against a real anvil:
a task's record is anchored on that chain, its bundle verifies offline and on chain
(``cntrust audit verify --rpc``), and bad chain settings stop ``up`` with a message."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from audit_chain import parse_bundle, verify_bundle
from audit_chain.anchoring import make_anchor_checker, write_anchorer_key
from scheduler.client import Client
from tests.integration.deploy import UpProcess
from tests.integration.test_anchor_anvil import Node, _anvil_binary, _free_port

pytestmark = pytest.mark.anvil

KEY = b"\x43" * 32


@pytest.fixture
def anvil(tmp_path: Path):
    n = Node(_anvil_binary(), _free_port(), tmp_path / "anvil-state.json")
    n.start()
    try:
        yield n
    finally:
        n.stop()


def _key_file(tmp_path: Path, anvil: Node) -> Path:
    path = tmp_path / "anchorer.key"
    account = write_anchorer_key(path, KEY)
    anvil.rpc("anvil_setBalance", account.address, hex(10**21))
    return path


def _anchored_bundle(
    dep: UpProcess, timeout_s: float = 60.0, *, new_tenant: bool = True
) -> tuple[bytes, str]:
    if new_tenant:
        Client(dep.url, dep.admin_token()).add_tenant("alice")
    alice = Client(dep.url, dep.token("tenant", "alice"))
    task = alice.submit(["sh", "-c", "echo anchored"])
    headers = {"Authorization": f"Bearer {dep.token('tenant', 'alice')}"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        resp = httpx.get(f"{dep.url}/v1/tasks/{task['id']}/bundle", headers=headers)
        if resp.status_code == 200 and parse_bundle(resp.content).anchor is not None:
            return resp.content, task["id"]
        time.sleep(0.2)
    raise AssertionError("no anchored bundle: " + dep.log())


def test_up_anchors_on_an_external_chain(
    tmp_path: Path, anvil: Node, database_url: str, second_database_url: str
) -> None:
    key = _key_file(tmp_path, anvil)
    dep = UpProcess(
        tmp_path / "data",
        nodes=1,
        env={"CNTRUST_DATABASE_URL": database_url},
        extra_args=["--chain-rpc", anvil.url, "--chain-key", str(key)],
    ).start()
    try:
        data, _ = _anchored_bundle(dep)
        vkey = httpx.get(dep.url + "/log/key").text.strip()
    finally:
        dep.stop()
    anchor = parse_bundle(data).anchor
    assert anchor is not None and anchor.chain_id == 31337 == anvil.web3().eth.chain_id
    contract = json.loads((tmp_path / "data" / "chain-rpc" / "contract.json").read_text())
    assert contract["contract"].lower() == anchor.contract.lower()
    assert contract["chain_id"] == 31337
    verify_bundle(data, vkey, check_anchor=make_anchor_checker(anvil.url))
    assert len(data) <= 4096

    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_bytes(data)
    cli = [sys.executable, "-m", "scheduler.cli", "audit", "verify", str(bundle_file)]
    ok = subprocess.run([*cli, "--log-key", vkey, "--rpc", anvil.url], capture_output=True)
    assert ok.returncode == 0, ok.stderr.decode()
    assert "checked on chain" in ok.stdout.decode()

    # another deployment anchoring on the same contract, named explicitly
    again = UpProcess(
        tmp_path / "data2",
        nodes=1,
        env={"CNTRUST_DATABASE_URL": second_database_url},  # a deployment of its own
        extra_args=[
            "--chain-rpc", anvil.url, "--chain-key", str(key), "--contract", anchor.contract,
        ],
    ).start()  # fmt: skip
    try:
        data2, _ = _anchored_bundle(again)
        vkey2 = httpx.get(again.url + "/log/key").text.strip()
    finally:
        again.stop()
    assert not (tmp_path / "data2" / "chain-rpc" / "contract.json").exists()  # none deployed
    second = parse_bundle(data2).anchor
    assert second is not None and second.contract.lower() == anchor.contract.lower()
    verify_bundle(data2, vkey2, check_anchor=make_anchor_checker(anvil.url))


def _up_fails(tmp_path: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "scheduler.cli", "up", "--data-dir", str(tmp_path / "d"),
           "--port", str(_free_port()), "--nodes", "0", *args]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, timeout=120)
    assert result.returncode != 0
    return " ".join((result.stdout + result.stderr).decode().split())


@pytest.mark.slow  # no database involved: run once, in the SQLite pass
def test_bad_chain_settings_stop_up_with_a_message(tmp_path: Path, anvil: Node) -> None:
    key = _key_file(tmp_path, anvil)
    closed = f"http://127.0.0.1:{_free_port()}"
    assert "cannot use the chain" in _up_fails(
        tmp_path, "--chain-rpc", closed, "--chain-key", str(key)
    )
    assert "needs --chain-key" in _up_fails(tmp_path, "--chain-rpc", anvil.url)
    key.chmod(0o644)
    assert "group or others" in _up_fails(
        tmp_path, "--chain-rpc", anvil.url, "--chain-key", str(key)
    )
    key.chmod(0o600)
    no_code = "0x" + "12" * 20
    assert "no contract" in _up_fails(
        tmp_path, "--chain-rpc", anvil.url, "--chain-key", str(key), "--contract", no_code
    )
