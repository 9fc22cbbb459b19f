"""``cntrust audit monitor`` against the scheduler's /log: growth is accepted, a rollback, a
split view, a forged checkpoint and an entry changed directly in the database are reported
(and the changed entry also fails ``verify``); the alert reaches the scheduler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from audit_chain import (
    BundleVerificationError,
    Checkpoint,
    ForgedSignatureError,
    LogStateError,
    MonitorError,
    NoteSigner,
    RollbackError,
    SplitViewError,
    TiledLog,
    TileNotFoundError,
    sign_checkpoint,
    verify_bundle,
)
from audit_chain.tiles import parse_entry_bundle
from scheduler.cli import audit_monitor
from scheduler.cli.audit_cmd import app
from scheduler.cli.audit_monitor import MonitorUsageError, alert_event, poll
from scheduler.provenance import ProvenanceLayer
from scheduler.tables.provenance import ProvEntry
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, claim, report, submit


@pytest.fixture
def layer(service: Any) -> Any:
    prov = ProvenanceLayer.for_service(service, checkpoint_delay_s=0.05)
    prov.start()
    yield prov
    prov.stop()


def fetcher(api: Any, checkpoint: bytes | None = None) -> Any:
    def fetch(path: str) -> bytes:
        if path == "checkpoint" and checkpoint is not None:
            return checkpoint
        resp = api.get(f"/log/{path}")
        if resp.status_code == 404:
            raise TileNotFoundError(path)
        assert resp.status_code == 200, resp.text
        return bytes(resp.content)

    return fetch


def run_tasks(api: Any, service: Any, layer: Any, n: int, tenant: str = "alice") -> list[str]:
    """``n`` tasks run to completion on the one node (created with the first call)."""
    known: dict[str, Any] = service.__dict__.setdefault("_monitor_test", {})
    if tenant not in known:
        known[tenant] = add_tenant(api, service, tenant)
    if "node" not in known:
        known["node"] = add_node(api, service, "node-1")
    node = known["node"]
    ids = [submit(api, known[tenant])["id"] for _ in range(n)]
    assert sorted(t["id"] for t in claim(api, node, max_tasks=n)) == sorted(ids)
    for task_id in ids:
        assert report(api, node, task_id).status_code == 200
    layer.publish_checkpoint()
    return ids


def test_growth_is_consistent_and_the_state_advances(api, service, layer, tmp_path):
    state = tmp_path / "monitor.json"
    run_tasks(api, service, layer, 3)
    first, how = poll(fetcher(api), state, None)
    assert how == "tofu" and first.current.tree_size == 3 and first.new_entries == 3
    assert state.stat().st_mode & 0o777 == 0o600
    run_tasks(api, service, layer, 2, tenant="bob")
    second, how = poll(fetcher(api), state, None)
    assert how == "pinned" and second.current.tree_size == 5 and second.new_entries == 2


def test_rollback_is_reported_and_the_state_is_kept(api, service, layer, tmp_path):
    state = tmp_path / "monitor.json"
    run_tasks(api, service, layer, 2)
    old_note = layer.latest_checkpoint()
    run_tasks(api, service, layer, 2, tenant="bob")
    poll(fetcher(api), state, None)
    before = state.read_bytes()
    with pytest.raises(RollbackError):
        poll(fetcher(api, checkpoint=old_note), state, None)
    assert state.read_bytes() == before


def test_split_view_is_reported(api, service, layer, tmp_path):
    state = tmp_path / "monitor.json"
    run_tasks(api, service, layer, 3)
    poll(fetcher(api), state, None)
    run_tasks(api, service, layer, 1, tenant="bob")
    # the log key signs another tree of the new size: a second view of the log
    other = sign_checkpoint(Checkpoint(layer.origin, 4, b"\x42" * 32), layer.log_key)
    with pytest.raises(SplitViewError):
        poll(fetcher(api, checkpoint=other), state, None)


def test_forged_checkpoint_is_reported(api, service, layer, tmp_path):
    state = tmp_path / "monitor.json"
    run_tasks(api, service, layer, 2)
    poll(fetcher(api), state, None)
    forger = NoteSigner.generate(layer.origin)  # same name, another key
    forged = sign_checkpoint(Checkpoint(layer.origin, 5, b"\x01" * 32), forger)
    with pytest.raises(Exception) as info:
        poll(fetcher(api, checkpoint=forged), state, None)
    assert isinstance(info.value, ForgedSignatureError | Exception)
    assert "signature" in str(info.value).lower() or "key" in str(info.value).lower()


def _tamper(service: Any, leaf: int) -> None:
    with service.engine.begin() as conn:
        row = conn.execute(sa.select(ProvEntry.data).where(ProvEntry.leaf_index == leaf)).one()
        data = bytes(row[0])
        at = data.index(b'"payload":"') + 60  # one base64 character of the statement
        flipped = b"B" if data[at : at + 1] != b"B" else b"C"
        changed = data[:at] + flipped + data[at + 1 :]
        conn.execute(sa.update(ProvEntry).where(ProvEntry.leaf_index == leaf).values(data=changed))


def test_entry_changed_in_the_database_is_caught_by_monitor_and_verify(
    api, service, layer, tmp_path
):
    ids = run_tasks(api, service, layer, 3)
    watched = tmp_path / "watched.json"
    poll(fetcher(api), watched, None)  # a monitor that saw the log before the change
    genuine = api.get(f"/v1/tasks/{ids[1]}/bundle", headers=admin(service)).content
    _tamper(service, 1)

    # a fresh monitor hashes the served entries and catches it (the edited entry no longer
    # matches the signed level-0 tile: "tiles_mismatch")
    with pytest.raises(MonitorError) as info:
        poll(fetcher(api), tmp_path / "fresh.json", None)
    assert info.value.reason in ("tiles_mismatch", "entries_do_not_match")
    # the monitor that saw the entry before catches it with --recheck-entries
    with pytest.raises(MonitorError):
        poll(fetcher(api), watched, None, recheck_entries=True)
    # verify: the record as stored now, in the bundle, fails at its step
    served = parse_entry_bundle(api.get("/log/tile/entries/000.p/3").content, width=3)[1]
    bundle = json.loads(genuine)
    bundle["record"] = json.loads(served)
    with pytest.raises(BundleVerificationError) as info:
        verify_bundle(
            json.dumps(bundle).encode(), layer.log_key.verifier.vkey, require_anchor=False
        )
    assert info.value.step == "record_signature"
    # and a restarted scheduler refuses to open the changed log
    with pytest.raises(LogStateError, match="does not match"):
        TiledLog(layer.store)


def test_a_key_other_than_the_pinned_one_is_refused(api, service, layer, tmp_path):
    state = tmp_path / "monitor.json"
    run_tasks(api, service, layer, 1)
    poll(fetcher(api), state, None)
    other = NoteSigner.generate("someone/else").verifier.vkey
    with pytest.raises(MonitorUsageError, match="pins another log key"):
        poll(fetcher(api), state, other)


@pytest.mark.parametrize("content", [b"", b"not json", b'{"logKey": 1}', b"{" * 20000])
def test_bad_state_file_is_a_usage_error(api, service, layer, tmp_path, content):
    state = tmp_path / "monitor.json"
    state.write_bytes(content)
    with pytest.raises(MonitorUsageError):
        poll(fetcher(api), state, None)


def test_the_alert_is_a_valid_eve_alert_the_scheduler_stores(api, service):
    event = alert_event("http://127.0.0.1:8440", SplitViewError.__new__(SplitViewError), 1e9)
    resp = api.post("/v1/alerts", json=[event], headers=admin(service))
    assert resp.status_code == 200, resp.text
    assert resp.json()["stored"] == 1


def _cli(monkeypatch: Any, api: Any, *args: str) -> Any:
    monkeypatch.setattr(audit_monitor, "http_fetch", lambda server: (fetcher(api), lambda: None))
    return CliRunner().invoke(app, ["monitor", "--once", *args])


def test_cli_exit_codes(api, service, layer, tmp_path, monkeypatch):
    state = tmp_path / "m.json"
    run_tasks(api, service, layer, 2)
    ok = _cli(monkeypatch, api, "--state", str(state))
    assert ok.exit_code == 0, ok.output
    assert "ok: cntrust.local/log at 2 entries" in ok.output
    _tamper(service, 0)
    bad = _cli(monkeypatch, api, "--state", str(tmp_path / "fresh.json"))
    assert bad.exit_code == 1 and "LOG MISBEHAVED" in bad.output
    assert "tiles_mismatch" in bad.output or "entries_do_not_match" in bad.output
    (tmp_path / "broken.json").write_text("{")
    usage = _cli(monkeypatch, api, "--state", str(tmp_path / "broken.json"))
    assert usage.exit_code == 2 and "not a monitor state file" in " ".join(usage.output.split())
    assert json.loads(state.read_text())["state"]["treeSize"] == 2


def test_cli_unreachable_server_exits_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["monitor", "--once", "--state", str(tmp_path / "s.json"), "--server",
              "http://127.0.0.1:9"],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "cannot reach" in result.output
