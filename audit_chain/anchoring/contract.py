"""The Anchor contract: committed artifact (ABI + bytecode) and reproducible compilation.

The Vyper source lives in `contracts/Anchor.vy`; its compiled artifact is committed as
package data (`Anchor.json`) so that nothing compiles at run time. `compile_artifact`
rebuilds the artifact with the vyper package (a test-only dependency) so a test can
check that the committed bytecode is what the source compiles to.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from audit_chain.anchoring.errors import ContractArtifactError

CONTRACT_NAME = "Anchor"
VYPER_VERSION = "0.4.3"
EVM_VERSION = "london"
ARTIFACT_RESOURCE = "Anchor.json"
MAX_ARTIFACT_BYTES = 1_000_000


@dataclass(frozen=True)
class ContractArtifact:
    """ABI and creation bytecode of the Anchor contract, with the source digest they come from."""

    contract_name: str
    compiler: str
    evm_version: str
    source_sha256: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract_name": self.contract_name,
            "compiler": self.compiler,
            "evm_version": self.evm_version,
            "source_sha256": self.source_sha256,
            "abi": list(self.abi),
            "bytecode": self.bytecode,
        }

    @classmethod
    def from_dict(cls, data: object) -> ContractArtifact:
        """Raises ContractArtifactError when a field is missing or malformed."""
        if not isinstance(data, dict):
            raise ContractArtifactError("artifact must be a JSON object")
        try:
            abi = data["abi"]
            bytecode = data["bytecode"]
            if not isinstance(abi, list) or not all(isinstance(i, dict) for i in abi):
                raise ContractArtifactError("artifact abi must be a list of objects")
            if not isinstance(bytecode, str) or not bytecode.startswith("0x"):
                raise ContractArtifactError("artifact bytecode must be 0x-prefixed hex")
            bytes.fromhex(bytecode[2:])
            return cls(
                contract_name=str(data["contract_name"]),
                compiler=str(data["compiler"]),
                evm_version=str(data["evm_version"]),
                source_sha256=str(data["source_sha256"]),
                abi=tuple(abi),
                bytecode=bytecode,
            )
        except (KeyError, ValueError) as exc:
            raise ContractArtifactError(f"malformed artifact: {exc}") from exc


@lru_cache(maxsize=1)
def load_artifact() -> ContractArtifact:
    """The committed Anchor artifact (package data).

    Raises:
        ContractArtifactError: the artifact is missing or malformed.
    """
    try:
        text = resources.files("audit_chain.anchoring").joinpath(ARTIFACT_RESOURCE).read_bytes()
    except OSError as exc:
        raise ContractArtifactError(f"contract artifact not found: {exc}") from exc
    if len(text) > MAX_ARTIFACT_BYTES:
        raise ContractArtifactError("contract artifact too large")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ContractArtifactError(f"contract artifact is not JSON: {exc}") from exc
    return ContractArtifact.from_dict(data)


def compile_artifact(source: str) -> ContractArtifact:
    """Compile the Vyper source into an artifact, with the vyper package (test dependency).

    Raises:
        ContractArtifactError: vyper is not importable, is not version 0.4.3, or the
            source does not compile.
    """
    try:
        import vyper
    except ImportError as exc:
        raise ContractArtifactError("the vyper package is not installed") from exc
    version = str(getattr(vyper, "__version__", ""))
    if not version.startswith(VYPER_VERSION):
        raise ContractArtifactError(f"vyper {VYPER_VERSION} required, found {version!r}")
    from vyper.exceptions import VyperException

    try:
        out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    except VyperException as exc:
        raise ContractArtifactError(f"vyper failed to compile: {exc}") from exc
    return ContractArtifact(
        contract_name=CONTRACT_NAME,
        compiler=f"vyper-{VYPER_VERSION}",
        evm_version=EVM_VERSION,
        source_sha256=hashlib.sha256(source.encode()).hexdigest(),
        abi=tuple(out["abi"]),
        bytecode=out["bytecode"],
    )


def artifact_json(artifact: ContractArtifact) -> str:
    """Canonical JSON text of an artifact, as committed."""
    return json.dumps(artifact.to_dict(), indent=1, sort_keys=True) + "\n"
