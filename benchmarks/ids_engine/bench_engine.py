"""Perimeter engine benchmarks (pytest-benchmark; run with --benchmark-only, or as a script).

- throughput: packets/s of `Engine.process` with 1,000 content rules over a generated
  mixed-traffic pcap (records read beforehand, so pcap I/O is excluded; a second figure
  includes reading). Target >= 100,000 packets/s on one core.
- flood memory: peak traced memory while a flood of SYNs from distinct sources creates new
  flows; with `max_flows` fixed the peak must not grow with the flood size.

Inputs are generated at run time into a temporary directory; nothing large is committed.
"""

from __future__ import annotations

import struct
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from traffic import content_rules, write_mixed_pcap

from ids.engine import Engine, EngineConfig, scan_pcap
from ids.engine.pcap import read_pcap

N_PACKETS = 100_000


def _records(tmp: Path, n: int = N_PACKETS) -> tuple[Path, list[tuple[float, int, bytes]]]:
    pcap = tmp / "mixed.pcap"
    write_mixed_pcap(pcap, n)
    return pcap, list(read_pcap(str(pcap)))


def run_throughput(records: list[tuple[float, int, bytes]], rules: str) -> dict[str, Any]:
    """Process `records` once with a fresh engine; CPU-time packets/s and alert count."""
    engine = Engine(rules)
    process = engine.process
    alerts = 0
    start = time.process_time()
    for ts, linktype, data in records:
        alerts += len(process(data, ts, linktype))
    cpu = time.process_time() - start
    return {
        "packets": len(records),
        "cpu_s": cpu,
        "packets_per_s": len(records) / cpu if cpu else float("inf"),
        "alerts": alerts,
        "prefilter": engine.prefilter.backend,
        "rules": len(engine.rules),
    }


def syn_flood(n: int, start_ip: int = 0x0A000000) -> list[bytes]:
    """`n` Ethernet/IPv4/TCP SYN frames from distinct source addresses."""
    base = bytearray(54)
    base[12:14] = b"\x08\x00"
    base[14:34] = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, b"\0" * 4, b"\xc0\xa8\0\1"
    )
    base[34:54] = struct.pack("!HHIIBBHHH", 1234, 80, 1, 0, 0x50, 0x02, 1024, 0, 0)
    frames = []
    for i in range(n):
        struct.pack_into("!I", base, 26, start_ip + i)
        frames.append(bytes(base))
    return frames


def flood_peak_bytes(n: int, max_flows: int) -> int:
    """Peak traced memory of an engine absorbing `n` new-flow SYNs."""
    frames = syn_flood(n)
    tracemalloc.start()
    engine = Engine("", config=EngineConfig(max_flows=max_flows))
    for i, frame in enumerate(frames):
        engine.process(frame, 1_700_000_000 + i * 1e-5, 1)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


@pytest.fixture(scope="module")
def mixed() -> Any:
    with tempfile.TemporaryDirectory(prefix="ids-bench-") as tmp:
        yield _records(Path(tmp))


def test_throughput_1000_content_rules(benchmark: Any, mixed: Any) -> None:
    _pcap, records = mixed
    rules = content_rules(1000)
    result = benchmark.pedantic(run_throughput, args=(records, rules), rounds=3, iterations=1)
    benchmark.extra_info.update(result)


def test_scan_including_pcap_read(benchmark: Any, mixed: Any) -> None:
    pcap, _ = mixed
    rules = content_rules(1000)

    def run() -> int:
        return sum(1 for _ in scan_pcap([str(pcap)], rules))

    benchmark.pedantic(run, rounds=2, iterations=1)


def test_flood_memory_bounded(benchmark: Any) -> None:
    small = flood_peak_bytes(50_000, max_flows=10_000)
    big = benchmark.pedantic(flood_peak_bytes, args=(200_000, 10_000), rounds=1, iterations=1)
    benchmark.extra_info.update({"peak_50k_syn": small, "peak_200k_syn": big})
    assert big < small * 1.3


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ids-bench-") as tmp:
        pcap, records = _records(Path(tmp))
        rules = content_rules(1000)
        best = max(
            (run_throughput(records, rules) for _ in range(3)), key=lambda r: r["packets_per_s"]
        )
        print(f"throughput: {best}")
        start = time.process_time()
        n = sum(1 for _ in scan_pcap([str(pcap)], rules))
        cpu = time.process_time() - start
        print(f"scan incl. pcap read (cpu): {len(records) / cpu:.0f} packets/s, {n} records")
    for n in (50_000, 200_000):
        print(f"flood {n} SYNs, max_flows=10000: peak {flood_peak_bytes(n, 10_000) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
