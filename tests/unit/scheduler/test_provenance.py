"""The provenance layer: one entry per finished task, in the finishing transaction; bundles
and tiles served under /log verify with the library; tampering and failed batches."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from audit_chain import (
    BundleVerificationError,
    EntryMismatchError,
    LogMonitor,
    LogState,
    LogStateError,
    NoteVerifier,
    RemoteTileStore,
    ResponseAction,
    SplitViewError,
    TaskExecution,
    TiledLog,
    TileNotFoundError,
    leaf_hash,
    monitor_poll,
    open_checkpoint,
    parse_bundle,
    parse_envelope,
    parse_statement,
    verify_bundle,
    verify_commitment,
    verify_inclusion,
)
from scheduler.db import before_commit
from scheduler.provenance import (
    ProvenanceLayer,
    _trace_id,
    _usage_counters,
    command_digest,
    layer_of,
)
from scheduler.service import Service
from scheduler.tables.provenance import (
    ProvEntry,
    ProvLogState,
    ProvTaskEntry,
    ProvTenantSalt,
    ProvTile,
)
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, claim, report, submit


@pytest.fixture
def layer(service: Any) -> Any:
    prov = ProvenanceLayer.for_service(service, checkpoint_delay_s=0.05)
    prov.start()
    yield prov
    prov.stop()


@pytest.fixture
def papi(layer: Any, api: Any) -> Any:
    return api


def run_task(api: Any, service: Any, tenant: str = "alice", exit_code: int = 0) -> str:
    headers = add_tenant(api, service, tenant)
    node = add_node(api, service, f"node-{len(tenant)}")
    task = submit(api, headers, ["python", "-c", "print(1)"])
    assert [t["id"] for t in claim(api, node)] == [task["id"]]
    assert report(api, node, task["id"], exit_code=exit_code).status_code == 200
    return str(task["id"])


def fetcher(api: Any):
    def fetch(path: str) -> bytes:
        resp = api.get(f"/log/{path}")
        if resp.status_code == 404:
            raise TileNotFoundError(path)
        assert resp.status_code == 200, resp.text
        return bytes(resp.content)

    return fetch


def entries_of(service: Any) -> list[ProvTaskEntry]:
    with service.read() as session:
        return list(session.exec(select(ProvTaskEntry)))


def test_a_finished_task_has_exactly_one_verifiable_entry(papi, service, layer):
    task_id = run_task(papi, service)
    rows = entries_of(service)
    assert [(r.task_id, r.leaf_index) for r in rows] == [(task_id, 0)]
    assert layer.log.tree_size == 1
    vkey = papi.get("/log/key").text.strip()
    assert vkey == layer.log_key.verifier.vkey and vkey.startswith("cntrust.local/log+")

    resp = papi.get(f"/v1/tasks/{task_id}/bundle", headers=bearer(service, "tenant", "alice"))
    assert resp.status_code == 200, resp.text
    verify_bundle(resp.content, vkey, require_anchor=False)
    bundle = parse_bundle(resp.content)
    statement = parse_statement(bundle.envelope.payload)
    predicate = statement.predicate
    assert isinstance(predicate, TaskExecution)
    assert predicate.task_id == task_id and predicate.outcome == "succeeded"
    assert predicate.node_spiffe_id == "spiffe://cntrust.local/node/node-5"
    assert predicate.command_digest == command_digest(["python", "-c", "print(1)"])
    assert predicate.exit_code == 0 and len(predicate.trace_id or "") == 32
    assert "alice" not in bundle.envelope.payload.decode()
    with service.read() as session:
        salt = session.get(ProvTenantSalt, task_id)
    assert salt is not None and salt.tenant == "alice"
    verify_commitment(predicate.tenant, "alice", salt.salt)

    # a second report of the same task is refused and adds nothing
    assert report(papi, add_node(papi, service, "other"), task_id).status_code == 409
    assert len(entries_of(service)) == 1 and layer.log.tree_size == 1


def test_bundle_authorization(papi, service, layer):
    task_id = run_task(papi, service)
    add_tenant(papi, service, "mallory")
    assert (
        papi.get(f"/v1/tasks/{task_id}/bundle", headers=bearer(service, "tenant", "mallory"))
    ).status_code == 404
    assert papi.get(f"/v1/tasks/{task_id}/bundle").status_code == 401
    regulator = bearer(service, "regulator", "bafin")
    assert papi.get(f"/v1/tasks/{task_id}/bundle", headers=regulator).status_code == 200
    assert papi.get("/v1/tasks/nope/bundle", headers=regulator).status_code == 404
    pending = submit(papi, add_tenant(papi, service, "bob"))
    resp = papi.get(f"/v1/tasks/{pending['id']}/bundle", headers=regulator)
    assert resp.status_code == 404 and "no provenance record" in resp.json()["detail"]


def test_checkpoint_published_within_two_seconds_and_tiles_verify(papi, service, layer):
    task_id = run_task(papi, service)
    deadline = time.monotonic() + 2.0
    while papi.get("/log/checkpoint").status_code != 200:
        assert time.monotonic() < deadline, "no checkpoint within 2 s"
        time.sleep(0.02)
    cp_resp = papi.get("/log/checkpoint")
    assert cp_resp.headers["cache-control"] == "no-cache"
    verifier = NoteVerifier.from_vkey(papi.get("/log/key").text)
    cp = open_checkpoint(cp_resp.content, verifier)
    assert cp.tree_size == 1
    leaf = entries_of(service)[0].leaf_index

    remote = TiledLog(RemoteTileStore(fetcher(papi), LogState(cp.tree_size, cp.root)))
    entry = remote.read_entry(leaf)
    assert parse_statement(parse_envelope(entry).payload).predicate.task_id == task_id
    proof = remote.inclusion_proof(leaf, cp.tree_size)
    verify_inclusion(leaf, cp.tree_size, leaf_hash(entry), proof, cp.root)
    monitor = LogMonitor(verifier, track_entries=True)
    assert monitor_poll(monitor, fetcher(papi)).new_entries == 1

    assert papi.get("/log/tile/0/000.p/1").headers["cache-control"] == "public, max-age=60"
    assert papi.get("/log/tile/0/000").status_code == 404
    assert papi.get("/log/tile/0/0001").status_code == 404
    assert papi.get("/log/tile/entries/x001/000").status_code == 404


def test_full_tiles_are_immutable_and_proofs_hold_past_256(papi, service, layer):
    fill(service, layer, 300)
    task_id = run_task(papi, service)
    resp = papi.get("/log/tile/0/000")
    assert resp.status_code == 200 and len(resp.content) == 8192
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert papi.get("/log/tile/0/000.p/100").status_code == 404  # partials removed when full
    assert papi.get("/log/tile/entries/000").status_code == 200
    with service.read() as session:  # entries of the full bundle left the row table
        assert session.exec(select(sa.func.min(ProvEntry.leaf_index))).one() == 256
    vkey = layer.log_key.verifier.vkey
    body = papi.get(f"/v1/tasks/{task_id}/bundle", headers=bearer(service, "admin", "a")).content
    verify_bundle(body, vkey, require_anchor=False)
    assert parse_bundle(body).leaf_index == 300


def test_partials_written_by_earlier_batches_are_deleted_when_the_tile_fills(service, layer):
    fill(service, layer, 100)  # a partial level-0 tile, bundle entries as rows
    with service.read() as session:
        assert session.get(ProvTile, "tile/0/000.p/100") is not None
        assert len(session.exec(select(ProvEntry)).all()) == 100
    fill(service, layer, 200)  # fills tile 0 and the first entry bundle
    with service.read() as session:
        paths = session.exec(select(ProvTile.path)).all()
        rows = session.exec(select(ProvEntry.leaf_index)).all()
        state = session.get(ProvLogState, 1)
    assert not [p for p in paths if p.startswith(("tile/0/000.p/", "tile/entries/000.p/"))]
    assert {"tile/0/000", "tile/entries/000", "tile/0/001.p/44"} <= set(paths)
    assert sorted(rows) == list(range(256, 300))
    assert (state.tree_size, bytes(state.root)) == (300, layer.log.root)
    assert TiledLog(layer.store).root == layer.log.root


def action(i: int) -> ResponseAction:
    from datetime import UTC, datetime

    return ResponseAction(
        action_id=f"act-{i}",
        action="quarantine",
        target_kind="node",
        target_id=f"spiffe://cntrust.local/node/n{i}",
        target_digest="sha256:" + "1" * 64,
        decided_on=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        actor="spiffe://cntrust.local/scheduler",
        reasons=("trust.evidence.task_failed",),
    )


def fill(service: Any, layer: Any, count: int) -> None:
    """Append ``count`` response-action records in one transaction."""

    def op(session: Session) -> None:
        for i in range(count):
            layer.record_response_action(session, action(i))

    service.write_sync(op)
    assert layer.log.tree_size >= count


def test_tampered_entry_is_detected(papi, service, layer):
    task_id = run_task(papi, service)
    vkey = layer.log_key.verifier.vkey
    admin = bearer(service, "admin", "a")
    good = papi.get(f"/v1/tasks/{task_id}/bundle", headers=admin).content
    verify_bundle(good, vkey, require_anchor=False)
    leaf = entries_of(service)[0].leaf_index
    verifier = NoteVerifier.from_vkey(vkey)
    layer.publish_checkpoint()
    monitor = LogMonitor(verifier, track_entries=True)
    monitor_poll(monitor, fetcher(papi))

    # an operator flips the outcome in the stored record (the signature cannot follow)
    def tamper(entry: bytes) -> bytes:
        env = json.loads(entry)
        payload = json.loads(base64.b64decode(env["payload"]))
        payload["predicate"]["outcome"] = "failed"
        raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        env["payload"] = base64.b64encode(raw).decode()
        return json.dumps(env, sort_keys=True, separators=(",", ":")).encode()

    with Session(service.engine) as session:
        row = session.get(ProvEntry, leaf)
        row.data = tamper(bytes(row.data))
        session.add(row)
        session.commit()

    # the monitor recomputes the tree from the served entries and catches it
    fill(service, layer, 1)
    layer.publish_checkpoint()
    fresh = LogMonitor(verifier, track_entries=True)
    with pytest.raises((EntryMismatchError, SplitViewError)) as caught:
        monitor_poll(fresh, fetcher(papi))
    assert caught.value.reason in ("entries_do_not_match", "tiles_mismatch")
    # a bundle carrying the stored record fails verification
    bundle = json.loads(good)
    bundle["record"] = json.loads(tamper(parse_bundle(good).entry))
    forged = json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(BundleVerificationError) as info:
        verify_bundle(forged, vkey, require_anchor=False)
    assert info.value.step == "record_signature"
    # and the log refuses to open over the tampered database
    with pytest.raises(LogStateError):
        TiledLog(layer.store)


def test_concurrent_reports_give_unique_entries(papi, service, layer):
    tenant = add_tenant(papi, service, "alice")
    nodes = [add_node(papi, service, f"n{i}", cpu_cores=8) for i in range(4)]
    ids = [submit(papi, tenant)["id"] for _ in range(20)]
    held: list[tuple[dict[str, str], str]] = []
    for node in nodes:
        held += [(node, t["id"]) for t in claim(papi, node, max_tasks=8)]
    assert sorted(t for _, t in held) == sorted(ids)

    def send(node_tasks: tuple[dict[str, str], list[str]]) -> int:
        node, tasks = node_tasks
        body = {
            "results": [
                {"task_id": t, "exit_code": 0, "output_digest": "sha256:" + "0" * 64} for t in tasks
            ]
        }
        return int(papi.post("/v1/agent/report", json=body, headers=node).status_code)

    batches = []
    for node in nodes:
        mine = [t for n, t in held if n is node]
        batches += [(node, mine[i : i + 2]) for i in range(0, len(mine), 2)]
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(send, batches)) == {200}
    rows = entries_of(service)
    assert sorted(r.task_id for r in rows) == sorted(ids)
    assert sorted(r.leaf_index for r in rows) == list(range(20))
    assert layer.log.tree_size == 20
    with service.read() as session:
        state = session.get(ProvLogState, 1)
    assert state.tree_size == 20 and bytes(state.root) == layer.log.root


def test_a_failed_batch_does_not_advance_the_log(papi, service, layer):
    run_task(papi, service)
    size, root = layer.log.tree_size, layer.log.root

    def explode(session: Session) -> None:
        raise RuntimeError("disk full")

    def op(session: Session) -> None:
        layer.record_response_action(session, action(1))
        before_commit(session, explode)  # runs after the log's hook: the batch is prepared

    with pytest.raises(RuntimeError, match="disk full"):
        service.write_sync(op)
    assert (layer.log.tree_size, layer.log.root) == (size, root)
    with service.read() as session:
        assert session.get(ProvLogState, 1).tree_size == size
        assert session.exec(select(ProvEntry).where(col(ProvEntry.leaf_index) >= size)).all() == []
    # the next batch continues from the same size
    fill(service, layer, 1)
    assert layer.log.tree_size == size + 1
    assert TiledLog(layer.store).root == layer.log.root


def test_log_reloads_when_the_database_moved(papi, service, layer):
    run_task(papi, service)
    # another sequencer (e.g. a lost commit acknowledgement) advanced the stored log
    other = TiledLog(layer.store)
    other.append_batch([b"appended elsewhere"])
    fill(service, layer, 1)
    assert layer.log.tree_size == 3
    assert TiledLog(layer.store).root == layer.log.root


def test_layer_is_found_and_log_survives_a_restart(papi, service, layer):
    task_id = run_task(papi, service)
    assert layer_of(service) is layer
    with pytest.raises(RuntimeError, match="already installed"):
        ProvenanceLayer.for_service(service)
    layer.stop()
    restarted = Service(service.settings)
    try:
        again = ProvenanceLayer.for_service(restarted)
        assert again.log.tree_size == 1 and again.log.root == layer.log.root
        assert again.log_key.verifier.vkey == layer.log_key.verifier.vkey
        assert again.leaf_index_of(task_id) == 0
        assert again.latest_checkpoint() == layer.latest_checkpoint()
    finally:
        restarted.close()
    layer.start()


def test_usage_and_trace_mapping():
    usage = {"wall_s": 1.5, "cpu_s": 0.25, "max_rss_kb": 2.0, "bad-key": 1, "neg_s": -1.0}
    assert _usage_counters(usage) == (("cpuMs", 250), ("maxRssBytes", 2048), ("wallMs", 1500))
    assert _usage_counters({"x": float("nan"), "flag": True}) == ()
    assert _trace_id("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01") == "ab" * 16
    assert _trace_id("00-" + "0" * 32 + "-" + "cd" * 8 + "-01") is None
    assert _trace_id(None) is None and _trace_id("garbage") is None


def test_routes_without_the_layer_answer_404(api):
    assert api.get("/log/checkpoint").status_code == 404
    assert api.get("/log/key").status_code == 404


def test_a_batch_retried_op_by_op_logs_only_the_committed_records(papi, service, layer):
    run_task(papi, service)
    size = layer.log.tree_size

    def slow(session: Session) -> None:
        time.sleep(0.3)  # the next operations queue up and run as one batch

    def good(session: Session) -> None:
        layer.record_response_action(session, action(7))

    def bad(session: Session) -> None:
        layer.record_response_action(session, action(8))
        raise RuntimeError("refused")

    committer = service.committer
    first = committer.submit(slow)
    time.sleep(0.05)
    futures = [committer.submit(op) for op in (good, bad, good)]
    first.result(10)
    assert futures[0].result(10) is None and futures[2].result(10) is None
    with pytest.raises(RuntimeError, match="refused"):
        futures[1].result(10)
    assert layer.log.tree_size == size + 2
    stored = TiledLog(layer.store)
    assert (stored.tree_size, stored.root) == (size + 2, layer.log.root)
    ids = [
        parse_statement(parse_envelope(e).payload).predicate
        for e in stored.read_entries(size, size + 2)
    ]
    assert [p.action_id for p in ids] == ["act-7", "act-7"]


def test_erasing_a_tenant_keeps_every_proof(papi, service, layer):
    task_id = run_task(papi, service)
    admin = bearer(service, "admin", "a")
    before = papi.get(f"/v1/tasks/{task_id}/bundle", headers=admin).content
    assert layer.erase_tenant("alice") == 1
    with service.read() as session:
        assert session.get(ProvTenantSalt, task_id) is None
    after = papi.get(f"/v1/tasks/{task_id}/bundle", headers=admin).content
    verify_bundle(after, layer.log_key.verifier.vkey, require_anchor=False)
    assert parse_bundle(after).entry == parse_bundle(before).entry
