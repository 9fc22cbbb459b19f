"""`cntrust ids scan|sensor` through typer's CliRunner."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap
from typer.testing import CliRunner

from scheduler.cli.ids_cmd import app

runner = CliRunner()
RULE = 'alert tcp any any -> $HOME_NET 80 (msg:"evil"; content:"evil"; sid:42; rev:1;)\n'


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    eth = Ether()
    pkts = [
        eth / IP(src="8.8.8.8", dst="10.1.1.1") / TCP(sport=5555, dport=80, flags="PA") / b"evil",
        eth / IP(src="8.8.8.8", dst="172.31.0.1") / TCP(sport=5555, dport=80, flags="PA") / b"evil",
    ]
    path = tmp_path / "in.pcap"
    wrpcap(str(path), pkts)
    return path


def test_scan_writes_eve_to_stdout(capture: Path, tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(RULE)
    res = runner.invoke(app, ["scan", str(capture), "--rules", str(rules), "--packet"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [e["alert"]["signature_id"] for e in lines] == [42, 42]
    assert all(e["packet"] for e in lines)


def test_scan_vars_and_eve_file(capture: Path, tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(RULE)
    out = tmp_path / "eve.json"
    res = runner.invoke(
        app,
        [
            "scan",
            str(capture),
            "--rules",
            str(rules),
            "--eve",
            str(out),
            "--var",
            "HOME_NET=[10.0.0.0/8]",
            "--node-id",
            "n1",
        ],
    )
    assert res.exit_code == 0, res.output
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert [e["dest_ip"] for e in events] == ["10.1.1.1"]
    assert events[0]["cntrust"] == {"layer": "perimeter", "node_id": "n1"}


def test_scan_reports_skipped_rules(capture: Path, tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(RULE + "alert tcp any any -> any any (http.method; sid:9;)\n")
    res = runner.invoke(app, ["scan", str(capture), "--rules", str(rules)])
    assert res.exit_code == 0
    assert "rule skipped: line 2 sid 9" in res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "/nonexistent.pcap"],
        ["scan", "{bad}", "--var", "novalue"],
        ["scan", "{bad}"],
        ["scan", "{cap}", "--rules", "/nonexistent.rules"],
        ["sensor", "--iface", "lo", "--server", "ftp://x"],
    ],
)
def test_bad_input_exits_2_without_traceback(
    args: list[str], capture: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    args = [a.replace("{bad}", str(bad)).replace("{cap}", str(capture)) for a in args]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert "error:" in res.stderr and "Traceback" not in res.output


def _can_capture() -> bool:
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
    except (OSError, AttributeError):
        return False
    s.close()
    return True


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Collector.received.append(
            (self.path, self.headers.get("Authorization", ""), json.loads(body))
        )
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.mark.skipif(not _can_capture(), reason="raw AF_PACKET capture needs Linux and CAP_NET_RAW")
def test_sensor_ships_alerts_to_the_server(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    marker = f"cntrust-cli-{time.time_ns()}"
    rules = tmp_path / "r.rules"
    rules.write_text(f'alert udp any any -> any 9 (msg:"m"; content:"{marker}"; sid:77;)\n')

    def send() -> None:
        time.sleep(0.5)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(marker.encode(), ("127.0.0.1", 9))

    threading.Thread(target=send).start()
    try:
        res = runner.invoke(
            app,
            [
                "sensor",
                "--iface",
                "lo",
                "--server",
                f"http://127.0.0.1:{server.server_port}",
                "--rules",
                str(rules),
                "--token",
                "sekret",
                "--duration-s",
                "1.5",
                "--flush-s",
                "0.1",
            ],
        )
    finally:
        server.shutdown()
    assert res.exit_code == 0, res.output
    shipped = [(p, auth, a) for p, auth, batch in _Collector.received for a in batch]
    assert shipped and all(p == "/v1/alerts" and auth == "Bearer sekret" for p, auth, _a in shipped)
    assert {a["alert"]["signature_id"] for _p, _au, a in shipped} == {77}
    assert all("pcap_cnt" not in a for _p, _au, a in shipped)  # live: no pcap counter
