"""Load a policy set (one JSON Cedar schema + ``*.cedar`` files), validated once at load.

Invariants:
- Sizes are checked before anything is read or parsed (``PolicyLimits``).
- Loading either returns a ``PolicySet`` whose every policy parsed, carries unique ``@id``
  and a ``@reason`` annotation and passed Cedar's schema validation, or raises
  ``PolicyLoadError`` listing every problem found (file, line, policy id, message).
- ``version`` is a content hash of the normalized set: the schema as canonical JSON and each
  policy's Cedar JSON (EST) form, sorted by ``@id``. Comments, layout, file names and policy
  order do not change it; any change in meaning does.
- ``export()`` is a self-contained text that ``policy_set_from_export`` turns back into an
  equal set with the same version (stored for replay).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cedarpy

from policies._source import PolicyChunk, split_policies
from policies.errors import PolicyFileTooLargeError, PolicyLoadError, PolicyProblem

EXPORT_FORMAT = "cntrust.policy-set/1"
SCHEMA_SUFFIX = ".cedarschema.json"


@dataclass(frozen=True)
class PolicyLimits:
    """Size limits enforced before reading outside input."""

    max_policy_file_bytes: int = 256 * 1024
    max_schema_bytes: int = 1024 * 1024
    max_policy_files: int = 256
    max_policies: int = 5_000
    max_export_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class PolicyInfo:
    """One policy of a loaded set: its ``@id``, ``@reason``, effect and where it came from."""

    id: str
    reason: str
    effect: str
    file: str
    line: int
    text: str


class PolicySet:
    """A validated Cedar policy set with its schema. Build it with the ``load_*`` functions."""

    def __init__(
        self,
        *,
        schema: Mapping[str, Any],
        policies: Sequence[PolicyInfo],
        version: str,
        cedar_policies: cedarpy.PolicySet,
        cedar_schema: cedarpy.Schema,
        pst: Any,
    ) -> None:
        self.schema: Mapping[str, Any] = schema
        self.namespace: str = next(iter(schema))
        self.policies: tuple[PolicyInfo, ...] = tuple(policies)
        self.version = version
        self.cedar_policies = cedar_policies
        self.cedar_schema = cedar_schema
        self.pst = pst
        self.by_positional_id: dict[str, PolicyInfo] = {
            f"policy{i}": p for i, p in enumerate(self.policies)
        }
        self.by_id: dict[str, PolicyInfo] = {p.id: p for p in self.policies}
        self._action_parents = _action_parents(schema[self.namespace])

    def __repr__(self) -> str:
        return f"PolicySet(version={self.version!r}, policies={len(self.policies)})"

    @property
    def actions(self) -> frozenset[str]:
        """Every action id the schema declares (groups included)."""
        return frozenset(self._action_parents)

    def action_ancestors(self, action: str) -> frozenset[str]:
        """The action groups ``action`` belongs to, transitively (not including itself)."""
        seen: set[str] = set()
        stack = list(self._action_parents.get(action, ()))
        while stack:
            group = stack.pop()
            if group not in seen:
                seen.add(group)
                stack.extend(self._action_parents.get(group, ()))
        return frozenset(seen)

    def qualify(self, entity_type: str) -> str:
        """``Node`` -> ``Cntrust::Node``; already qualified names pass unchanged."""
        return entity_type if "::" in entity_type else f"{self.namespace}::{entity_type}"

    def export(self) -> str:
        """Self-contained JSON text of the set (schema, policies, version) for storage."""
        return json.dumps(
            {
                "format": EXPORT_FORMAT,
                "version": self.version,
                "schema": self.schema,
                "policies": [
                    {"id": p.id, "file": p.file, "line": p.line, "text": p.text}
                    for p in self.policies
                ],
            },
            sort_keys=True,
        )


def default_policy_dir() -> Path:
    """Directory of the default pack shipped as package data."""
    return Path(str(resources.files("policies") / "default"))


def load_default_policy_set(limits: PolicyLimits | None = None) -> PolicySet:
    """Load the default pack. Raises PolicyLoadError (a packaging defect) if it is invalid."""
    return load_policy_set(default_policy_dir(), limits=limits)


def load_policy_set(directory: str | Path, *, limits: PolicyLimits | None = None) -> PolicySet:
    """Load ``directory``: exactly one ``*.cedarschema.json`` and its ``*.cedar`` files.

    Raises PolicyFileTooLargeError before reading a file over its limit, and PolicyLoadError
    listing every problem when the set is invalid.
    """
    lim = limits or PolicyLimits()
    root = Path(directory)
    if not root.is_dir():
        raise PolicyLoadError([PolicyProblem(str(root), 0, "", "not a directory")])
    schemas = sorted(p for p in root.iterdir() if p.name.endswith(SCHEMA_SUFFIX))
    cedar_files = sorted(p for p in root.iterdir() if p.suffix == ".cedar" and p.is_file())
    problems: list[PolicyProblem] = []
    if len(schemas) != 1:
        found = ", ".join(p.name for p in schemas) or "none"
        problems.append(
            PolicyProblem(str(root), 0, "", f"need exactly one *{SCHEMA_SUFFIX}, found {found}")
        )
    if not cedar_files:
        problems.append(PolicyProblem(str(root), 0, "", "no *.cedar policy files"))
    if len(cedar_files) > lim.max_policy_files:
        problems.append(
            PolicyProblem(
                str(root), 0, "", f"{len(cedar_files)} policy files, limit {lim.max_policy_files}"
            )
        )
    if problems:
        raise PolicyLoadError(problems)
    schema_text = _read_limited(schemas[0], lim.max_schema_bytes)
    files = [(p.name, _read_limited(p, lim.max_policy_file_bytes)) for p in cedar_files]
    return policy_set_from_sources(schema_text, files, schema_name=schemas[0].name, limits=lim)


def policy_set_from_sources(
    schema_text: str,
    files: Sequence[tuple[str, str]],
    *,
    schema_name: str = "schema",
    limits: PolicyLimits | None = None,
) -> PolicySet:
    """Build a set from a JSON schema text and ``(file name, Cedar text)`` pairs.

    Raises PolicyFileTooLargeError or PolicyLoadError (every problem at once).
    """
    lim = limits or PolicyLimits()
    _check_size(schema_name, len(schema_text.encode()), lim.max_schema_bytes)
    chunks: list[tuple[str, PolicyChunk]] = []
    for name, text in files:
        _check_size(name, len(text.encode()), lim.max_policy_file_bytes)
        chunks.extend((name, chunk) for chunk in split_policies(text))
    return _build(schema_text, schema_name, chunks, lim)


def policy_set_from_export(text: str, *, limits: PolicyLimits | None = None) -> PolicySet:
    """Rebuild a set from ``PolicySet.export()`` text (its version is recomputed).

    Raises PolicyFileTooLargeError or PolicyLoadError.
    """
    lim = limits or PolicyLimits()
    _check_size("export", len(text.encode()), lim.max_export_bytes)
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PolicyLoadError([PolicyProblem("export", 0, "", f"not JSON: {exc}")]) from exc
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise PolicyLoadError([PolicyProblem("export", 0, "", f"format is not {EXPORT_FORMAT}")])
    entries = doc.get("policies")
    if not isinstance(entries, list) or not isinstance(doc.get("schema"), dict):
        raise PolicyLoadError([PolicyProblem("export", 0, "", "missing schema or policies")])
    chunks: list[tuple[str, PolicyChunk]] = []
    for i, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("text"), str)
            and isinstance(entry.get("file"), str)
            and isinstance(entry.get("line"), int)
        ):
            raise PolicyLoadError([PolicyProblem("export", 0, "", f"policies[{i}] malformed")])
        chunks.append((entry["file"], PolicyChunk(entry["text"], entry["line"])))
    return _build(json.dumps(doc["schema"]), "schema", chunks, lim)


def _read_limited(path: Path, limit: int) -> str:
    _check_size(str(path), path.stat().st_size, limit)
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    _check_size(str(path), len(data), limit)  # the file may have grown since stat()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyLoadError([PolicyProblem(str(path), 0, "", f"not UTF-8: {exc}")]) from exc


def _check_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise PolicyFileTooLargeError(name, size, limit)


def _parse_schema(
    schema_text: str, schema_name: str, problems: list[PolicyProblem]
) -> tuple[dict[str, Any], cedarpy.Schema] | None:
    try:
        schema = json.loads(schema_text)
    except (ValueError, RecursionError) as exc:
        problems.append(PolicyProblem(schema_name, 0, "", f"schema is not JSON: {exc}"))
        return None
    if not isinstance(schema, dict) or len(schema) != 1 or not next(iter(schema)):
        problems.append(PolicyProblem(schema_name, 0, "", "schema must declare one namespace"))
        return None
    try:
        handle = cedarpy.Schema.from_json_str(json.dumps(schema))
    except ValueError as exc:
        problems.append(PolicyProblem(schema_name, 0, "", f"invalid schema: {exc}"))
        return None
    return schema, handle


def _build(
    schema_text: str,
    schema_name: str,
    chunks: list[tuple[str, PolicyChunk]],
    lim: PolicyLimits,
) -> PolicySet:
    problems: list[PolicyProblem] = []
    parsed_schema = _parse_schema(schema_text, schema_name, problems)
    if len(chunks) > lim.max_policies:
        raise PolicyLoadError(
            [PolicyProblem(schema_name, 0, "", f"{len(chunks)} policies, limit {lim.max_policies}")]
        )
    if not chunks:
        problems.append(PolicyProblem(schema_name, 0, "", "the set has no policies"))
    infos: list[PolicyInfo] = []
    normalized: dict[str, Any] = {}
    for name, chunk in chunks:
        info, est = _parse_chunk(name, chunk, problems)
        if info is None:
            continue
        if info.id in normalized:
            first = next(p for p in infos if p.id == info.id)
            problems.append(
                PolicyProblem(
                    name, chunk.line, info.id, f"duplicate @id (first at {first.file}:{first.line})"
                )
            )
            continue
        infos.append(info)
        normalized[info.id] = est
    if problems or parsed_schema is None:
        raise PolicyLoadError(problems)
    schema, schema_handle = parsed_schema
    cedar_text = "\n".join(p.text for p in infos)
    result = cedarpy.validate_policies(cedar_text, schema_handle)
    if not result.validation_passed:
        for err in result.errors:
            info = infos[int(err.policy_id[6:])] if err.policy_id.startswith("policy") else None
            message = err.error
            if info is None:
                problems.append(PolicyProblem(schema_name, 0, err.policy_id, message))
            else:
                message = message.replace(f"`{err.policy_id}`", f"`{info.id}`")
                problems.append(PolicyProblem(info.file, info.line, info.id, message))
        raise PolicyLoadError(problems)
    canonical = json.dumps(
        {"schema": schema, "policies": [normalized[k] for k in sorted(normalized)]},
        sort_keys=True,
        separators=(",", ":"),
    )
    version = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    cedar_policies = cedarpy.PolicySet.from_str(cedar_text)
    try:
        pst = cedar_policies.to_pst()
    except ValueError as exc:  # e.g. expressions nested deeper than the PST allows
        raise PolicyLoadError([PolicyProblem(schema_name, 0, "", f"policy set: {exc}")]) from None
    return PolicySet(
        schema=schema,
        policies=infos,
        version=version,
        cedar_policies=cedar_policies,
        cedar_schema=schema_handle,
        pst=pst,
    )


def _parse_chunk(
    name: str, chunk: PolicyChunk, problems: list[PolicyProblem]
) -> tuple[PolicyInfo | None, Any]:
    try:
        est_doc = json.loads(cedarpy.policies_to_json_str(chunk.text))
    except ValueError as exc:
        problems.append(PolicyProblem(name, chunk.line, chunk.guess_id(), f"syntax error: {exc}"))
        return None, None
    statics = est_doc.get("staticPolicies", {})
    if est_doc.get("templates"):
        problems.append(
            PolicyProblem(name, chunk.line, chunk.guess_id(), "templates are not supported")
        )
        return None, None
    if len(statics) != 1:
        problems.append(PolicyProblem(name, chunk.line, chunk.guess_id(), "expected one policy"))
        return None, None
    try:
        cedarpy.policies_to_pst(chunk.text)
    except ValueError as exc:  # parses, but cannot be represented (e.g. nested too deeply)
        problems.append(PolicyProblem(name, chunk.line, chunk.guess_id(), str(exc)))
        return None, None
    est = next(iter(statics.values()))
    annotations = est.get("annotations") or {}
    policy_id, reason = annotations.get("id"), annotations.get("reason")
    if not policy_id or not reason:
        missing = " and ".join(a for a, v in (("@id", policy_id), ("@reason", reason)) if not v)
        problems.append(
            PolicyProblem(name, chunk.line, policy_id or "", f"policy lacks a non-empty {missing}")
        )
        return None, None
    info = PolicyInfo(
        id=policy_id,
        reason=reason,
        effect=est["effect"],
        file=name,
        line=chunk.line,
        text=chunk.text,
    )
    return info, est


def _action_parents(namespace_schema: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    actions = namespace_schema.get("actions", {}) or {}
    parents: dict[str, tuple[str, ...]] = {}
    for name, spec in actions.items():
        member_of = (spec or {}).get("memberOf", []) or []
        parents[name] = tuple(m["id"] for m in member_of if isinstance(m, dict) and "id" in m)
    return parents
