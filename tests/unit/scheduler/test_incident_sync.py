"""Scheduler replicas sharing one database correlate as one network layer: alerts and
enrollments split between replicas become one incident on both, its response is taken once
(also when replicas race), an analyst's release is final everywhere, a replica started later
catches up, and bad stored feed rows never stop a pass."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from audit_chain import ResponseAction, TiledLog, parse_envelope, parse_statement
from ids.layers import Incident, TaskUsage, TelemetryRecord, detect_element, make_alert
from ids.layers.correlator import NODE_INTEGRITY
from scheduler import incident_claims
from scheduler.app import create_app
from scheduler.incident_sync import FEED_ALERTS, FEED_ENROLLMENT, IncidentSync
from scheduler.incidents import IncidentLayer, observe_enrollment
from scheduler.models import Node, NodeStatus
from scheduler.provenance import ProvenanceLayer
from scheduler.provenance_store import DbTileStore
from scheduler.service import Service
from scheduler.settings import Settings
from scheduler.tables.incident_sync import IncidentAlias, IncidentFeed, IncidentResponseClaim
from scheduler.tables.incidents import IncidentRecord
from scheduler.tables.quarantine import NodeQuarantine
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node


@dataclass
class Replica:
    service: Service
    layer: IncidentLayer
    api: TestClient
    actions: list[Any]

    @property
    def sync(self) -> IncidentSync:
        assert self.layer.sync is not None
        return self.layer.sync

    def post(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        resp = self.api.post("/v1/alerts", json=batch, headers=bearer(self.service, "sensor", "s"))
        assert resp.status_code == 200, resp.text
        return dict(resp.json())


@contextlib.contextmanager
def replica(settings: Settings, clock: Any) -> Iterator[Replica]:
    """One scheduler replica with its own app and incident layer, and no sync thread: the
    test decides when it catches up."""
    service = Service(settings, clock=clock)
    try:
        layer = IncidentLayer.install(service)  # before the app: no thread
        actions: list[Any] = []
        service.response_hooks.append(lambda _s, action: actions.append(action))
        with TestClient(create_app(service)) as api:
            yield Replica(service, layer, api, actions)
    finally:
        service.close()


def settings_of(tmp_path: Path, database_url: str, layers_off: list[str]) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        heartbeat_timeout_s=3600,
        claim_wait_s=0.2,
        layers_off=layers_off,
    )


@pytest.fixture
def pair(tmp_path: Path, database_url: str, clock: Any) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas on one database with the identity, trust and attestation layers off
    (node status then shows the incident response alone)."""
    settings = settings_of(tmp_path, database_url, ["identity", "trust", "attestation"])
    with replica(settings, clock) as one, replica(settings, clock) as two:
        yield one, two


def element_alerts(node: str, ts: float, seq: int = 1) -> list[dict[str, Any]]:
    """Two element detections (a listener left by the task, resource overuse): one such
    record is not an incident yet, two are (``ids.network.node_integrity``, high)."""
    from ids.layers import ListeningSocket

    record = TelemetryRecord(
        node_id=node,
        node_ip="10.0.0.11",
        seq=seq,
        collected_at_ms=int(ts * 1000),
        listening=(ListeningSocket("tcp", "0.0.0.0", 4444, 1, 99),),
        tasks=(TaskUsage("t1", "running", "/scratch/t1", 250, 0, 2000, 2000, 0, 0, (99,)),),
    )
    return detect_element(record)


def flood(sources: range, ts: float) -> list[dict[str, Any]]:
    return [
        make_alert(
            ts=ts + i * 0.01, src_ip=f"198.51.100.{i}", dest_ip="10.0.0.11", proto=6,
            src_port=40000, dest_port=80, signature_id=2_000_001, signature="SYN flood",
            category="Attempted Denial of Service", severity=2, layer="perimeter", node_id="n1",
        )
        for i in sources
    ]  # fmt: skip


def incidents(service: Service) -> list[IncidentRecord]:
    with service.read() as session:
        return list(session.exec(select(IncidentRecord).order_by(col(IncidentRecord.id))))


