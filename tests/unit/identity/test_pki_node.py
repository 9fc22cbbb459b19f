"""Node side of enrollment: local key (0600), CSR, stored SVID and bundle."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from identity.pki import (
    NO_REVOCATIONS,
    CaStoreError,
    PkiError,
    build_csr,
    check_csr,
    generate_node_key,
    load_node_credentials,
    save_node_key,
    save_node_svid,
    verify_client_svid,
)
from tests.unit.identity.test_pki_support import T0, Clock, make_ca


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_enroll_and_reload(tmp_path: Path, algorithm: str) -> None:
    ca = make_ca(Clock())
    key = generate_node_key(algorithm)  # type: ignore[arg-type]
    node_dir = tmp_path / "node"
    key_path = save_node_key(node_dir, key)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(node_dir.stat().st_mode) == 0o700
    csr = build_csr(key)
    assert check_csr(csr).public_key == key.public_key()
    issued = ca.issue_svid(csr, "acme", "n1")
    save_node_svid(node_dir, issued.chain_pem, issued.trust_bundle_pem)
    creds = load_node_credentials(node_dir)
    assert creds.certificate == issued.certificate
    assert creds.svid_path.read_bytes() == issued.chain_pem
    assert creds.bundle_path.read_bytes() == issued.trust_bundle_pem
    assert creds.key_path == key_path
    got = verify_client_svid(creds.chain_pem, ca.trust_bundle(), T0 + 1, NO_REVOCATIONS)
    assert got.node_id == "n1"


def test_svid_for_another_key_is_refused(tmp_path: Path) -> None:
    ca = make_ca(Clock())
    save_node_key(tmp_path, generate_node_key())
    other = ca.issue_svid(build_csr(generate_node_key()), "acme", "n1")
    save_node_svid(tmp_path, other.chain_pem, other.trust_bundle_pem)
    with pytest.raises(CaStoreError) as info:
        load_node_credentials(tmp_path)
    assert info.value.reason == "key_mismatch"


def test_bad_node_files(tmp_path: Path) -> None:
    with pytest.raises(CaStoreError) as info:
        load_node_credentials(tmp_path)
    assert info.value.reason == "missing"
    save_node_key(tmp_path, generate_node_key())
    save_node_svid(tmp_path, b"garbage", b"garbage")
    with pytest.raises(CaStoreError) as info:
        load_node_credentials(tmp_path)
    assert info.value.reason == "malformed"
    os.chmod(tmp_path / "node.key", 0o640)
    with pytest.raises(CaStoreError) as info:
        load_node_credentials(tmp_path)
    assert info.value.reason == "permissions"


def test_unknown_key_algorithm() -> None:
    with pytest.raises(PkiError) as info:
        generate_node_key("rsa")  # type: ignore[arg-type]
    assert info.value.reason == "key_algorithm"
