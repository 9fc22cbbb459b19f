"""Peer suite: OISF suricata-verify cases (../shared/peer-tests/suricata-verify).

For every case listed in TESTS.txt: run the engine over the case's pcap with its test.rules
(action-order and vars from its suricata.yaml, --simulate-ips and stream.midstream settings
from its args), then evaluate the `filter` checks of test.yaml against the EVE records:
`count` lines where every `match` entry holds (dotted keys; `has-key` / `not-has-key`).
A filter on an event type this engine does not produce (app-layer records such as http,
dns, tls, ssh, smb, fileinfo, pgsql) is skipped with that reason, as
are non-filter checks (shell, stats). Cases in known_failing.txt are strict xfails, each
with its reason, so a case that starts passing is noticed.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from ids.engine import EngineConfig, scan_pcap

HERE = Path(__file__).resolve()
REPO = HERE.parents[3]
_CANDIDATES = [REPO / ".." / "shared", REPO / ".." / ".." / "shared"]
SHARED = next((p for p in _CANDIDATES if (p / "peer-tests").is_dir()), _CANDIDATES[0])
SV = SHARED / "peer-tests" / "suricata-verify"
ENGINE_EVENT_TYPES = frozenset({"alert", "drop", "flow", "stats"})
SURICATA_VERSION = (7, 0, 10)


def _cases() -> list[str]:
    listing = SV / "TESTS.txt"
    if not listing.is_file():
        return []
    return [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]


def _known_failing() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (HERE.parent / "known_failing.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, reason = line.partition(":")
        out[name.strip()] = reason.strip()
    return out


def _version(text: Any) -> tuple[int, ...]:
    return tuple(int(p) for p in str(text).split("."))


def _version_ok(req: dict[str, Any] | None) -> bool:
    if not req:
        return True
    if "min-version" in req:
        want = _version(req["min-version"])
        if SURICATA_VERSION[: len(want)] < want:
            return False
    if "lt-version" in req:
        lt = _version(req["lt-version"])
        if SURICATA_VERSION[: len(lt)] >= lt:
            return False
    return True


def find_value(path: str, event: Any) -> Any:
    """Follow a dotted key (with `[i]` indexes and `__len`) into an EVE record."""
    cur = event
    for part in path.split("."):
        if part == "__len":
            return len(cur) if isinstance(cur, list | dict | str) else None
        idx = None
        if part.endswith("]") and "[" in part:
            part, _, rest = part.partition("[")
            idx = int(rest[:-1])
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
        if idx is not None:
            if not isinstance(cur, list) or idx >= len(cur):
                return None
            cur = cur[idx]
    return cur


def filter_matches(match: dict[str, Any], event: dict[str, Any]) -> bool:
    """suricata-verify's filter semantics for one EVE record."""
    for key, expected in match.items():
        if key == "has-key":
            if find_value(str(expected), event) is None:
                return False
        elif key == "not-has-key":
            if find_value(str(expected), event) is not None:
                return False
        else:
            val = find_value(key, event)
            if val != expected and str(val) != str(expected):
                return False
    return True


def _config(case_dir: Path, test: dict[str, Any]) -> EngineConfig:
    args: list[str] = []
    for a in test.get("args") or []:
        args.extend(shlex.split(str(a)))
    sets: dict[str, str] = {}
    for i, a in enumerate(args):
        if a == "--set" and i + 1 < len(args) and "=" in args[i + 1]:
            k, _, v = args[i + 1].partition("=")
            sets[k] = v
    action_order = ("pass", "drop", "reject", "alert")
    conf_path = case_dir / "suricata.yaml"
    if conf_path.is_file():
        text = conf_path.read_text()
        conf = yaml.safe_load(text.split("\n", 1)[1] if text.startswith("%YAML") else text)
        if isinstance(conf, dict) and conf.get("action-order"):
            action_order = tuple(conf["action-order"])
    return EngineConfig(
        action_order=action_order,
        ips="--simulate-ips" in args,
        midstream=sets.get("stream.midstream", "false") == "true",
        midstream_policy=sets.get("stream.midstream-policy", "ignore"),
        log_flows=True,
        log_drops=True,
    )


def run_case(name: str) -> tuple[list[str], list[str], int]:
    """Run one case: (failures, skip reasons, evaluated filter count)."""
    case_dir = SV / "tests" / name
    test = yaml.safe_load((case_dir / "test.yaml").read_text())
    if test.get("pcap"):
        pcap = case_dir / test["pcap"]
    else:
        pcaps = sorted(case_dir.glob("*.pcap"))
        if not pcaps:
            return [], ["no pcap in case"], 0
        pcap = pcaps[0]
    rules_path = case_dir / "test.rules"
    rules = rules_path.read_text() if rules_path.is_file() else ""
    events = list(scan_pcap([str(pcap)], rules, config=_config(case_dir, test), log_stats=True))
    failures: list[str] = []
    skips: list[str] = []
    evaluated = 0
    for check in test.get("checks") or []:
        if "filter" not in check:
            skips.append(f"{next(iter(check))} check not evaluated")
            continue
        flt = check["filter"]
        if not _version_ok(flt.get("requires")):
            skips.append("filter requires another Suricata version")
            continue
        match = flt.get("match") or {}
        etype = match.get("event_type")
        if etype is not None and etype not in ENGINE_EVENT_TYPES:
            skips.append(f"event_type {etype} not produced by this engine")
            continue
        evaluated += 1
        got = sum(1 for ev in events if filter_matches(match, ev))
        if "count" in flt and got != flt["count"]:
            failures.append(f"count {got} != {flt['count']} for {match}")
        elif "count" not in flt and got == 0:
            failures.append(f"no record matches {match}")
    return failures, skips, evaluated


CASES = _cases()
KNOWN = _known_failing() if CASES else {}


def _params() -> list[Any]:
    return [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN[name])] if name in KNOWN else [],
            id=name,
        )
        for name in CASES
    ]


@pytest.mark.skipif(not CASES, reason=f"suricata-verify peer suite not found at {SV}")
@pytest.mark.parametrize("name", _params() or [pytest.param("none", id="absent")])
def test_suricata_verify_case(name: str) -> None:
    failures, skips, evaluated = run_case(name)
    if evaluated == 0:
        pytest.skip("; ".join(skips) or "no filter checks")
    assert not failures, "; ".join(failures)


def test_known_failing_entries_are_listed_cases() -> None:
    if not CASES:
        pytest.skip(f"suricata-verify peer suite not found at {SV}")
    stale = set(_known_failing()) - set(CASES)
    assert not stale, f"known_failing.txt names cases not in TESTS.txt: {sorted(stale)}"


def test_filter_semantics() -> None:
    ev = {"event_type": "alert", "alert": {"signature_id": 5, "engine": None}, "src_port": 80}
    assert filter_matches({"event_type": "alert", "alert.signature_id": 5}, ev)
    assert not filter_matches({"alert.signature_id": 6}, ev)
    assert filter_matches({"src_port": "80"}, ev)
    assert filter_matches({"has-key": "alert.signature_id"}, ev)
    assert not filter_matches({"has-key": "alert.engine"}, ev)
    assert filter_matches({"not-has-key": "alert.rev"}, ev)
    assert find_value("alert.__len", ev) == 2
