"""API authorization decided by the Cedar policy set (PolicyAuthorizer is the default)."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.authz import BuiltinAuthorizer, Principal, Resource
from scheduler.policy_authz import ACTIONS, PolicyAuthorizer
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, submit
from tests.unit.scheduler.policy_fixtures import service

__all__ = ["service"]  # the fixture: a body limit that admits an exported policy set

PROBLEM = "application/problem+json"

ROLES = ("admin", "alice", "bob", "n1", "n2", "op1", "analyst", "regulator", "enroll")

# role -> the set of routes it may use (every other route is refused). alice owns the task
# and n1 holds it; bob is another tenant; op1 operates n1.
ALLOWED: dict[str, set[str]] = {
    "admin": {"submit", "read", "list", "cancel", "node.read", "node.list", "tenant", "stats"}
    | {"policy.read", "policy.check", "policy.change"},
    "alice": {"submit", "read", "list", "cancel", "stats"},
    "bob": {"submit", "list", "stats"},
    "n1": {"read", "claim", "report", "heartbeat", "node.read"},
    "n2": {"claim", "report", "heartbeat"},
    "op1": {"node.read", "node.list"},
    "analyst": {"read", "list", "node.read", "node.list", "stats", "policy.read"}
    | {"policy.check"},
    "regulator": {"read", "list", "node.read", "node.list", "stats", "policy.read"},
    "enroll": set(),
}
ROUTES = (
    "submit",
    "read",
    "list",
    "cancel",
    "claim",
    "report",
    "heartbeat",
    "node.read",
    "node.list",
    "tenant",
    "stats",
    "policy.read",
    "policy.check",
    "policy.change",
)
CHECK = {
    "principal": {"type": "Tenant", "id": "a"},
    "action": "list_tasks",
    "resource": {"type": "Service", "id": "s"},
    "entities": [
        {"uid": {"type": "Tenant", "id": "a"}, "attrs": {"allowed_classifications": []}},
        {"uid": {"type": "Service", "id": "s"}, "attrs": {}},
    ],
}


@pytest.fixture
def world(api: Any, service: Any) -> dict[str, Any]:
    alice = add_tenant(api, service, "alice")
    add_tenant(api, service, "bob")
    n1 = add_node(api, service, "n1", operator="op1", cpu_cores=8)
    n2 = add_node(api, service, "n2", operator="op2", cpu_cores=1)
    task = submit(api, alice)
    assert task["node_id"] == "n1"
    return {
        "task": task["id"],
        "alice": alice,
        "headers": {
            "admin": admin(service),
            "alice": alice,
            "bob": bearer(service, "tenant", "bob"),
            "n1": n1,
            "n2": n2,
            "op1": bearer(service, "operator", "op1"),
            "analyst": bearer(service, "analyst", "sam"),
            "regulator": bearer(service, "regulator", "rita"),
            "enroll": bearer(service, "node-register", "n9"),
        },
    }


def call(api: Any, service: Any, world: dict[str, Any], route: str, headers: dict[str, str]):
    task_id = world["task"]
    if route == "submit":
        return api.post("/v1/tasks", json={"command": ["true"]}, headers=headers)
    if route == "read":
        return api.get(f"/v1/tasks/{task_id}", headers=headers)
    if route == "list":
        return api.get("/v1/tasks", headers=headers)
    if route == "cancel":  # a fresh task each time, so a cancel never conflicts
        fresh = submit(api, world["alice"])["id"]
        return api.post(f"/v1/tasks/{fresh}/cancel", headers=headers)
    if route == "claim":
        return api.post("/v1/agent/claim", json={"wait_s": 0}, headers=headers)
    if route == "report":
        digest = "sha256:" + "0" * 64
        body = {"results": [{"task_id": "f" * 32, "exit_code": 0, "output_digest": digest}]}
        return api.post("/v1/agent/report", json=body, headers=headers)
    if route == "heartbeat":
        return api.post("/v1/agent/heartbeat", json={"running": []}, headers=headers)
    if route == "node.read":
        return api.get("/v1/nodes/n1", headers=headers)
    if route == "node.list":
        return api.get("/v1/nodes", headers=headers)
    if route == "tenant":
        return api.post("/v1/tenants", json={"name": f"t{len(str(headers))}"}, headers=headers)
    if route == "stats":
        return api.get("/v1/stats", headers=headers)
    if route == "policy.read":
        return api.get("/v1/policy", headers=headers)
    if route == "policy.check":
        return api.post("/v1/policy/check", json=CHECK, headers=headers)
    assert route == "policy.change"
    text = service.authorizer.store.current.export()
    return api.put("/v1/policy", content=text, headers=headers)


def test_policy_authorizer_is_the_default(service):
    assert isinstance(service.authorizer, PolicyAuthorizer)


@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix_through_the_api(api, service, world, role):
    headers = world["headers"][role]
    got: dict[str, int] = {}
    for route in ROUTES:
        got[route] = call(api, service, world, route, headers).status_code
    allowed = {r for r, status in got.items() if status not in (401, 403)}
    # bob reading alice's task sees 404 (tenants never learn other tenants' task ids)
    if role == "bob":
        assert got["read"] == 404 and got["cancel"] == 404
        allowed -= {"read", "cancel"}
    assert allowed == ALLOWED[role], got
    # report of an unknown task by an authorized node: 404 after authorization
    if "report" in ALLOWED[role]:
        assert got["report"] == 404


def test_forbidden_responses_name_the_deciding_policies(api, service, world):
    h = world["headers"]
    refused = api.post("/v1/tasks", json={"command": ["true"]}, headers=h["regulator"])
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    body = refused.json()
    assert body["policy_ids"] == ["regulator.write-nothing"]
    assert body["reasons"] == ["regulators write nothing"]
    tenant = api.post("/v1/tenants", json={"name": "eve"}, headers=h["alice"])
    assert tenant.json()["policy_ids"] == ["tenant.manage-admins-only"]
    change = api.put("/v1/policy", content=b"{}", headers=h["analyst"])
    assert change.status_code == 403 and change.json()["policy_ids"] == ["policy.admins-only"]
    other = api.get(f"/v1/tasks/{world['task']}", headers=h["n2"])
    assert other.status_code == 403 and other.json()["reasons"]
    # a default deny has no deciding policy, and says so
    listing = api.get("/v1/nodes", headers=h["alice"])
    assert listing.status_code == 403
    assert listing.json()["reasons"] == ["no policy permits this request (default deny)"]


def test_regulator_writes_nothing(api, service, world):
    rita = world["headers"]["regulator"]
    writes = [
        api.post("/v1/tasks", json={"command": ["true"]}, headers=rita),
        api.post(f"/v1/tasks/{world['task']}/cancel", headers=rita),
        api.post("/v1/tenants", json={"name": "eve"}, headers=rita),
        api.put("/v1/policy", content=service.authorizer.store.current.export(), headers=rita),
        api.post("/v1/agent/claim", json={"wait_s": 0}, headers=rita),
        api.post("/v1/agent/heartbeat", json={"running": []}, headers=rita),
    ]
    assert [r.status_code for r in writes] == [403] * len(writes)
    assert api.get("/v1/policy", headers=admin(service)).json()["history"] == []


def test_tenant_clearance_comes_from_the_token(api, service):
    add_tenant(api, service, "carol")
    plain = bearer(service, "tenant", "carol")
    body = {"command": ["true"], "classification": "secret", "region": "local"}
    refused = api.post("/v1/tasks", json=body, headers=plain)
    assert refused.status_code == 403
    assert refused.json()["policy_ids"] == ["tenant.submit-cleared"]
    token = service.issue_token(
        "tenant", "carol", __import__("datetime").timedelta(minutes=5), cntrust_clearance=["secret"]
    )
    cleared = {"Authorization": f"Bearer {token}"}
    assert api.post("/v1/tasks", json=body, headers=cleared).status_code == 201
    no_region = api.post(
        "/v1/tasks", json={"command": ["true"], "classification": "secret"}, headers=cleared
    )
    assert no_region.json()["policy_ids"] == ["task.secret-needs-region"]


def test_unfit_node_claims_nothing(api, service):
    """Its labels say it is attested; the scheduler has no result for it."""
    add_node(api, service, "bad", labels={"attestation_status": "affirming"}, attested=False)
    bad = bearer(service, "node", "bad")
    resp = api.post("/v1/agent/claim", json={"wait_s": 0}, headers=bad)
    assert resp.status_code == 403
    assert resp.json()["policy_ids"] == ["node.unfit-receives-nothing"]


def test_unregistered_node_token_is_refused(api, service):
    ghost = bearer(service, "node", "ghost")
    resp = api.post("/v1/agent/heartbeat", json={"running": []}, headers=ghost)
    assert resp.status_code == 403 and resp.json()["policy_ids"] == ["node.revoked-silent"]


PRINCIPALS = [
    Principal("admin", "root"),
    Principal("tenant", "alice"),
    Principal("tenant", "bob"),
    Principal("node", "n1"),
    Principal("node", "n2"),
    Principal("operator", "op1"),
    Principal("analyst", "sam"),
    Principal("regulator", "rita"),
    Principal("node-register", "n1"),
    Principal("stranger", "x"),
]
OWN_TASK = {"tenant": "alice", "node_id": "n1", "classification": "public"}
OTHER_TASK = {"tenant": "bob", "node_id": "n2", "classification": "internal"}


def shapes(principal: Principal, action: str) -> list[Resource]:
    """The resources the scheduler's routes pass with ``action``."""
    if action == "task.submit":
        return [Resource("task", None, {"tenant": principal.name, "classification": "public"})]
    if action in ("task.read", "task.cancel"):
        return [Resource("task", "t1", OWN_TASK), Resource("task", "t2", OTHER_TASK)]
    if action == "task.list":
        return [Resource("task")]
    if action in ("task.claim", "task.report", "node.heartbeat", "node.register"):
        return [Resource("node", principal.name)]
    if action == "identity.svid.renew":  # a node renews its own SVID
        return [Resource("node", principal.name)]
    if action in ("node.read", "node.cordon"):
        return [Resource("node", "n1"), Resource("node", "n2")]
    if action == "node.list":
        return [Resource("node")]
    if action == "tenant.manage":
        return [Resource("tenant", "carol")]
    if action in ("node.revoke", "node.release"):
        return [Resource("node", "n1")]
    if action.startswith("identity."):
        return [Resource("operator", "op1")]
    if action == "alert.read":  # alerts, incidents and suppressions are read alike
        lists = [Resource("alert"), Resource("incident"), Resource("suppression")]
        return [Resource("alert", "7"), Resource("incident", "inc-1"), *lists]
    if action == "alert.triage":
        return [Resource("alert", "7")]
    if action == "alert.suppress":
        return [Resource("suppression"), Resource("suppression", "s1")]
    if action == "alert.ingest":
        return [Resource("alert")]
    if action in ("node.attest", "telemetry.ingest"):  # a node attests / reports as itself
        return [Resource("node", principal.name)]
    if action in ("node.attest.reset", "quarantine.manage"):
        return [Resource("node", "n1"), Resource("node", "n2")]
    if action == "refvalues.manage":  # add a set; retire one
        return [Resource("refvalues"), Resource("refvalues", "default@1")]
    if action == "refvalues.read":
        return [Resource("refvalues")]
    if action == "quarantine.read":
        return [Resource("quarantine")]
    assert action.startswith("policy."), f"no resource shape for {action}"
    return [Resource("policy")]


