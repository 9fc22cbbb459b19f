"""Adapters from the wire formats other parts of cntrust produce to trust evidence.

- :func:`from_eve_alert`: a Suricata EVE JSON ``alert`` event (as the ids package emits it)
  naming a node -> ``trust.evidence.ids_alert``.
- :func:`from_ear`: an EAR attestation result (``ear.status`` per submodule, IETF RATS
  EAR / Veraison shape) -> the attestation kind of its worst submodule status.

Both take decoded JSON (dicts), check sizes and types before use, and raise
:class:`~trust.errors.EvidenceError` naming the offending field; neither trusts the document
to be well formed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from trust.errors import EvidenceError
from trust.evidence import Evidence, from_attestation_result, from_ids_alert

MAX_DOCUMENT_BYTES = 64 * 1024
_EAR_RANK = {"affirming": 0, "none": 1, "warning": 2, "contraindicated": 3}
_EAR_STATUS = {
    "affirming": "affirming",
    "warning": "warning",
    "contraindicated": "contraindicated",
    "none": "missing",
}


def _size_check(doc: Any) -> None:
    if not isinstance(doc, Mapping):
        raise EvidenceError("document must be a JSON object", field="(root)")
    try:
        size = len(json.dumps(doc, default=str))
    except (TypeError, ValueError) as exc:
        raise EvidenceError("document is not JSON-serializable", field="(root)") from exc
    if size > MAX_DOCUMENT_BYTES:
        raise EvidenceError(f"document is {size} bytes, limit {MAX_DOCUMENT_BYTES}", field="(root)")


def _str(doc: Mapping[str, Any], key: str, field: str, *, max_len: int = 200) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise EvidenceError(f"{field} must be a non-empty string", field=field)
    return value


def from_eve_alert(eve: Mapping[str, Any], *, node_id: str, sensor: str) -> Evidence:
    """Evidence from an EVE ``alert`` event about ``node_id``.

    The evidence id is derived from the event (flow id or community id, signature id,
    timestamp), so the same alert delivered twice is refused as a replay.

    Raises:
        EvidenceError: not an alert, or a missing/ill-typed field (``event_type``,
            ``timestamp``, ``alert.severity``, ``alert.signature_id``) or an oversized document.
    """
    _size_check(eve)
    if eve.get("event_type") != "alert":
        raise EvidenceError("only alert events are evidence", field="event_type")
    stamp = _str(eve, "timestamp", "timestamp", max_len=64)
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EvidenceError("timestamp is not ISO 8601", field="timestamp") from exc
    observed_at = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    alert = eve.get("alert")
    if not isinstance(alert, Mapping):
        raise EvidenceError("alert must be an object", field="alert")
    severity = alert.get("severity")
    if isinstance(severity, bool) or severity not in (1, 2, 3):
        raise EvidenceError("alert.severity must be 1, 2 or 3", field="alert.severity")
    sid = alert.get("signature_id")
    if isinstance(sid, bool) or not isinstance(sid, int):
        raise EvidenceError("alert.signature_id must be an integer", field="alert.signature_id")
    flow = eve.get("community_id") or eve.get("flow_id") or ""
    signature = alert.get("signature")
    detail = f"sid {sid}: {signature}" if isinstance(signature, str) else f"sid {sid}"
    return from_ids_alert(
        evidence_id=f"eve:{flow}:{sid}:{stamp}"[:200],
        node_id=node_id,
        severity=severity,
        observed_at=observed_at,
        sensor=sensor,
        detail=detail[:1000],
    )


def from_ear(ear: Mapping[str, Any], *, node_id: str, verifier: str) -> Evidence:
    """Evidence from an EAR attestation result: the worst ``ear.status`` over its submodules
    (affirming < none < warning < contraindicated; ``none`` means no claim could be made and
    maps to ``missing``).

    Raises:
        EvidenceError: a missing/ill-typed field (``iat``, ``submods``,
            ``submods.<name>.ear.status``) or an oversized document.
    """
    _size_check(ear)
    iat = ear.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
        raise EvidenceError("iat must be a number (seconds since the epoch)", field="iat")
    submods = ear.get("submods")
    if not isinstance(submods, Mapping) or not submods:
        raise EvidenceError("submods must be a non-empty object", field="submods")
    worst = "affirming"
    for name, sub in submods.items():
        status = sub.get("ear.status") if isinstance(sub, Mapping) else None
        if status not in _EAR_RANK:
            raise EvidenceError(
                "ear.status must be affirming, warning, contraindicated or none",
                field=f"submods.{str(name)[:50]}.ear.status",
            )
        if _EAR_RANK[status] > _EAR_RANK[worst]:
            worst = status
    nonce = ear.get("eat_nonce")
    evidence_id = f"ear:{nonce}" if isinstance(nonce, str) and nonce else f"ear:{node_id}:{iat}"
    return from_attestation_result(
        evidence_id=evidence_id[:200],
        node_id=node_id,
        status=_EAR_STATUS[worst],
        observed_at=float(iat),
        verifier=verifier,
        detail=f"EAR status {worst} over {len(submods)} submodule(s)",
    )