def incident_quarantines(service: Service, node: str) -> list[NodeQuarantine]:
    with service.read() as session:
        return list(
            session.exec(
                select(NodeQuarantine).where(
                    NodeQuarantine.node_id == node, NodeQuarantine.source == "incident"
                )
            )
        )


def status(service: Service, node: str) -> NodeStatus:
    with service.read() as session:
        row = session.get(Node, node)
        assert row is not None
        return row.status


def quarantine_actions(*replicas: Replica) -> list[tuple[str, str]]:
    return [
        (a.subject, a.detail.get("evidence_id", ""))
        for r in replicas
        for a in r.actions
        if a.action == "response.quarantine" and a.source == "incident"
    ]


def test_alerts_split_between_replicas_become_one_incident_answered_once(pair):
    one, two = pair
    add_node(one.api, one.service, "n1")
    t0 = one.service.clock() - 60
    first = one.post(element_alerts("n1", t0))
    second = two.post(element_alerts("n1", t0 + 2, seq=2))
    # each replica alone saw one telemetry record: not an incident yet
    assert first["incidents"] == [] and second["incidents"] == []
    assert incidents(one.service) == []

    got = two.sync.sync()  # replica two feeds what replica one stored
    assert (got.fed, got.skipped, got.refused) == (1, 1, 0)  # its own row is skipped
    assert len(got.incidents) == 1 and got.quarantined == ("n1",)
    [inc] = incidents(one.service)
    assert inc.kind == NODE_INTEGRITY and inc.severity == 1 and inc.node_ids == ["n1"]
    # the incident groups the aggregates both replicas stored
    assert set(inc.alert_ids) == set(first["alert_ids"]) | set(second["alert_ids"])

    back = one.sync.sync()  # replica one opens the same incident (under its own id)
    assert (back.fed, back.skipped) == (1, 1)
    assert back.incidents == (inc.id,) and back.quarantined == ()
    assert [r.id for r in incidents(one.service)] == [inc.id]
    with one.service.read() as session:
        aliases = {a.id: a.incident_id for a in session.exec(select(IncidentAlias))}
        claims = list(session.exec(select(IncidentResponseClaim)))
    assert set(aliases.values()) == {inc.id}
    assert [(c.incident_id, c.node_id, c.action) for c in claims] == [(inc.id, "n1", "quarantine")]
    # one quarantine, one response record, across both replicas
    assert [q.reference_id for q in incident_quarantines(one.service, "n1")] == [inc.id]
    assert quarantine_actions(one, two) == [("n1", inc.id)]
    assert status(one.service, "n1") == NodeStatus.CORDONED
    # both APIs show the one incident, answered with the quarantine
    for r in (one, two):
        shown = r.api.get("/v1/incidents", headers=bearer(r.service, "analyst", "ana")).json()
        assert [(i["id"], i["response"]["quarantined"]) for i in shown] == [(inc.id, ["n1"])]
    # nothing is fed twice
    assert one.sync.sync().fed == 0 and two.sync.sync().fed == 0


def test_a_flood_split_between_replicas_is_one_ddos_incident(pair):
    one, two = pair
    add_node(one.api, one.service, "n1")
    t0 = one.service.clock() - 60
    assert one.post(flood(range(0, 12), t0))["incidents"] == []  # 12 sources < 20
    assert two.post(flood(range(12, 24), t0 + 1))["incidents"] == []
    assert len(two.sync.sync().incidents) == 1
    assert len(one.sync.sync().incidents) == 1
    [inc] = incidents(one.service)
    assert inc.kind == "ids.network.ddos" and len(inc.sources) == 24
    assert inc.response["action"] == "none"  # the flooded node is a victim
    assert quarantine_actions(one, two) == []