# where the pack deliberately differs from the built-in rules; the register route lets only
# registration tokens and certificates through (it checks the role itself), so the admin
# difference below is reached by no route
DIFFERENT = {
    ("operator:op1", "node.read", "n2"): False,  # operators read their own nodes only
    ("admin:root", "node.register", "root"): True,  # admins enroll nodes (admin.manage)
    # CA rotation and revocation have no built-in rule: admins only (admin.identity)
    ("admin:root", "identity.ca.rotate", "op1"): True,
    ("admin:root", "identity.ca.revoke", "op1"): True,
    # only security analysts triage and suppress alerts (alerts.analysts-only), including
    # deleting a suppression
    ("admin:root", "alert.triage", "7"): False,
    ("admin:root", "alert.suppress", None): False,
    ("admin:root", "alert.suppress", "s1"): False,
    # regulators read provenance, tasks and policies, not alerts, incidents or suppressions
    # (default deny); None: the alert, incident and suppression lists
    ("regulator:rita", "alert.read", "7"): False,
    ("regulator:rita", "alert.read", "inc-1"): False,
    ("regulator:rita", "alert.read", None): False,
    # the quarantine list names every operator's nodes: operators read their own nodes
    # (node routes), not the service-wide list (default deny)
    ("operator:op1", "quarantine.read", None): False,
}


