"""Live sensor pieces: alert batching/shipping with retries, the run loop, AF_PACKET capture."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from ids.engine import Engine, SensorError
from ids.engine.sensor import AlertShipper, af_packet_source, run_sensor


class FakePost:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.calls: list[tuple[str, list[dict[str, Any]], dict[str, str]]] = []
        self.statuses = statuses or []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.calls.append((url, json.loads(body), headers))
        return self.statuses.pop(0) if self.statuses else 202


def alerts(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"event_type": "alert", "n": start + i} for i in range(n)]


def test_batches_by_size_with_bearer_token() -> None:
    post = FakePost()
    sh = AlertShipper("http://127.0.0.1:9/", "tok", post, batch_size=3, flush_interval_s=60)
    sh.add(alerts(2))
    assert post.calls == []
    sh.add(alerts(2, 2))
    assert [[a["n"] for a in body] for _u, body, _h in post.calls] == [[0, 1, 2], [3]]
    url, _body, headers = post.calls[0]
    assert url == "http://127.0.0.1:9/v1/alerts"
    assert headers["Authorization"] == "Bearer tok"
    assert sh.shipped == 4


def test_flushes_by_age() -> None:
    now = [0.0]
    post = FakePost()
    sh = AlertShipper(
        "http://x", None, post, batch_size=100, flush_interval_s=1.0, clock=lambda: now[0]
    )
    sh.add(alerts(1))
    assert post.calls == []
    now[0] = 1.5
    sh.maybe_flush()
    assert len(post.calls) == 1 and "Authorization" not in post.calls[0][2]


def test_failed_post_keeps_alerts_for_retry_in_order() -> None:
    post = FakePost(statuses=[503])
    sh = AlertShipper("http://x", "t", post, batch_size=10)
    sh.add(alerts(3))
    assert sh.flush() is False and sh.failed_posts == 1 and len(sh.pending) == 3
    assert sh.flush() is True
    assert [a["n"] for a in post.calls[-1][1]] == [0, 1, 2]


def test_oserror_counts_as_failure() -> None:
    def boom(url: str, body: bytes, headers: dict[str, str]) -> int:
        raise OSError("refused")

    sh = AlertShipper("http://x", "t", boom)
    sh.add(alerts(1))
    assert sh.flush() is False and sh.failed_posts >= 1


def test_pending_queue_is_bounded() -> None:
    sh = AlertShipper(
        "http://x", "t", FakePost(statuses=[500] * 100), batch_size=1000, max_pending=5
    )
    sh.add(alerts(8))
    assert len(sh.pending) == 5 and sh.dropped_alerts == 3
    assert [a["n"] for a in sh.pending] == [3, 4, 5, 6, 7]


def test_run_sensor_over_a_fake_source() -> None:
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / b"attack")
    source = iter([(frame, 1.0, 1), (b"", 2.0, 1), (frame, 3.0, 1)])
    post = FakePost()
    engine = Engine('alert udp any any -> any any (msg:"a"; content:"attack"; sid:5;)')
    frames = run_sensor(engine, source, AlertShipper("http://x", "t", post, batch_size=10))
    assert frames == 2
    assert [a["alert"]["signature_id"] for _u, body, _h in post.calls for a in body] == [5, 5]


def test_run_sensor_stops_after_max_packets() -> None:
    frame = bytes(Ether() / IP() / UDP())
    source = iter([(frame, float(i), 1) for i in range(10)])
    assert (
        run_sensor(Engine(""), source, AlertShipper("http://x", None, FakePost()), max_packets=3)
        == 3
    )


def test_af_packet_bad_interface_raises_sensor_error() -> None:
    with pytest.raises(SensorError):
        next(af_packet_source("no-such-if0"))


def _can_capture() -> bool:
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
    except (OSError, AttributeError):
        return False
    s.close()
    return True


@pytest.mark.skipif(not _can_capture(), reason="raw AF_PACKET capture needs Linux and CAP_NET_RAW")
def test_af_packet_capture_on_loopback_sees_udp_once() -> None:
    marker = b"cntrust-sensor-%d" % time.time_ns()
    src = af_packet_source("lo", timeout_s=0.05)
    next(src)  # the socket is open once the generator has yielded
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(marker, ("127.0.0.1", 9))
    seen: list[bytes] = []
    deadline = time.monotonic() + 1.5
    for frame, _ts, _lt in src:
        if marker in frame and frame[23] == 17:  # the UDP datagram, not the ICMP error
            seen.append(frame)
        if time.monotonic() > deadline:
            break
    assert len(seen) == 1


def test_batches_are_cut_by_size_and_an_oversized_alert_is_dropped() -> None:
    post = FakePost()
    sh = AlertShipper("http://x", "t", post, batch_size=100, max_batch_bytes=200)
    small = [{"event_type": "alert", "n": i, "pad": "x" * 40} for i in range(6)]
    huge = {"event_type": "alert", "n": 99, "pad": "y" * 500}
    sh.add([*small[:3], huge, *small[3:]])
    assert sh.flush()
    bodies = [body for _u, body, _h in post.calls]
    assert all(len(json.dumps(b, separators=(",", ":"))) <= 200 for b in bodies)
    assert [a["n"] for b in bodies for a in b] == [0, 1, 2, 3, 4, 5]  # order kept
    assert len(bodies) >= 2 and sh.oversized_alerts == 1 and sh.shipped == 6
