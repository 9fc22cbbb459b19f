"""Minimal application-protocol detection, so rules written for `http`, `tls`, `ssh`, `dns`,
`smb`, `ftp`, `smtp` or `pgsql` only match flows that carry that protocol.

Detection looks at the first payload bytes of a flow (request line, record header, banner)
and, for DNS, the well-known port. It is deliberately conservative: an unrecognised flow has
no app protocol, and app-protocol rules do not match it. Parsing of the protocols' fields
(http.uri, tls.sni, ...) is out of scope: such keywords are rejected at rule load.
"""

from __future__ import annotations

_HTTP_METHODS = (
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"TRACE ",
    b"PATCH ",
)


def detect_app_proto(payload: bytes, ipproto: int, sport: int, dport: int) -> str:
    """Return the app protocol name for a flow's first payload, or "" when unknown."""
    if ipproto == 17:
        return "dns" if sport == 53 or dport == 53 else ""
    if payload.startswith(_HTTP_METHODS) or payload.startswith(b"HTTP/1."):
        return "http"
    if len(payload) >= 3 and payload[0] in (0x14, 0x15, 0x16, 0x17) and payload[1] == 3:
        return "tls" if payload[2] <= 4 else ""
    if payload.startswith(b"SSH-"):
        return "ssh"
    if len(payload) >= 8 and payload[5:8] == b"SMB" and payload[4] in (0xFF, 0xFE, 0xFD):
        return "smb"
    if 53 in (sport, dport):
        return "dns"
    if len(payload) >= 8 and 5432 in (sport, dport):
        return "pgsql"
    if 21 in (sport, dport) and payload[:4] in (b"USER", b"220 ", b"220-"):
        return "ftp"
    if 25 in (sport, dport) and payload[:4] in (b"EHLO", b"HELO", b"220 ", b"220-"):
        return "smtp"
    return ""
