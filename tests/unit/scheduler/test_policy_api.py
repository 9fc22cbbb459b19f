"""The policy set through the API: show it, check a request, change it (and refuse bad sets)."""

from __future__ import annotations

import json

from sqlmodel import select

from policies import default_policy_dir
from scheduler.tables.policy import PolicyChange
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_tenant, admin, submit
from tests.unit.scheduler.policy_fixtures import service

__all__ = ["service"]  # the fixture: a body limit that admits an exported policy set

PROBLEM = "application/problem+json"
DEFAULT_DIR = default_policy_dir()
SCHEMA = (DEFAULT_DIR / "cntrust.cedarschema.json").read_text()


def pack_files(**replace: str) -> dict[str, str]:
    files = {p.name: p.read_text() for p in sorted(DEFAULT_DIR.glob("*.cedar"))}
    files.update(replace)
    return files


def test_show_lists_version_policies_and_history(api, service):
    body = api.get("/v1/policy", headers=admin(service)).json()
    current = service.authorizer.store.current
    assert body["version"] == current.version
    assert len(body["policies"]) == len(current.policies)
    regulator = next(p for p in body["policies"] if p["id"] == "regulator.write-nothing")
    assert regulator == {
        "id": "regulator.write-nothing",
        "reason": "regulators write nothing",
        "effect": "forbid",
    }
    assert body["history"] == []
    rita = bearer(service, "regulator", "rita")
    assert api.get("/v1/policy", headers=rita).status_code == 200
    assert api.get("/v1/policy", headers=bearer(service, "tenant", "a")).status_code == 403


def test_check_decides_a_request_file(api, service):
    request = {
        "principal": {"type": "Tenant", "id": "a"},
        "action": "read_task",
        "resource": {"type": "Task", "id": "t-b"},
        "entities": [
            {"uid": {"type": "Tenant", "id": "a"}, "attrs": {"allowed_classifications": []}},
            {
                "uid": {"type": "Task", "id": "t-b"},
                "attrs": {
                    "tenant": {"__entity": {"type": "Tenant", "id": "b"}},
                    "classification": "public",
                    "required_accelerators": [],
                },
            },
        ],
    }
    sam = bearer(service, "analyst", "sam")
    answer = api.post("/v1/policy/check", json=request, headers=sam).json()
    assert answer["decision"] == "deny"
    assert answer["policy_ids"] == ["tenant.others-tasks"]
    assert answer["reasons"] == ["a tenant never reads or acts on another tenant's task"]
    assert answer["policy_set_version"] == service.authorizer.store.version
    malformed = api.post("/v1/policy/check", json={"action": 3}, headers=sam)
    assert malformed.status_code == 422 and malformed.headers["content-type"] == PROBLEM
    rita = bearer(service, "regulator", "rita")
    assert api.post("/v1/policy/check", json=request, headers=rita).status_code == 403


def test_invalid_update_is_refused_and_the_old_set_still_decides(api, service):
    root = admin(service)
    before = service.authorizer.store.version
    broken = pack_files(
        **{
            "extra.cedar": (
                '@id("x.no-reason")\npermit (principal, action, resource);\n\n'
                '@reason("no id")\npermit (principal, action, resource);\n'
            )
        }
    )
    resp = api.put("/v1/policy", json={"schema": SCHEMA, "files": broken}, headers=root)
    assert resp.status_code == 422 and resp.headers["content-type"] == PROBLEM
    problems = resp.json()["problems"]
    assert [(p["file"], p["line"], p["policy_id"]) for p in problems] == [
        ("extra.cedar", 1, "x.no-reason"),
        ("extra.cedar", 4, ""),
    ]
    schema_violation = pack_files(
        **{
            "extra.cedar": '@id("x.typo")\n@reason("r")\nforbid (principal, action, resource)'
            " when { principal.nope == 1 };\n"
        }
    )
    resp = api.put("/v1/policy", json={"schema": SCHEMA, "files": schema_violation}, headers=root)
    assert resp.status_code == 422
    assert [p["policy_id"] for p in resp.json()["problems"]][:1] == ["x.typo"]
    syntax = api.put("/v1/policy", json={"schema": SCHEMA, "files": {"a.cedar": "permit ("}})
    assert syntax.status_code == 401  # no token: refused before anything is parsed
    garbage = api.put("/v1/policy", content=b"not json", headers=root)
    assert garbage.status_code == 422
    assert service.authorizer.store.version == before
    with service.read() as session:
        assert session.exec(select(PolicyChange)).all() == []
    # the old set still decides: a regulator still cannot submit
    rita = bearer(service, "regulator", "rita")
    refused = api.post("/v1/tasks", json={"command": ["true"]}, headers=rita)
    assert refused.json()["policy_ids"] == ["regulator.write-nothing"]


