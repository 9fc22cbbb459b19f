"""Records, state JSON, key files and the artifact loader refuse bad input with their own error."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit_chain.anchoring import (
    AnchorRecord,
    AnchorRecordError,
    AnchorState,
    ContractArtifactError,
    Inclusion,
    PendingAnchor,
    SentTransaction,
    load_anchorer_key,
    load_state_file,
    new_state,
    save_state_file,
    write_anchorer_key,
)
from audit_chain.anchoring.contract import ContractArtifact
from audit_chain.anchoring.records import MAX_STATE_JSON_BYTES

H = "0x" + "ab" * 32
A = "0x" + "cd" * 20

RECORD = AnchorRecord(
    chain_id=31337,
    contract=A,
    tx_hash=H,
    block_number=7,
    block_hash="0x" + "01" * 32,
    log_id="0x" + "02" * 32,
    tree_size=100,
    root="0x" + "03" * 32,
    anchorer=A,
    confirmations=3,
)
PENDING = PendingAnchor(
    log_id="0x" + "02" * 32,
    tree_size=101,
    root="0x" + "04" * 32,
    nonce=5,
    gas=70_000,
    attempts=(SentTransaction(H, "0x02f8", 3 * 10**9, 10**9, 12.5),),
    included=Inclusion(H, 8, "0x" + "05" * 32),
    reorgs=1,
)


def test_state_round_trip() -> None:
    state = AnchorState(
        log_id="0x" + "02" * 32,
        pending=PENDING,
        anchors=(RECORD,),
        watch=PENDING,
        last_started_at=5.0,
        consecutive_failures=2,
        retry_at=9.0,
        last_error="boom",
    )
    assert AnchorState.from_json(state.to_json()) == state
    assert state.anchored_tree_size == 100 and state.latest == RECORD


def test_record_round_trip_and_normalization() -> None:
    data = RECORD.to_dict()
    data["contract"] = A.upper().replace("0X", "0x")
    assert AnchorRecord.from_dict(data) == RECORD


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain_id", 0),
        ("chain_id", True),
        ("tx_hash", "0x12"),
        ("block_hash", None),
        ("tree_size", 0),
        ("tree_size", 2**256),
        ("root", b"\x00" * 31),
        ("contract", "0x" + "zz" * 20),
        ("confirmations", 1.5),
    ],
)
def test_bad_record_field_is_named(field: str, value: object) -> None:
    data = RECORD.to_dict()
    data[field] = value
    with pytest.raises(AnchorRecordError) as info:
        AnchorRecord.from_dict(data)
    assert info.value.field == field


def test_state_too_large_is_refused_before_parsing() -> None:
    with pytest.raises(AnchorRecordError, match="too large"):
        AnchorState.from_json(b" " * (MAX_STATE_JSON_BYTES + 1))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{}",
        '{"format": 2}',
        '{"format": 1, "log_id": "0x00"}',
        json.dumps({**new_state(b"\x01" * 32).to_dict(), "anchors": [{}] * 65}),
        "[" * 100_000,
    ],
)
def test_bad_state_json(text: str) -> None:
    with pytest.raises(AnchorRecordError):
        AnchorState.from_json(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzz_record_parser_only_raises_its_error(value: object) -> None:
    try:
        AnchorRecord.from_dict(value)
    except AnchorRecordError:
        return


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(PENDING.to_dict())), json_values))
def test_fuzz_state_parser_only_raises_its_error(overrides: dict) -> None:
    data = {**AnchorState(log_id=H, pending=PENDING).to_dict()}
    data["pending"] = {**PENDING.to_dict(), **overrides}
    try:
        AnchorState.from_dict(data)
    except AnchorRecordError:
        return


def test_state_file_round_trip_and_absent(tmp_path: Path) -> None:
    path = tmp_path / "anchoring.json"
    assert load_state_file(path) is None
    state = AnchorState(log_id=H, anchors=(RECORD,))
    save_state_file(path, state)
    assert load_state_file(path) == state
    assert not (tmp_path / "anchoring.json.tmp").exists()


def test_key_file_written_0600_and_loaded(tmp_path: Path) -> None:
    path = tmp_path / "chain.key"
    account = write_anchorer_key(path, b"\x01" * 32)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_anchorer_key(path).address == account.address
    with pytest.raises(FileExistsError):
        write_anchorer_key(path, b"\x02" * 32)


@pytest.mark.parametrize("content", [b"", b"0x1234", b"zz" * 32, b"0x" + b"00" * 32, b"a" * 300])
def test_bad_key_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "chain.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(AnchorRecordError):
        load_anchorer_key(path)


def test_group_readable_key_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "chain.key"
    write_anchorer_key(path, b"\x01" * 32)
    os.chmod(path, 0o640)
    with pytest.raises(AnchorRecordError, match="chmod 600"):
        load_anchorer_key(path)


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"abi": []},
        {"abi": "x", "bytecode": "0x00"},
        {"abi": [], "bytecode": "00"},
        {"abi": [], "bytecode": "0xzz"},
        {"abi": [], "bytecode": "0x00"},
    ],
)
def test_bad_artifact(data: object) -> None:
    with pytest.raises(ContractArtifactError):
        ContractArtifact.from_dict(data)