def test_replicas_racing_to_store_one_incident_answer_it_once(
    tmp_path, database_url, clock, caplog
):
    """With the trust layer on: each incident is also trust evidence against its node,
    recorded once (a second insert of the evidence would fail the whole store)."""
    settings = settings_of(tmp_path, database_url, ["identity", "attestation"])
    with replica(settings, clock) as one, replica(settings, clock) as two:
        _race(one, two)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def _race(one: Replica, two: Replica) -> None:
    nodes = [f"n{i}" for i in range(4)]
    for node in nodes:
        add_node(one.api, one.service, node)
    t0 = one.service.clock() - 60
    for i, node in enumerate(nodes):
        one.post(element_alerts(node, t0 + i))
        two.post(element_alerts(node, t0 + i + 0.5, seq=2))
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def run(r: Replica, name: str) -> None:
        barrier.wait()
        results[name] = r.sync.sync()

    threads = [threading.Thread(target=run, args=(r, n)) for r, n in ((one, "a"), (two, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stored = incidents(one.service)
    assert sorted(results["a"].quarantined + results["b"].quarantined) == nodes
    assert set(results["a"].incidents) == {i.id for i in stored} == set(results["b"].incidents)
    assert sorted(i.group_key for i in stored if i.kind == NODE_INTEGRITY) == nodes
    for node in nodes:
        assert len(incident_quarantines(one.service, node)) == 1
    assert sorted(s for s, _ in quarantine_actions(one, two)) == nodes


def test_live_incidents_on_two_replicas_are_one_quarantined_and_revoked_once(
    tmp_path, database_url, clock
):
    """A lateral movement opens on its first alert: each replica opens it live, under its own
    id; the second resolves to the first's incident and takes nothing."""
    settings = settings_of(tmp_path, database_url, ["trust", "attestation"])
    with replica(settings, clock) as one, replica(settings, clock) as two:
        for r in (one, two):
            r.layer.policy = type(r.layer.policy)(revoke_enabled=True)
        add_node(one.api, one.service, "n1")
        add_node(one.api, one.service, "n2")
        t0 = one.service.clock() - 60

        def lateral(ts: float) -> list[dict[str, Any]]:
            return [
                make_alert(
                    ts=ts, src_ip="10.0.0.11", dest_ip="10.0.0.12", proto=6, src_port=40000,
                    dest_port=22, signature_id=1_990_007, signature="lateral", category="x",
                    severity=1, layer="perimeter", node_id="n2",
                    detection="ids.perimeter.lateral_movement",
                    extra={"src_node_id": "n1", "dest_node_id": "n2"},
                )
            ]  # fmt: skip

        first = one.post(lateral(t0))
        second = two.post(lateral(t0 + 5))
        assert sorted(first["quarantined"]) == ["n1", "n2"] == sorted(first["revoked"])
        assert second["incidents"] == first["incidents"]
        assert second["quarantined"] == [] and second["revoked"] == []
        assert one.sync.sync().quarantined == () and two.sync.sync().quarantined == ()
        assert len(incidents(one.service)) == 1
        actions = [(a.action, a.subject) for r in (one, two) for a in r.actions]
        assert sorted(a for a in actions if a[0] == "response.revocation") == [
            ("response.revocation", "node/n1"),
            ("response.revocation", "node/n2"),
        ]  # the identity layer's own record of each revocation: once too
        assert sorted(a for a in actions if a[0] != "response.revocation") == [
            ("response.quarantine", "n1"),
            ("response.quarantine", "n2"),
            ("response.revoke", "n1"),
            ("response.revoke", "n2"),
        ]


def test_an_analyst_release_on_one_replica_is_final_on_the_other(pair):
    one, two = pair
    add_node(one.api, one.service, "n1")
    t0 = one.service.clock() - 60
    one.post(element_alerts("n1", t0))
    two.post(element_alerts("n1", t0 + 2, seq=2))
    assert one.sync.sync().quarantined == ("n1",)
    [q] = incident_quarantines(one.service, "n1")
    ana = bearer(two.service, "analyst", "ana")
    rel = two.api.post(f"/v1/quarantines/{q.id}/release", json={"note": "checked"}, headers=ana)
    assert rel.status_code == 200, rel.text
    assert status(one.service, "n1") == NodeStatus.ONLINE
    # more of the same activity on both replicas, in the same window
    third = two.post(element_alerts("n1", t0 + 4, seq=3))
    assert third["incidents"] and third["quarantined"] == []  # replica two: final
    one.post(element_alerts("n1", t0 + 6, seq=4))
    assert one.sync.sync().quarantined == () and two.sync.sync().quarantined == ()
    assert len(incidents(one.service)) == 1
    assert len(incident_quarantines(one.service, "n1")) == 1
    assert status(one.service, "n1") == NodeStatus.ONLINE
    assert len(quarantine_actions(one, two)) == 1


def test_a_replica_started_later_catches_up(tmp_path, database_url, clock):
    settings = settings_of(tmp_path, database_url, ["identity", "trust", "attestation"])
    with replica(settings, clock) as one:
        add_node(one.api, one.service, "n1")
        t0 = one.service.clock() - 60
        one.post(element_alerts("n1", t0))
        assert one.post(element_alerts("n1", t0 + 2, seq=2))["quarantined"] == ["n1"]
        [inc] = incidents(one.service)
        with replica(settings, clock) as late:
            # the rebuild replays the stored aggregates: the group is open, its incident
            # resolves to the stored row, and nothing below the cursor is fed again
            assert late.sync.cursor > 0 and late.sync.sync().fed == 0
            out = late.post(element_alerts("n1", t0 + 4, seq=3))
            assert out["incidents"] == [inc.id] and out["quarantined"] == []
            got = one.sync.sync()
            assert got.fed == 1 and got.incidents == (inc.id,)
        [after] = incidents(one.service)
        assert after.id == inc.id and set(out["alert_ids"]) <= set(after.alert_ids)
        assert len(incident_quarantines(one.service, "n1")) == 1


def test_enrollments_split_between_replicas_and_replayed_after_a_restart(
    tmp_path, database_url, clock
):
    settings = settings_of(tmp_path, database_url, ["identity", "trust", "attestation"])
    now = clock()

    def enroll(r: Replica, i: int) -> list[str]:
        ip = f"192.0.{i}.7"  # another /24 each: only the operator group grows
        return asyncio.run(observe_enrollment(r.service, f"e{i}", "acme", ip, now + i))

    with replica(settings, clock) as one, replica(settings, clock) as two:
        assert [enroll(one, i) for i in range(3)] == [[], [], []]
        assert enroll(two, 3) == []  # four enrollments from acme: below min_enrollments=5
        assert two.sync.sync().fed == 3 and incidents(one.service) == []
        with replica(settings, clock) as late:  # rebuilt from the four published ones
            [opened] = enroll(late, 4)
        [inc] = incidents(one.service)
        assert inc.id == opened and inc.group_key == "operator:acme"
        assert inc.kind == "ids.network.sybil_enrollment" and inc.alert_count == 5
        assert one.sync.sync().incidents == (opened,)  # one fed late's: the same incident
        assert two.sync.sync().incidents == (opened,)
        assert [i.id for i in incidents(one.service)] == [opened]


def test_bad_feed_rows_are_refused_and_the_pass_goes_on(pair):
    one, two = pair
    add_node(one.api, one.service, "n1")
    t0 = one.service.clock() - 60
    one.post(element_alerts("n1", t0))
    good = [(r.kind, r.body) for r in _feed(one.service)]
    now = one.service.clock()
    valid = good[0][1]["entries"][0]
    bad_bodies = [
        (FEED_ALERTS, {"entries": "x"}),
        (FEED_ALERTS, {"entries": [7, {**valid, "count": 0}, {**valid, "count": True}]}),
        (FEED_ALERTS, {"entries": [{**valid, "aggregate_id": ""}, {**valid, "alerts": []}]}),
        (FEED_ALERTS, {"entries": [{**valid, "alerts": [{"event_type": "dns"}]}]}),
        (FEED_ALERTS, {"entries": [{**valid, "count": 1, "alerts": valid["alerts"] * 2}]}),
        (FEED_ENROLLMENT, {"ts": "soon", "node_id": "x", "operator": "o", "source_ip": "1"}),
        (FEED_ENROLLMENT, {"ts": 1.0, "node_id": "", "operator": "o", "source_ip": "1"}),
        (FEED_ENROLLMENT, ["not", "an", "object"]),
        ("telepathy", {}),
    ]

    def write(s: Session) -> None:
        for kind, body in bad_bodies:
            s.add(IncidentFeed(origin="elsewhere", kind=kind, at=now, body=body))
        s.add(IncidentFeed(origin="elsewhere", kind=good[0][0], at=now, body=good[0][1]))

    one.service.write_sync(write)
    two.post(element_alerts("n1", t0 + 2, seq=2))
    got = two.sync.sync()
    # every bad row or entry refused with its reason; the good rows still make the incident
    assert got.refused == 12 and got.fed == 6 and got.quarantined == ("n1",)
    assert two.sync.refused == {
        "entries": 1,
        "entries[0]": 1,
        "entries[1].count": 1,
        "entries[2].count": 1,
        "entries[0].aggregate_id": 1,
        "entries[1].alerts": 1,
        "entries[0].alerts[0].event_type": 1,
        "entries[0].alerts": 1,
        "ts": 1,
        "node_id": 1,
        "body": 1,
        "kind": 1,
    }
    assert len(incident_quarantines(one.service, "n1")) == 1


def test_a_row_committed_out_of_id_order_is_fed_when_it_lands(pair):
    one, two = pair
    add_node(one.api, one.service, "n1")
    t0 = one.service.clock() - 60
    one.post(element_alerts("n1", t0))
    [row] = _feed(one.service)
    two.sync.sync()
    top = two.sync.cursor
    now = one.service.clock()

    def add(rid: int) -> None:
        one.service.write_sync(
            lambda s: s.add(IncidentFeed(id=rid, origin="x", kind=row.kind, at=now, body=row.body))
        )

    add(top + 2)  # a transaction holding id top+1 commits later
    got = two.sync.sync()
    assert got.fed == 1 and top + 1 in two.sync.gaps and two.sync.cursor == top + 2
    add(top + 1)
    assert two.sync.sync().fed == 1 and not two.sync.gaps
    assert two.sync.sync().fed == 0


def test_old_feed_rows_are_pruned_but_the_newest(pair, clock):
    one, _two = pair
    add_node(one.api, one.service, "n1")
    one.post(element_alerts("n1", clock() - 60))
    one.post(element_alerts("n1", clock() - 50, seq=2))
    assert one.sync.prune() == 0
    clock.advance(one.sync.retention_s + 1)
    newest = _feed(one.service)[-1].id
    assert one.sync.prune() == 1 and [r.id for r in _feed(one.service)] == [newest]


def _feed(service: Service) -> list[IncidentFeed]:
    with service.read() as session:
        return list(session.exec(select(IncidentFeed).order_by(col(IncidentFeed.id))))


# -- the primitives under a real race: two transactions, one waits for the other -----------------
def _incident(ident: str, first_seen: float) -> Incident:
    return Incident(ident, NODE_INTEGRITY, 1, first_seen, first_seen, "n1", 3, (), ("n1",), (),
                    (), ())  # fmt: skip


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except Exception as exc:  # surfaced by the test's assertion
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_racing_claim_waits_and_takes_nothing_once_the_first_committed(service, outcome):
    now = service.clock()

    def second() -> bool:
        with Session(service.engine) as session:
            took = incident_claims.claim(session, "inc-x", "n1", "quarantine", "b", now)
            session.commit()
            return took

    with Session(service.engine) as first:
        assert incident_claims.claim(first, "inc-x", "n1", "quarantine", "a", now)
        thread, out = _in_thread(second)
        thread.join(0.5)
        assert thread.is_alive()  # the second insert waits for the first transaction
        first.commit() if outcome == "commit" else first.rollback()
    thread.join(30)
    assert out == {"result": outcome == "rollback"}
    with service.read() as session:
        [claim] = session.exec(select(IncidentResponseClaim)).all()
    assert claim.origin == ("a" if outcome == "commit" else "b")


def test_a_racing_replica_resolves_to_the_incident_the_first_stored(service):
    now = service.clock()
    mine, theirs = _incident("inc-mine", now - 30), _incident("inc-theirs", now - 25)

    def store(session: Session, inc: Incident) -> str:
        resolved = incident_claims.canonical(session, inc, 600.0, now)
        if session.get(IncidentRecord, resolved.incident_id) is None:
            session.add(IncidentRecord(id=resolved.incident_id, kind=inc.kind, severity=1,
                                       first_seen=inc.first_seen, last_seen=inc.last_seen,
                                       group_key=inc.group_key, alert_count=3, created_at=now,
                                       updated_at=now))  # fmt: skip
        return resolved.incident_id

    def second() -> str:
        with Session(service.engine) as session:
            got = store(session, theirs)
            session.commit()
            return got

    with Session(service.engine) as first:
        assert store(first, mine) == "inc-mine"
        first.flush()
        thread, out = _in_thread(second)
        thread.join(0.5)
        assert thread.is_alive()  # waits on the group lock
        first.commit()
    thread.join(30)
    assert out == {"result": "inc-mine"}
    with service.read() as session:
        assert session.exec(select(func.count()).select_from(IncidentRecord)).one() == 1
        aliases = {a.id: a.incident_id for a in session.exec(select(IncidentAlias))}
    assert aliases == {"inc-mine": "inc-mine", "inc-theirs": "inc-mine"}
    # a later window of the same group is another incident
    with Session(service.engine) as session:
        assert store(session, _incident("inc-later", now + 700)) == "inc-later"
        session.commit()


def test_the_app_thread_catches_up_on_its_own(tmp_path, database_url, clock):
    settings = settings_of(tmp_path, database_url, ["identity", "trust", "attestation"])
    services = [Service(settings, clock=clock) for _ in range(2)]
    try:
        with TestClient(create_app(services[0])) as a, TestClient(create_app(services[1])) as b:
            layer = services[1].incidents
            assert layer.sync is not None and layer.sync.loop.running
            add_node(a, services[0], "n1")
            t0 = clock() - 60
            sensor = bearer(services[0], "sensor", "s")
            assert a.post("/v1/alerts", json=element_alerts("n1", t0), headers=sensor).is_success
            out = b.post("/v1/alerts", json=element_alerts("n1", t0 + 2, seq=2), headers=sensor)
            assert out.is_success  # (an incident already if b's thread fed a's alerts first)
            deadline = time.monotonic() + 10
            while not incident_quarantines(services[0], "n1") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(incident_quarantines(services[0], "n1")) == 1
            time.sleep(1.2)  # both threads had passes since: still one
            assert len(incident_quarantines(services[0], "n1")) == 1
            assert len(incidents(services[0])) == 1
    finally:
        for s in services:
            s.close()
    assert not layer.sync.loop.running  # close() stopped it


def test_one_provenance_record_for_the_quarantine(tmp_path, database_url, clock):
    settings = settings_of(tmp_path, database_url, ["identity", "trust", "attestation"])
    with replica(settings, clock) as one, replica(settings, clock) as two:
        layers = [ProvenanceLayer.for_service(r.service) for r in (one, two)]
        add_node(one.api, one.service, "n1")
        t0 = one.service.clock() - 60
        one.post(element_alerts("n1", t0))
        two.post(element_alerts("n1", t0 + 2, seq=2))
        quarantined = two.sync.sync().quarantined + one.sync.sync().quarantined
        assert quarantined == ("n1",)
        origin = layers[0].origin
        log = TiledLog(DbTileStore(one.service.engine, origin, clock=one.service.clock))
        records = []
        for i in range(log.tree_size):
            statement = parse_statement(parse_envelope(log.read_entry(i)).payload)
            if isinstance(statement.predicate, ResponseAction):
                records.append(statement.predicate)
        assert [(r.action, r.target_id) for r in records] == [("quarantine", "n1")]