def test_decisions_equal_the_builtin_rules(service):
    """Every role x action x the resources the routes pass: the policy set decides like the
    built-in rules, except where the pack is stricter (listed above)."""
    from scheduler.policy_facts import node_entity

    facts = {
        n: node_entity(n, region="local", operator=op, accelerators=(), labels={})
        for n, op in (("n1", "op1"), ("n2", "op2"))
    }
    policy = PolicyAuthorizer(service.authorizer.store, facts.get)
    builtin = BuiltinAuthorizer()
    differences = []
    seen: set[tuple[str, str, str | None]] = set()
    decided = 0
    for principal in PRINCIPALS:
        for action in ACTIONS:
            for resource in shapes(principal, action):
                want = builtin.decide(principal, action, resource)
                got = policy.decide(principal, action, resource)
                decided += 1
                if got.allowed == want.allowed:
                    continue
                key = (principal.label, action, resource.id)
                if DIFFERENT.get(key) is got.allowed:
                    seen.add(key)
                    continue
                differences.append((*key, got.allowed))
    assert decided > 150 and differences == []
    assert seen == set(DIFFERENT)  # every listed difference is still one


def test_unknown_action_and_role_deny_with_a_reason(service):
    authorizer = service.authorizer
    denied = authorizer.decide(Principal("admin", "a"), "task.explode", Resource("task"))
    assert not denied.allowed and denied.reasons[0] == "unknown action task.explode"
    assert denied.reasons == ("unknown action task.explode",)  # no built-in fallback
    stranger = authorizer.decide(Principal("wizard", "w"), "task.list", Resource("task"))
    assert not stranger.allowed and "unknown role" in stranger.reasons[0]
    missing = authorizer.decide(Principal("tenant", "a"), "task.read", Resource("task", "t"))
    assert not missing.allowed and "missing" in missing.reasons[0]


