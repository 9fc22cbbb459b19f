"""The demo network every scenario runs in, and its benign background traffic.

Addresses (RFC 1918 inside, RFC 5737 documentation ranges outside):
scheduler/API 10.0.0.10 (port 8443), web 10.0.0.80, resolver 10.0.0.53, nodes
10.0.0.11-10.0.0.18 (node-01..node-08, agent port 7443), clients 10.0.1.1-10.0.1.40.

Background: clients browse the web server and call the API a few times, resolve ordinary
names, and the scheduler polls each node's agent. It stays below every detector's
threshold, so any alert on it is a false positive.
"""

from __future__ import annotations

import random

from ids.scenarios.craft import Trace, dns_query_frame, dns_response_frame, tcp_session

SCHEDULER = "10.0.0.10"
API_PORT = 8443
WEB = "10.0.0.80"
RESOLVER = "10.0.0.53"
AGENT_PORT = 7443
NODES: dict[str, str] = {f"10.0.0.{10 + i}": f"node-{i:02d}" for i in range(1, 9)}
CLIENTS = [f"10.0.1.{i}" for i in range(1, 41)]
BENIGN_NAMES = (
    "www.example.com",
    "api.example.org",
    "updates.cntrust.example",
    "time.example.net",
    "cdn.example.net",
    "mail.example.com",
    "a1b2c3.static.example.net",
    "login.example.org",
)
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def background(trace: Trace, rng: random.Random, t0: float, duration_s: float) -> None:
    """Add benign traffic spanning [t0, t0 + duration_s) to `trace`."""
    sessions = max(4, int(duration_s * 2))
    for _ in range(sessions):
        t = t0 + rng.random() * duration_s
        client = rng.choice(CLIENTS)
        cport = rng.randint(32768, 60999)
        roll = rng.random()
        if roll < 0.5:
            req = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
            tcp_session(trace, t, client, cport, WEB, 443, req, b"\x17\x03\x03" + b"x" * 900)
        elif roll < 0.7:
            req = b"POST /v1/tasks HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n{}"
            tcp_session(trace, t, client, cport, SCHEDULER, API_PORT, req, b"HTTP/1.1 201\r\n\r\n")
        else:
            qid = rng.randint(1, 65535)
            name = rng.choice(BENIGN_NAMES)
            trace.add(t, dns_query_frame(client, RESOLVER, cport, qid, name, "A"))
            trace.add(
                t + 0.004, dns_response_frame(RESOLVER, client, cport, qid, name, "192.0.2.80")
            )
    for i, node_ip in enumerate(NODES):
        t = t0 + (i + 1) * duration_s / (len(NODES) + 1)
        cport = 40000 + i
        req = b"GET /v1/agent/heartbeat HTTP/1.1\r\n\r\n"
        tcp_session(trace, t, SCHEDULER, cport, node_ip, AGENT_PORT, req, b"HTTP/1.1 200\r\n\r\n")