def test_valid_update_changes_decisions_and_is_recorded(api, service, clock):
    root = admin(service)
    alice = add_tenant(api, service, "alice")
    submit(api, alice)
    assert api.get("/v1/tasks", headers=alice).status_code == 200
    before = service.authorizer.store.version
    tenants = (DEFAULT_DIR / "tenants.cedar").read_text()
    cut = tenants.index('@id("tenant.list-tasks")')
    files = pack_files(**{"tenants.cedar": tenants[:cut]})
    resp = api.put("/v1/policy", json={"schema": SCHEMA, "files": files}, headers=root)
    assert resp.status_code == 200, resp.text
    change = resp.json()
    assert change["old_version"] == before and change["changed"] is True
    assert change["changed_by"] == "admin:admin" and change["changed_at"] == clock.now
    after = service.authorizer.store.version
    assert change["new_version"] == after != before
    # tenants may no longer list tasks
    refused = api.get("/v1/tasks", headers=alice)
    assert refused.status_code == 403
    assert refused.json()["reasons"] == ["no policy permits this request (default deny)"]
    history = api.get("/v1/policy", headers=root).json()["history"]
    assert [(h["old_version"], h["new_version"], h["changed_by"]) for h in history] == [
        (before, after, "admin:admin")
    ]
    # an exported set (how replicas follow) restores the old decisions
    from policies import load_default_policy_set

    text = load_default_policy_set().export()
    back = api.put("/v1/policy", content=text, headers=root)
    assert back.status_code == 200 and back.json()["new_version"] == before
    assert api.get("/v1/tasks", headers=alice).status_code == 200


def test_a_restarted_scheduler_keeps_the_changed_set(api, service):
    from scheduler.policy_authz import PolicyAuthorizer
    from scheduler.service import Service

    tenants = (DEFAULT_DIR / "tenants.cedar").read_text()
    files = pack_files(**{"tenants.cedar": tenants[: tenants.index('@id("tenant.list-tasks")')]})
    resp = api.put("/v1/policy", json={"schema": SCHEMA, "files": files}, headers=admin(service))
    assert resp.status_code == 200
    again = Service(service.settings, clock=service.clock)
    try:
        assert isinstance(again.authorizer, PolicyAuthorizer)
        assert again.authorizer.store.version == resp.json()["new_version"]
    finally:
        again.close()


def test_a_tampered_stored_set_falls_back_to_the_default_pack(api, service):
    from scheduler.policy_changes import latest_policy_set

    tenants = (DEFAULT_DIR / "tenants.cedar").read_text()
    files = pack_files(**{"tenants.cedar": tenants[: tenants.index('@id("tenant.list-tasks")')]})
    api.put("/v1/policy", json={"schema": SCHEMA, "files": files}, headers=admin(service))
    with service.read() as session:
        row = session.exec(select(PolicyChange)).one()
        doc = json.loads(row.policy_text)
        doc["policies"] = doc["policies"][1:]
        row.policy_text = json.dumps(doc)
        session.add(row)
        session.commit()
    assert latest_policy_set(service) is None


def test_regulator_and_tenant_cannot_change_policy(api, service):
    text = service.authorizer.store.current.export()
    for who in (bearer(service, "regulator", "r"), bearer(service, "tenant", "t")):
        resp = api.put("/v1/policy", content=text, headers=who)
        assert resp.status_code == 403
        assert "policy.admins-only" in resp.json()["policy_ids"]


def test_routes_are_404_without_the_policy_engine(tmp_path, database_url, clock):
    from fastapi.testclient import TestClient

    from scheduler.app import create_app
    from scheduler.authz import BuiltinAuthorizer
    from scheduler.service import Service
    from scheduler.settings import Settings

    svc = Service(
        Settings(data_dir=tmp_path / "d", database_url=database_url),
        clock=clock,
        authorizer=BuiltinAuthorizer(),
    )
    try:
        with TestClient(create_app(svc)) as client:
            assert client.get("/v1/policy", headers=admin(svc)).status_code == 404
    finally:
        svc.close()
