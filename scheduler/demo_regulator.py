"""The demo's last act: a regulator checks a task's provenance without trusting the operator.

The regulator (role ``regulator``) fetches the task's proof bundle and the log's verifier
key, verifies the bundle offline (checkpoint signature, record signature, the node's own
signature over its result, inclusion, consistency to the anchored root), then checks the
anchor against the embedded chain, follows the log once as a monitor, and finally catches
two tampered copies of the bundle, each at its named step.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

from audit_chain import Anchor, BundleVerificationError, parse_bundle, verify_bundle

if TYPE_CHECKING:
    from scheduler.demo import Scenario

BUNDLE_LIMIT_BYTES = 4096


def _fetch_anchored_bundle(
    url: str, task_id: str, token: str, timeout_s: float = 30.0
) -> tuple[bytes, int]:
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout_s
    while True:
        resp = httpx.get(f"{url}/v1/tasks/{task_id}/bundle", headers=headers, timeout=10)
        if resp.status_code == 200 and parse_bundle(resp.content).anchor is not None:
            return resp.content, resp.status_code
        if time.monotonic() > deadline:
            return resp.content, resp.status_code
        time.sleep(0.25)


def _step_of(data: bytes, vkey: str, **kwargs: Any) -> str:
    try:
        verify_bundle(data, vkey, **kwargs)
    except BundleVerificationError as exc:
        return exc.step
    return "none (accepted)"


def regulator_steps(scenario: Scenario, task_id: str) -> None:
    """Append the regulator's checks about ``task_id`` to the demo's scenario."""
    d = scenario.d
    scenario.console.rule("[bold]a regulator verifies a task's provenance")
    assert d.service is not None
    if d.provenance is None:
        scenario.check("provenance log is on", "on", "off", False)
        return
    token = d.service.issue_token("regulator", "auditor-1", timedelta(minutes=10))
    data, status = _fetch_anchored_bundle(d.url, task_id, token)
    anchored = status == 200 and parse_bundle(data).anchor is not None
    scenario.check(
        "regulator fetches the task's proof bundle",
        f"an anchored bundle of at most {BUNDLE_LIMIT_BYTES} bytes",
        f"HTTP {status}, {len(data)} bytes, {'anchored' if anchored else 'NOT anchored'}",
        anchored and len(data) <= BUNDLE_LIMIT_BYTES,
    )
    if not anchored:
        return
    vkey = httpx.get(f"{d.url}/log/key", timeout=10).text.strip()
    offline = _step_of(data, vkey, require_node_signature=True)
    scenario.check(
        "bundle verifies offline (signatures, node's own signature, inclusion, consistency)",
        "every step holds",
        "every step holds" if offline == "none (accepted)" else f"failed at {offline}",
        offline == "none (accepted)",
    )

    chain = d.provenance.chain
    if chain is not None:
        from audit_chain.anchoring import verify_anchor_on_chain

        def on_chain(anchor: Anchor) -> None:
            record = {
                "chain_id": anchor.chain_id,
                "contract": anchor.contract,
                "tx_hash": anchor.tx_hash,
                "block_number": anchor.block_number,
                "tree_size": anchor.tree_size,
                "root": anchor.root,
                "log_id": anchor.log_id,
                "block_hash": anchor.block_hash,
            }
            verify_anchor_on_chain(chain.web3, record, 1)

        checked = _step_of(data, vkey, check_anchor=on_chain)
        anchor = parse_bundle(data).anchor
        assert anchor is not None
        scenario.check(
            "anchor is on the embedded chain",
            "transaction, block, event and root match",
            f"block {anchor.block_number}, tree size {anchor.tree_size}"
            if checked == "none (accepted)"
            else f"failed at {checked}",
            checked == "none (accepted)",
        )

    from scheduler.cli.audit_monitor import http_fetch, poll

    fetch, close = http_fetch(d.url)
    try:
        observation, _ = poll(fetch, d.settings.data_dir / "regulator-monitor.json", vkey)
        monitored = f"consistent at {observation.current.tree_size} entries"
        ok = True
    except Exception as exc:  # the demo reports any failure as a failed expectation
        monitored, ok = f"{type(exc).__name__}: {exc}", False
    finally:
        close()
    scenario.check("monitor follows the log", "consistent, entries match", monitored, ok)

    record = json.loads(data)
    record["record"]["payload"]["predicate"]["exitCode"] = 1  # the operator rewrites history
    tampered = json.dumps(record).encode()
    step = _step_of(tampered, vkey)
    scenario.check(
        "tampered copy (exit code rewritten) is caught",
        "refused at record_signature",
        f"refused at {step}",
        step == "record_signature",
    )
    forged = json.loads(data)
    forged["anchor"]["root"] = "0x" + "00" * 32  # an anchor for another tree
    step = _step_of(json.dumps(forged).encode(), vkey)
    scenario.check(
        "copy pointing at a different anchor is caught",
        "refused at consistency",
        f"refused at {step}",
        step == "consistency",
    )
