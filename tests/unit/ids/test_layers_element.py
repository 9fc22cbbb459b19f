"""Element-layer detections over telemetry records."""

from __future__ import annotations

import pytest

from ids.layers import (
    AuthFailure,
    ElementConfig,
    FileWrite,
    LayersConfigError,
    ListeningSocket,
    ProcessSample,
    TaskUsage,
    TelemetryRecord,
    detect_element,
)

NOW = 1_767_225_600_000
SCRATCH = "/var/lib/cntrust/scratch/task-1"
DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def task(**kw: object) -> TaskUsage:
    base: dict = dict(
        task_id="task-1",
        state="running",
        scratch_dir=SCRATCH,
        cpu_request_millicores=1000,
        memory_request_bytes=1 << 30,
        window_ms=60_000,
        cpu_ms_in_window=30_000,
        rss_bytes=1 << 28,
        output_bytes_in_window=4096,
        pids=(4242,),
        allowed_ports=(8080,),
    )
    base.update(kw)
    return TaskUsage(**base)


def record(**kw: object) -> TelemetryRecord:
    base: dict = dict(
        node_id="node-01",
        node_ip="10.0.0.11",
        seq=2,
        collected_at_ms=NOW,
        attested_digest=DIGEST_A,
        measurement_digest=DIGEST_A,
        listening=(ListeningSocket("tcp", "0.0.0.0", 7443, 1, 1),),
        tasks=(task(),),
    )
    base.update(kw)
    return TelemetryRecord(**base)


def detections(alerts: list[dict]) -> list[str]:
    return [a["cntrust"]["detection"] for a in alerts]


def test_clean_record_raises_nothing() -> None:
    assert detect_element(record()) == []


def test_alerts_name_the_node_and_layer() -> None:
    alerts = detect_element(record(measurement_digest=DIGEST_B))
    assert detections(alerts) == ["ids.element.measurement_drift"]
    a = alerts[0]
    assert a["cntrust"]["node_id"] == "node-01" and a["cntrust"]["layer"] == "element"
    assert a["dest_ip"] == "10.0.0.11" and a["alert"]["severity"] == 1
    assert a["timestamp"].startswith("2026-01-01T00:00:00")
    assert DIGEST_B in a["cntrust"]["reasons"][0]


def test_drift_between_records_even_without_attested_digest() -> None:
    prev = record(attested_digest="", measurement_digest=DIGEST_A, seq=1)
    cur = record(attested_digest="", measurement_digest=DIGEST_B)
    alerts = detect_element(cur, previous=prev)
    assert detections(alerts) == ["ids.element.measurement_drift"]
    assert "changed since seq 1" in alerts[0]["cntrust"]["reasons"][0]
    assert detect_element(cur, previous=cur) == []


def test_unexpected_listener_and_task_allowed_ports() -> None:
    socks = (
        ListeningSocket("tcp", "0.0.0.0", 7443, 1, 1),  # expected (agent)
        ListeningSocket("tcp", "0.0.0.0", 8080, 2, 4242),  # task's allowed port
        ListeningSocket("tcp6", "::", 4444, 3, 4242),  # task, not allowed
        ListeningSocket("udp", "0.0.0.0", 31337, 4, 0),  # unknown owner
    )
    alerts = detect_element(record(listening=socks))
    assert detections(alerts) == ["ids.element.unexpected_listener"] * 2
    assert [a["dest_port"] for a in alerts] == [4444, 31337]
    assert "owner: task task-1" in alerts[0]["cntrust"]["reasons"][0]
    assert alerts[1]["proto"] == "UDP"


def test_leftover_process_and_listener_after_task_ended() -> None:
    ended = task(state="ended")
    alerts = detect_element(
        record(
            tasks=(ended,),
            listening=(ListeningSocket("tcp", "0.0.0.0", 8080, 2, 4242),),
            processes=(ProcessSample(4242, 1, "miner", "task-1", 99_000, 1 << 20),),
        )
    )
    assert detections(alerts) == ["ids.element.leftover_process"] * 2
    assert "which has ended" in alerts[0]["cntrust"]["reasons"][0]
    assert "runs after it ended" in alerts[1]["cntrust"]["reasons"][0]


@pytest.mark.parametrize(
    ("path", "flagged"),
    [
        (f"{SCRATCH}/out.bin", False),
        (SCRATCH, False),
        ("/dev/null", False),
        (f"{SCRATCH}/../../../../etc/cron.d/x", True),
        ("/etc/passwd", True),
        (SCRATCH + "-evil/file", True),
        ("relative/path", True),
    ],
)
def test_writes_outside_scratch(path: str, flagged: bool) -> None:
    alerts = detect_element(record(file_writes=(FileWrite("task-1", 4242, path),)))
    assert detections(alerts) == (["ids.element.write_outside_scratch"] if flagged else [])


def test_write_by_unknown_task_is_flagged() -> None:
    alerts = detect_element(record(file_writes=(FileWrite("ghost", 1, "/tmp/x"),)))
    assert "<unknown task>" in alerts[0]["cntrust"]["reasons"][0]


def test_cpu_and_memory_overuse() -> None:
    alerts = detect_element(record(tasks=(task(cpu_ms_in_window=120_000, rss_bytes=2 << 30),)))
    assert detections(alerts) == ["ids.element.resource_overuse"]
    reasons = alerts[0]["cntrust"]["reasons"]
    assert reasons[0].startswith("cpu_millicores=2000 > cpu_request_millicores=1000")
    assert reasons[1].startswith("rss_bytes=")
    within = record(tasks=(task(cpu_ms_in_window=70_000),))
    assert detect_element(within) == []


def test_mining_style_abuse() -> None:
    miner = task(window_ms=600_000, cpu_ms_in_window=590_000, output_bytes_in_window=0)
    alerts = detect_element(record(tasks=(miner,)))
    assert detections(alerts) == ["ids.element.mining_suspected"]
    assert "output_bytes_in_window=0" in alerts[0]["cntrust"]["reasons"]
    productive = task(window_ms=600_000, cpu_ms_in_window=590_000, output_bytes_in_window=1)
    assert detect_element(record(tasks=(productive,))) == []
    short = task(window_ms=60_000, cpu_ms_in_window=59_000, output_bytes_in_window=0)
    assert detect_element(record(tasks=(short,))) == []


def test_repeated_auth_failures() -> None:
    fails = tuple(AuthFailure(NOW - i * 1000, "203.0.113.9", "admin", "bad") for i in range(6))
    alerts = detect_element(record(auth_failures=fails))
    assert detections(alerts) == ["ids.element.auth_failures"]
    assert alerts[0]["src_ip"] == "203.0.113.9"
    old = tuple(AuthFailure(NOW - 10_000_000 - i, "203.0.113.9", "admin", "bad") for i in range(6))
    assert detect_element(record(auth_failures=old)) == []
    spread = tuple(AuthFailure(NOW - i, f"203.0.113.{i}", "admin", "bad") for i in range(6))
    alerts = detect_element(record(auth_failures=spread))
    assert detections(alerts) == ["ids.element.auth_failures"]
    assert "from 6 sources" in alerts[0]["cntrust"]["reasons"][0]


def test_config_validation() -> None:
    with pytest.raises(LayersConfigError):
        ElementConfig(mining_cpu_fraction=0)
    with pytest.raises(LayersConfigError):
        ElementConfig(cpu_tolerance=-0.1)
    with pytest.raises(LayersConfigError):
        ElementConfig(min_auth_failures=0)