def test_node_facts_follow_the_node_row_at_once(api, service, clock):
    from scheduler.models import Node
    from scheduler.policy_authz import database_node_facts

    add_node(api, service, "n7", attested=False)
    facts = database_node_facts(service)
    assert facts("n7").attrs["attestation_status"] in ("none", "unappraised")

    def contraindicate(session):
        node = session.get(Node, "n7")
        node.attestation_status = "contraindicated"
        node.attested_at = clock()
        node.attestation_expires_at = clock() + 600
        session.add(node)

    service.write_sync(contraindicate)
    assert facts("n7").attrs["attestation_status"] == "contraindicated"
    assert facts("nobody") is None
    assert facts("x" * 65) is None


def test_node_facts_ignore_what_the_node_says_about_itself(api, service):
    """A node's own requests are decided on the facts placement uses (its attestation
    result, the trust layer, the revocation set), never on labels it registered with."""
    from scheduler.models import Node
    from scheduler.policy_authz import database_node_facts
    from scheduler.policy_node_facts import SchedulerNodeFacts
    from scheduler.store import node_view

    lies = {"trust": "1.0", "uncertainty": "0", "attestation_status": "affirming"}
    gpus = [{"kind": "gpu", "count": 2}, {"kind": "fpga", "count": 1}]
    add_node(api, service, "liar", attested=False, labels=lies | {"revoked": "false"},
             accelerators=gpus, region="eu")  # fmt: skip
    entity = database_node_facts(service)("liar")
    assert entity.attrs["attestation_status"] != "affirming"
    assert entity.attrs["accelerators"] == frozenset({"gpu", "fpga"})
    assert entity.attrs["region"] == "eu"
    with service.read() as session:
        view = node_view(session.get(Node, "liar"))
    placement = SchedulerNodeFacts(service, require_attestation=entity.attrs[
        "attestation_status"] == "none")(view)  # fmt: skip
    assert entity.attrs == placement.attrs
    assert entity.attrs["trust_permille"] < 1000 or entity.attrs["uncertainty_permille"] > 0


def test_a_node_acting_on_itself_is_read_once_per_decision(service):
    """Claims, reports and heartbeats name the node as principal and resource: one read of
    its facts (one snapshot for both), and a fresh read on the next decision."""
    from scheduler.policy_facts import node_entity

    reads: list[str] = []

    def facts(node_id: str) -> Any:
        reads.append(node_id)
        return node_entity(node_id, region="local", operator="op1", accelerators=(), labels={})

    policy = PolicyAuthorizer(service.authorizer.store, facts)
    n1 = Principal("node", "n1")
    for action in ("task.claim", "task.report", "node.heartbeat"):
        decision = policy.decide(n1, action, Resource("node", "n1"))
        assert decision.allowed and decision.policy_ids and decision.reasons
    assert reads == ["n1", "n1", "n1"]  # once per decision, never cached across decisions
    other = policy.decide(n1, "node.heartbeat", Resource("node", "n2"))
    assert not other.allowed and reads[-2:] == ["n1", "n2"]
