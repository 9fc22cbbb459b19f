"""Every transparency-dev/merkle vector in ../shared/vectors/merkle: valid ones verify,
every mutated or invalid one is rejected."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from audit_chain.errors import ConsistencyProofError, InclusionProofError
from audit_chain.merkle import verify_consistency, verify_inclusion

_REPO = Path(__file__).resolve().parents[3]
# ../shared beside the repo; a git worktree one level deeper also finds it.
_CANDIDATES = [_REPO / ".." / "shared", _REPO / ".." / ".." / "shared"]
VECTORS = next(
    (c / "vectors" / "merkle" / "testdata" for c in _CANDIDATES if (c / "vectors").is_dir()),
    _CANDIDATES[0] / "vectors" / "merkle" / "testdata",
)


def _vectors(kind: str) -> list[Path]:
    root = VECTORS / kind
    if not root.is_dir():
        return []
    return sorted(root.rglob("*.json"))


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _proof(data: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in (data.get("proof") or [])]


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


INCLUSION = _vectors("inclusion")
CONSISTENCY = _vectors("consistency")

pytestmark = pytest.mark.skipif(
    not INCLUSION or not CONSISTENCY,
    reason=f"Merkle vectors not found at {VECTORS} (../shared beside the repo)",
)


def test_vector_counts_cover_the_whole_suite() -> None:
    # 98 inclusion and 98 consistency files in transparency-dev/merkle 417fb0c3.
    assert len(INCLUSION) == 98
    assert len(CONSISTENCY) == 98
    valid = [p for p in INCLUSION + CONSISTENCY if not json.loads(p.read_text())["wantErr"]]
    assert len(valid) >= 12


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    data = json.loads(path.read_text())
    args = (
        data["leafIdx"],
        data["treeSize"],
        _b64(data["leafHash"]),
        _proof(data),
        _b64(data["root"]),
    )
    if data["wantErr"]:
        with pytest.raises(InclusionProofError):
            verify_inclusion(*args)
    else:
        assert verify_inclusion(*args) is None


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path: Path) -> None:
    data = json.loads(path.read_text())
    args = (
        data["size1"],
        data["size2"],
        _proof(data),
        _b64(data["root1"]),
        _b64(data["root2"]),
    )
    if data["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(*args)
    else:
        assert verify_consistency(*args) is None
