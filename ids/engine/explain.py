"""Decode the packet behind an alert for an analyst (scapy, off the hot path).

Alerts carry the frame when the engine runs with `log_packet=True` (`packet`, base64, and
`packet_info.linktype`). `describe_packet` turns it into scapy's layer-by-layer text. Scapy
is imported lazily: only callers that explain alerts pay for it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ids.engine.errors import EngineError

MAX_PACKET_BYTES = 262_144


class ExplainError(EngineError):
    """The alert carries no decodable packet."""


def describe_packet(alert: dict[str, Any]) -> str:
    """Scapy's `show()` text for the frame in an EVE alert.

    Raises:
        ExplainError: the alert has no `packet`, it is not base64, or it is too large.
    """
    b64 = alert.get("packet")
    if not isinstance(b64, str) or not b64:
        raise ExplainError("alert has no packet (run the engine with log_packet=True)")
    if len(b64) > MAX_PACKET_BYTES * 4 // 3 + 4:
        raise ExplainError("packet too large")
    try:
        frame = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ExplainError("packet is not valid base64") from exc
    info = alert.get("packet_info")
    linktype = info.get("linktype", 1) if isinstance(info, dict) else 1
    from scapy.config import conf
    from scapy.packet import Raw

    cls: Any = conf.l2types.get(linktype, Raw) if isinstance(linktype, int) else Raw
    pkt = cls(frame)
    text = pkt.show(dump=True)
    return str(text)
