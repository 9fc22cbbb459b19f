"""The /proc collector, against this Linux machine and against fixed /proc texts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ids.layers import ProcCollector, TaskSpec, detect_element
from ids.layers.collector import parse_proc_net, parse_stat

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

TCP_TEXT = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when ... inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0
   1: 0100007F:1F91 0200007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0
   garbage line
"""
TCP6_TEXT = (
    "  sl  local_address remote_address st\n"
    "   0: 00000000000000000000000001000000:1F90 "
    "00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000"
    "  1000 0 777 1\n"
)
UDP_TEXT = """  sl  local_address rem_address   st
   0: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 555 2
   1: 00000000:0036 0100007F:0035 07 00000000:00000000 00:00000000 00000000     0        0 556 2
"""


def test_parse_proc_net_texts() -> None:
    assert parse_proc_net(TCP_TEXT, "tcp") == [("127.0.0.1", 8080, 12345)]
    assert parse_proc_net(TCP6_TEXT, "tcp6") == [("::1", 8080, 777)]
    assert parse_proc_net(UDP_TEXT, "udp") == [("0.0.0.0", 53, 555)]


def test_parse_stat_handles_odd_comm() -> None:
    line = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 1 0 1 0 0"
    assert parse_stat(line) == ("a (weird) name", 17, 300)
    with pytest.raises(ValueError):
        parse_stat("nonsense")


def test_listening_socket_owned_by_this_process() -> None:
    collector = ProcCollector(clock_ms=lambda: 0)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        socks = collector.listening_sockets()
    mine = [s for s in socks if s.port == port]
    assert len(mine) == 1
    assert mine[0].proto == "tcp" and mine[0].address == "127.0.0.1"
    assert mine[0].pid == os.getpid()


def test_process_sample_of_self() -> None:
    sample = ProcCollector(clock_ms=lambda: 0).process(os.getpid(), "t")
    assert sample is not None
    assert sample.pid == os.getpid() and sample.ppid == os.getppid()
    assert sample.rss_bytes > 1_000_000 and sample.task_id == "t"
    assert ProcCollector(clock_ms=lambda: 0).process(2**22 + 12345) is None


def test_task_tree_cpu_window_and_writes_outside_scratch(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    outside = tmp_path / "outside.log"
    code = (
        "import sys, time\n"
        f"f = open({str(outside)!r}, 'w')\n"
        f"g = open({str(scratch / 'ok.bin')!r}, 'w')\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
        "end = time.time() + 30\n"
        "while time.time() < end: pass\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        now = [1_000_000]
        collector = ProcCollector(clock_ms=lambda: now[0])
        spec = TaskSpec("task-1", "running", str(scratch), (child.pid,), cpu_request_millicores=10)
        first = collector.collect(node_id="node-01", node_ip="127.0.0.1", seq=1, tasks=[spec])
        assert first.tasks[0].pids == (child.pid,)
        time.sleep(0.45)
        now[0] += 450
        second = collector.collect(node_id="node-01", node_ip="127.0.0.1", seq=2, tasks=[spec])
        usage = second.tasks[0]
        assert usage.window_ms == 450
        assert usage.cpu_ms_in_window >= 20  # the busy loop ran in the window (busy machine)
        paths = {w.path for w in second.file_writes}
        assert str(outside) in paths and str(scratch / "ok.bin") in paths
        kinds = [a["cntrust"]["detection"] for a in detect_element(second)]
        assert "ids.element.write_outside_scratch" in kinds
        assert "ids.element.resource_overuse" in kinds
        ended = TaskSpec("task-1", "ended", str(scratch), (child.pid,))
        third = collector.collect(node_id="node-01", node_ip="127.0.0.1", seq=3, tasks=[ended])
        kinds = [a["cntrust"]["detection"] for a in detect_element(third)]
        assert "ids.element.leftover_process" in kinds
    finally:
        child.kill()
        child.wait()


def test_collect_from_a_fake_proc_tree(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(TCP_TEXT)
    (tmp_path / "net" / "udp").write_text(UDP_TEXT)
    proc = tmp_path / "4242"
    (proc / "fd").mkdir(parents=True)
    (proc / "stat").write_text("4242 (job) S 1 4242 4242 0 -1 0 0 0 0 0 100 100 0 0 20 0 1 0 1 0 0")
    (proc / "statm").write_text("1000 250 0 0 0 0 0")
    os.symlink("socket:[12345]", proc / "fd" / "3")
    collector = ProcCollector(clock_ms=lambda: 5, proc_root=tmp_path, clk_tck=100, page_size=4096)
    rec = collector.collect(
        node_id="n",
        node_ip="10.0.0.1",
        seq=1,
        tasks=[TaskSpec("t", "running", "/scratch", (4242,), allowed_ports=(8080,))],
    )
    assert [(s.proto, s.port, s.pid) for s in rec.listening] == [
        ("tcp", 8080, 4242),
        ("udp", 53, 0),
    ]
    assert rec.processes[0].cpu_ms == 2000 and rec.processes[0].rss_bytes == 250 * 4096
    alerts = detect_element(rec)
    assert [(a["cntrust"]["detection"], a["dest_port"]) for a in alerts] == [
        ("ids.element.unexpected_listener", 53)
    ]
