"""Throughput of the whole-network correlator (alerts/s) and the perimeter sensor
(packets/s). Run explicitly:

    python -m pytest benchmarks/ids_layers --benchmark-only

Each benchmark stores its rate in ``extra_info`` (alerts_per_s / packets_per_s).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from ids.layers import (
    Aggregator,
    Correlator,
    CorrelatorConfig,
    PacketSummary,
    PerimeterSensor,
    make_alert,
)

T0 = 1_767_225_600.0
NODES = {f"10.0.{i // 250}.{i % 250 + 1}": f"node-{i:03d}" for i in range(200)}
N_ALERTS = 20_000
N_PACKETS = 50_000


def _alerts(n: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    node_ips = list(NODES)
    out = []
    for i in range(n):
        roll = rng.random()
        outside = f"{rng.choice([198, 203, 100])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.1"
        src = rng.choice(node_ips) if roll < 0.05 else outside
        flood = roll > 0.8
        out.append(
            make_alert(
                ts=T0 + i * 0.01,
                src_ip=src,
                dest_ip=rng.choice(node_ips),
                proto=6,
                src_port=rng.randint(1024, 65535),
                dest_port=rng.choice([22, 80, 443, 8443]),
                signature_id=rng.choice([1_990_001, 1_990_003, 9_000_001, 2_000_010]),
                signature="bench",
                category="Attempted Denial of Service" if flood else "Attempted Information Leak",
                severity=rng.choice([1, 2, 3]),
                layer="perimeter",
            )
        )
    return out


@pytest.fixture(scope="module")
def alerts() -> list[dict[str, Any]]:
    return _alerts(N_ALERTS)


def test_correlator_throughput(benchmark: Any, alerts: list[dict[str, Any]]) -> None:
    def run() -> int:
        corr = Correlator(CorrelatorConfig(node_ips=NODES))
        for a in alerts:
            corr.ingest(a)
        return len(corr.incidents())

    incidents = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["alerts"] = len(alerts)
    benchmark.extra_info["alerts_per_s"] = round(len(alerts) / benchmark.stats.stats.mean)
    benchmark.extra_info["incidents"] = incidents
    assert incidents > 0


def test_aggregator_throughput(benchmark: Any, alerts: list[dict[str, Any]]) -> None:
    def run() -> int:
        agg = Aggregator()
        for a in alerts:
            agg.add(a)
        return len(agg.results())

    groups = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["alerts_per_s"] = round(len(alerts) / benchmark.stats.stats.mean)
    assert groups > 0


def _packets(n: int) -> list[PacketSummary]:
    rng = random.Random(2)
    pkts = []
    for i in range(n):
        src = f"100.{rng.randint(64, 127)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        kind = rng.random()
        if kind < 0.5:
            pkts.append(
                PacketSummary(
                    T0 + i * 1e-4, src, "10.0.0.80", rng.randint(1024, 65535), 443, 6, 0x02
                )
            )
        elif kind < 0.8:
            pkts.append(
                PacketSummary(
                    T0 + i * 1e-4, src, "10.0.0.80", rng.randint(1024, 65535), 443, 6, 0x10, 100
                )
            )
        else:
            pkts.append(
                PacketSummary(
                    T0 + i * 1e-4, src, "10.0.0.53", 5353, 53, 17, 0, 40, "www.example.com"
                )
            )
    return pkts


def test_perimeter_sensor_throughput(benchmark: Any) -> None:
    pkts = _packets(N_PACKETS)

    def run() -> int:
        return len(PerimeterSensor().observe_all(pkts))

    n_alerts = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["packets_per_s"] = round(len(pkts) / benchmark.stats.stats.mean)
    assert n_alerts > 0
