"""``cntrust audit verify`` through typer's CliRunner, including tampered bundles."""

from __future__ import annotations

import base64
import json
import sys
import types
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from scheduler.cli.audit_cmd import app

from .helpers import make_bundle, seeded

runner = CliRunner()


@cache
def _good() -> tuple[bytes, str]:
    bundle, signer = make_bundle(200, 5, anchored_extra=9)
    return bundle.to_bytes(), signer.vkey


def _write(tmp_path: Path, data: bytes, name: str = "bundle.json") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _mutated(mutate: Any) -> bytes:
    obj = json.loads(_good()[0])
    mutate(obj)
    return json.dumps(obj).encode()


def _run(*args: str) -> Any:
    return runner.invoke(app, ["verify", *args])


def test_valid_bundle_exits_zero_and_says_the_chain_was_not_checked(tmp_path: Path) -> None:
    data, vkey = _good()
    result = _run(str(_write(tmp_path, data)), "--log-key", vkey)
    assert result.exit_code == 0, result.output
    assert "Proof bundle verified" in result.output
    assert "NOT checked" in result.output
    assert "task/" in result.output


def test_log_key_may_be_a_file(tmp_path: Path) -> None:
    data, vkey = _good()
    key = _write(tmp_path, vkey.encode() + b"\n", "log.vkey")
    result = _run(str(_write(tmp_path, data)), "--log-key", str(key))
    assert result.exit_code == 0, result.output


def _flip_first(proof: str) -> str:
    raw = bytearray(base64.b64decode(proof))
    raw[5] ^= 0x40
    return base64.b64encode(bytes(raw)).decode()


Obj = dict[str, Any]


def _truncate_proof(o: Obj) -> None:  # the last two hashes dropped
    raw = base64.b64decode(o["inclusionProof"])
    o["inclusionProof"] = base64.b64encode(raw[:-64]).decode()


def _garbage_hash(o: Obj) -> None:  # a 3-byte "hash" in front
    raw = base64.b64decode(o["inclusionProof"])
    o["inclusionProof"] = base64.b64encode(b"\0\0\0" + raw[32:]).decode()


def _flip_proof(o: Obj) -> None:
    o["inclusionProof"] = _flip_first(o["inclusionProof"])


def _wrong_size(o: Obj) -> None:
    o["anchor"]["treeSize"] = 10_000


def _swap_roots(o: Obj) -> None:
    checkpoint_root = base64.b64decode(o["checkpoint"].split("\n")[2])
    o["anchor"]["root"] = "0x" + checkpoint_root.hex()


def _forge_checkpoint(o: Obj) -> None:
    o["checkpoint"] = o["checkpoint"].replace("\n200\n", "\n199\n")


def _modify_record(o: Obj) -> None:
    o["record"]["payload"]["predicate"]["attestation"]["status"] = "warning"


def _drop_anchor(o: Obj) -> None:
    o.pop("anchor")
    o.pop("consistencyProof")


TAMPERED = [
    ("truncated file", lambda: _good()[0][:-40], "parse"),
    ("garbage", lambda: b"\x00\xffnot json", "parse"),
    ("truncated proof", lambda: _mutated(_truncate_proof), "inclusion"),
    ("garbage proof hash", lambda: _mutated(_garbage_hash), "inclusion"),
    ("flipped proof bit", lambda: _mutated(_flip_proof), "inclusion"),
    ("wrong size", lambda: _mutated(_wrong_size), "consistency"),
    ("swapped roots", lambda: _mutated(_swap_roots), "consistency"),
    ("forged checkpoint", lambda: _mutated(_forge_checkpoint), "checkpoint"),
    ("modified record", lambda: _mutated(_modify_record), "record_signature"),
    ("missing anchor", lambda: _mutated(_drop_anchor), "anchor"),
]


@pytest.mark.parametrize(("name", "make", "step"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_bundles_fail_naming_the_step(
    tmp_path: Path, name: str, make: Any, step: str
) -> None:
    result = _run(str(_write(tmp_path, make())), "--log-key", _good()[1])
    assert result.exit_code == 1, result.output
    assert f"FAILED at step {step}:" in result.output
    assert "Traceback" not in result.output


def test_missing_anchor_accepted_when_allowed(tmp_path: Path) -> None:
    data = _mutated(_drop_anchor)
    result = _run(str(_write(tmp_path, data)), "--log-key", _good()[1], "--allow-unanchored")
    assert result.exit_code == 0, result.output
    assert "allow-unanchored" in result.output


def test_wrong_log_key_fails_at_checkpoint(tmp_path: Path) -> None:
    result = _run(str(_write(tmp_path, _good()[0])), "--log-key", seeded("other").vkey)
    assert result.exit_code == 1
    assert "checkpoint" in result.output


def test_bad_usage_exits_two_without_traceback(tmp_path: Path) -> None:
    missing = _run(str(tmp_path / "nope.json"), "--log-key", _good()[1])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    badkey = _run(str(_write(tmp_path, _good()[0])), "--log-key", "not-a-key")
    assert badkey.exit_code == 2 and "keys" in badkey.output
    directory = _run(str(tmp_path), "--log-key", _good()[1])
    assert directory.exit_code == 2
    for result in (missing, badkey, directory):
        assert "Traceback" not in result.output


def test_rpc_without_anchoring_module_exits_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_anchoring(name: str) -> Any:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr("importlib.import_module", no_anchoring)
    bundle = str(_write(tmp_path, _good()[0]))
    result = _run(bundle, "--log-key", _good()[1], "--rpc", "http://127.0.0.1:1")
    assert result.exit_code == 2
    assert "unavailable" in result.output and "Traceback" not in result.output


def _fake_anchoring(monkeypatch: pytest.MonkeyPatch, fail: bool) -> list[str]:
    calls: list[str] = []

    def make_anchor_checker(rpc_url: str) -> Any:
        def check(anchor: Any) -> None:
            calls.append(f"{rpc_url} {anchor.tx_hash}")
            if fail:
                raise LookupError("transaction not found on chain")

        return check

    module = types.ModuleType("audit_chain.anchoring")
    module.make_anchor_checker = make_anchor_checker  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "audit_chain.anchoring", module)
    return calls


def test_rpc_uses_the_anchoring_checker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_anchoring(monkeypatch, fail=False)
    bundle = str(_write(tmp_path, _good()[0]))
    result = _run(bundle, "--log-key", _good()[1], "--rpc", "http://127.0.0.1:8545")
    assert result.exit_code == 0, result.output
    assert "checked on chain" in result.output
    assert calls and calls[0].startswith("http://127.0.0.1:8545 0x")


def test_anchor_missing_on_chain_fails_the_chain_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_anchoring(monkeypatch, fail=True)
    bundle = str(_write(tmp_path, _good()[0]))
    result = _run(bundle, "--log-key", _good()[1], "--rpc", "http://127.0.0.1:8545")
    assert result.exit_code == 1
    assert "chain" in result.output and "not found on chain" in result.output
