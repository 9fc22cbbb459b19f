"""The scheduler's HTTP API (FastAPI). Every route authenticates, then authorizes
through the one seam, then reads or writes; every error is problem+json."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from pydantic import BaseModel
from sqlmodel import Session, col, func, select

from scheduler import store
from scheduler.authz import Principal, Resource
from scheduler.errors import Conflict, Forbidden, NotFound, SchedulerError, Unauthorized
from scheduler.models import Node, Task, TaskEvent, TaskState, Tenant, new_row
from scheduler.node_results import NodeSignatureInvalid
from scheduler.problems import BodyLimit, install
from scheduler.schemas import (
    NAME_PATTERN,
    Claim,
    ClaimedTask,
    ExchangeBatch,
    Exchanged,
    Heartbeat,
    HeartbeatOut,
    NodeOut,
    NodeRegister,
    Registered,
    ReportBatch,
    ReportOutcome,
    TaskDetail,
    TaskEventOut,
    TaskOut,
    TaskSubmit,
    TenantCreate,
)
from scheduler.service import SERVICE_TOKEN_MAX, Service
from scheduler.telemetry import traceparent_of

log = logging.getLogger(__name__)

NODE_TOKEN_TTL = SERVICE_TOKEN_MAX
# sensor batches and element telemetry get settings.alerts_max_body_bytes (scheduler.incidents)
LARGE_BODY_PATHS = ("/v1/alerts", "/v1/agent/telemetry")
CLAIM_COALESCE_S = 0.01


def json_response(model: BaseModel, status: int = 200) -> Response:
    """Serialize with pydantic's own (Rust) serializer; the route's response_model still
    documents the shape in OpenAPI, and FastAPI skips its second validation pass."""
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def json_list_response(models: Sequence[BaseModel]) -> Response:
    body = "[" + ",".join(m.model_dump_json() for m in models) + "]"
    return Response(body, media_type="application/json")


class RequestCounter:
    def __init__(self, router: object) -> None:
        self.counts: dict[str, int] = {}


class CountRequests:
    """Counts requests by method and route template (for /v1/stats)."""

    def __init__(self, app: Any, counter: RequestCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            key = f"{scope['method']} {path}"
            self.counter.counts[key] = self.counter.counts.get(key, 0) + 1


class Notifier:
    """Wakes long-polling claims when work is placed on a node (in this replica)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self.closing = False  # the server is stopping: long polls answer at once

    def event(self, node_id: str) -> asyncio.Event:
        return self._events.setdefault(node_id, asyncio.Event())

    def wake(self, node_id: str | None) -> None:
        if node_id is not None:
            self.event(node_id).set()

    def close(self) -> None:
        """Answer every long poll now (thread-safe: the polls check the flag at least every
        0.5 s), so a stopping server does not wait out their ``wait_s``."""
        self.closing = True


def task_resource(task: Task) -> Resource:
    """The authorization resource of a task: every attribute the policies decide on."""
    return Resource(
        "task",
        task.id,
        {
            "tenant": task.tenant,
            "node_id": task.node_id,
            "classification": task.classification.value,
            "region": task.region,
            "accelerator_kind": task.accelerator_kind,
        },
    )


async def _principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    # async: a sync dependency would cost every request a hop through the thread pool
    service: Service = request.app.state.service
    tls = request.scope.get("extensions", {}).get("tls")
    if tls is not None and tls.get("client_cert_chain"):  # a node's X.509-SVID (mTLS)
        return service.authenticate_peer(tls)
    return service.authenticate(authorization)


Caller = Annotated[Principal, Depends(_principal)]


def create_app(service: Service, *, layers: bool = True) -> FastAPI:
    settings = service.settings
    notifier = Notifier()

    async def maintenance() -> None:
        """Expire silent nodes, requeue their work, place pending tasks."""
        while True:
            await asyncio.sleep(0.5)
            try:
                now = service.clock()

                def op(session: Session, now: float = now) -> list[store.Transition]:
                    store.expire_nodes(session, now, settings.heartbeat_timeout_s)
                    for hook in service.maintenance_hooks:
                        hook(session, now)
                    return store.place_pending(session, now, service.pipeline)

                for placed in await service.write(op):
                    notifier.wake(placed.node_id)
            except Exception:
                log.exception("maintenance pass failed")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(maintenance())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="cntrust scheduler",
        version="0.1.0",
        lifespan=lifespan,
        description="Reference scheduler protected by cntrust.",
    )
    big = {path: settings.alerts_max_body_bytes for path in LARGE_BODY_PATHS}
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, overrides=big)
    requests = RequestCounter(app.router)
    app.add_middleware(CountRequests, counter=requests)
    install(app)
    app.state.service = service
    if layers:
        install_layers(service)
    app.state.notifier = notifier

    def load_task(session: Session, task_id: str, who: Principal, action: str) -> Task:
        task = session.get(Task, task_id) if len(task_id) <= 40 else None
        if task is None:
            raise NotFound(f"task {task_id} not found")
        try:
            service.authorize(who, action, task_resource(task))
        except Exception as exc:
            if who.role == "tenant":  # do not reveal other tenants' task ids
                raise NotFound(f"task {task_id} not found") from exc
            raise
        return task

    # -- public --------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/.well-known/jwks.json")
    def jwks() -> dict[str, list[dict[str, str]]]:
        return service.keyset.jwks()

    # -- tenants ---------------------------------------------------------------
    @app.post("/v1/tenants", status_code=201)
    async def create_tenant(body: TenantCreate, who: Caller) -> dict[str, str]:
        service.authorize(who, "tenant.manage", Resource("tenant", body.name))
        now = service.clock()
        await service.write(lambda s: store.add_tenant(s, body.name, now))
        return {"name": body.name}

    # -- tasks -------------------------------------------------------------------
    @app.post("/v1/tasks", status_code=201, response_model=TaskOut)
    async def submit_task(body: TaskSubmit, who: Caller) -> Response:
        tenant = who.name
        decision = service.authorize(
            who,
            "task.submit",
            Resource(
                "task",
                None,
                {
                    "tenant": tenant,
                    "classification": body.classification.value,
                    "region": body.region,
                    "accelerator_kind": body.accelerator_kind,
                },
            ),
        )
        now = service.clock()
        task_id = uuid.uuid4().hex
        tel = service.telemetry
        with tel.span("task.submit", task_id=task_id, tenant=tenant) as span:
            task = new_row(
                Task,
                id=task_id,
                tenant=tenant,
                state=TaskState.SUBMITTED,
                command=body.command,
                cpu=body.cpu,
                memory_mb=body.memory_mb,
                gpu=body.gpu,
                accelerator_kind=body.accelerator_kind,
                classification=body.classification,
                region=body.region,
                timeout_s=body.timeout_s,
                submitted_at=now,
                updated_at=now,
                trace_parent=traceparent_of(span),
                idempotency_key=body.idempotency_key,
            )
            admission = "admitted: " + "; ".join(decision.reasons)
            started = time.perf_counter()
            saved, placement = await service.write(
                lambda s: store.submit_task(s, task, now, service.pipeline, admission)
            )
            tel.placement_latency.record((time.perf_counter() - started) * 1000)
            if placement is not None:
                with tel.span("task.place", saved.trace_parent, task_id=saved.id) as pspan:
                    pspan.set_attribute("cntrust.node_id", placement.node_id or "")
                    pspan.set_attribute("cntrust.reason", placement.reason)
                notifier.wake(placement.node_id)
        return json_response(TaskOut.of(saved), 201)

    @app.get("/v1/tasks")
    def list_tasks(
        who: Caller,
        state: TaskState | None = None,
        tenant: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[TaskOut]:
        service.authorize(who, "task.list", Resource("task"))
        stmt = select(Task).order_by(col(Task.submitted_at).desc()).limit(limit)
        if who.role == "tenant":  # verification replicas are the scheduler's, not the tenant's
            stmt = stmt.where(Task.tenant == who.name, col(Task.replica_of).is_(None))
        elif tenant is not None:
            stmt = stmt.where(Task.tenant == tenant)
        if state is not None:
            stmt = stmt.where(Task.state == state)
        with service.read() as session:
            return [TaskOut.of(t) for t in session.exec(stmt)]

    @app.get("/v1/tasks/{task_id}")
    def show_task(task_id: str, who: Caller) -> TaskDetail:
        with service.read() as session:
            task = load_task(session, task_id, who, "task.read")
            events = session.exec(
                select(TaskEvent).where(TaskEvent.task_id == task.id).order_by(col(TaskEvent.id))
            )
            detail = TaskDetail.model_validate(TaskOut.of(task).model_dump())
            detail.events = [TaskEventOut.of(e) for e in events]
            return detail

    @app.post("/v1/tasks/{task_id}/cancel")
    async def cancel_task(task_id: str, who: Caller) -> TaskOut:
        with service.read() as session:
            load_task(session, task_id, who, "task.cancel")
        now = service.clock()
        task = await service.write(
            lambda s: store.cancel_task(s, task_id, now, who.label, service.finished_hooks)
        )
        return TaskOut.of(task)

    # -- nodes ---------------------------------------------------------------------
    @app.post("/v1/nodes/register", status_code=201)
    async def register_node(body: NodeRegister, who: Caller) -> Registered:
        by_certificate = who.role == "node" and who.claims.get("cntrust_auth") == "x509-svid"
        if who.role != "node-register" and not by_certificate:
            raise Unauthorized("a node registration token is required", reason="role")
        service.authorize(who, "node.register", Resource("node", who.name))
        name = who.name
        operator = str(who.claims.get("operator") or body.operator)  # enrolled: the identity's
        if "operator" in body.model_fields_set and body.operator != operator:
            raise Forbidden(
                f"node {name} is enrolled by operator {operator}, not {body.operator}",
                reason="operator_mismatch",
            )
        now = service.clock()
        node = Node(
            id=name,
            name=name,
            operator=operator,
            region=body.region,
            cpu_cores=body.cpu_cores,
            memory_mb=body.memory_mb,
            accelerators=[a.model_dump() for a in body.accelerators],
            registered_at=now,
            last_heartbeat=now,
            labels=body.labels,
        )
        await service.write(lambda s: store.register_node(s, node))
        token = service.issue_token("node", name, NODE_TOKEN_TTL)
        return Registered(
            node_id=name, token=token, heartbeat_interval_s=settings.heartbeat_interval_s
        )

    @app.post("/v1/agent/heartbeat")
    async def heartbeat(body: Heartbeat, who: Caller) -> HeartbeatOut:
        service.authorize(who, "node.heartbeat", Resource("node", who.name))
        now = service.clock()
        requeued = await service.write(
            lambda s: store.heartbeat(s, who.name, body.running, now, settings.running_grace_s)
        )
        token = None
        exp = float(who.claims.get("exp", 0))
        iat = float(who.claims.get("iat", 0))
        by_certificate = who.claims.get("cntrust_auth") == "x509-svid"  # renews its SVID
        if now >= iat + (exp - iat) / 2 and not by_certificate:  # renew at half-life
            token = service.issue_token("node", who.name, NODE_TOKEN_TTL)
        return HeartbeatOut(status="ok", requeued=requeued, token=token)

    def claimed(tasks: list[Task]) -> list[ClaimedTask]:
        return [
            ClaimedTask(
                id=t.id,
                command=t.command,
                cpu=t.cpu,
                memory_mb=t.memory_mb,
                gpu=t.gpu,
                timeout_s=t.timeout_s,
                trace_parent=t.trace_parent,
                attempt=t.attempt,
            )
            for t in tasks
        ]

    @app.post("/v1/agent/claim", response_model=list[ClaimedTask])
    async def claim(body: Claim, who: Caller, request: Request) -> Response:
        service.authorize(who, "task.claim", Resource("node", who.name))
        node_id = who.name
        deadline = time.monotonic() + min(body.wait_s, settings.claim_wait_s)
        limit = min(body.max_tasks, settings.max_claim)
        event = notifier.event(node_id)
        while True:
            event.clear()
            now = service.clock()
            tasks = await service.write(
                lambda s, now=now: store.claim_tasks(s, node_id, now, limit)
            )
            remaining = deadline - time.monotonic()
            if tasks or remaining <= 0 or notifier.closing:
                break
            if await request.is_disconnected():  # the agent went away: nobody to answer
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(remaining, 0.5))
                # woken by new work: let a few more placements land so one claim takes them all
                await asyncio.sleep(CLAIM_COALESCE_S)
        return json_list_response(claimed(tasks))

    async def record_reports(
        who: Principal, body: ReportBatch, claim_max: int
    ) -> tuple[list[ReportOutcome], list[Task]]:
        """Record results, place waiting work, and (claim_max > 0) hand this node its next
        tasks — all in one transaction."""
        service.authorize(who, "task.report", Resource("node", who.name))
        if claim_max:
            service.authorize(who, "task.claim", Resource("node", who.name))
        now = service.clock()
        reports = [
            store.Report(
                task_id=item.task_id,
                exit_code=item.exit_code,
                output_digest=item.output_digest,
                usage=item.usage,
                error=item.error,
                started_at=item.started_at,
                finished_at=item.finished_at,
                node_signature=item.node_signature,
            )
            for item in body.results
        ]

        def op(
            s: Session,
        ) -> tuple[list[Task | SchedulerError], list[store.Transition], list[Task]]:
            results, placed = store.report_tasks(
                s, who.name, reports, now, service.pipeline, service.finished_hooks
            )
            tasks = store.claim_tasks(s, who.name, now, claim_max) if claim_max else []
            return results, placed, tasks

        results, placed, tasks = await service.write(op)
        for transition in placed:  # capacity was released: wake the nodes that got work
            if transition.node_id != who.name or not claim_max:
                notifier.wake(transition.node_id)
        outcomes = []
        for item, result in zip(body.results, results, strict=True):
            if isinstance(result, SchedulerError):
                problem = {"status": result.status, "type": result.type_slug, "detail": str(result)}
                outcomes.append(
                    ReportOutcome(task_id=item.task_id, accepted=False, problem=problem)
                )
                continue
            task = result
            with service.telemetry.span(
                "task.report", task.trace_parent, task_id=task.id, node_id=who.name
            ) as span:
                span.set_attribute("cntrust.state", task.state.value)
            outcomes.append(ReportOutcome(task_id=task.id, accepted=True, state=task.state.value))
        return outcomes, tasks

    @app.post("/v1/agent/report", response_model=list[ReportOutcome])
    async def report(body: ReportBatch, who: Caller) -> Response:
        outcomes, _ = await record_reports(who, body, 0)
        if len(outcomes) == 1 and not outcomes[0].accepted and outcomes[0].problem:
            p = outcomes[0].problem
            if p["status"] == 409:
                raise Conflict(p["detail"])
            if p["type"] == NodeSignatureInvalid.type_slug:
                raise NodeSignatureInvalid(p["detail"])
            raise NotFound(p["detail"])
        return json_list_response(outcomes)

    @app.post("/v1/agent/exchange", response_model=Exchanged)
    async def exchange(body: ExchangeBatch, who: Caller) -> Response:
        """Report results and take the next tasks in one round trip (the agent's hot path)."""
        outcomes, tasks = await record_reports(
            who, ReportBatch(results=body.results), min(body.claim_max, settings.max_claim)
        )
        return json_response(Exchanged(outcomes=outcomes, tasks=claimed(tasks)))

    @app.get("/v1/nodes")
    def list_nodes(who: Caller) -> list[NodeOut]:
        service.authorize(who, "node.list", Resource("node"))
        with service.read() as session:
            return [NodeOut.of(n) for n in session.exec(select(Node).order_by(col(Node.id)))]

    @app.get("/v1/nodes/{node_id}")
    def show_node(node_id: str, who: Caller) -> NodeOut:
        service.authorize(who, "node.read", Resource("node", node_id))
        with service.read() as session:
            node = session.get(Node, node_id) if len(node_id) <= 64 else None
            if node is None:
                raise NotFound(f"node {node_id} not found")
            return NodeOut.of(node)

    @app.get("/v1/stats")
    def stats(who: Caller) -> dict[str, object]:
        service.authorize(who, "task.list", Resource("task"))
        with service.read() as session:
            tenants = session.exec(select(func.count()).select_from(Tenant)).one()
        return {
            "requests": dict(sorted(requests.counts.items())),
            "commit_batches": service.committer.batches,
            "commit_operations": service.committer.operations,
            "tasks_by_state": service.tasks_by_state(),
            "tenants": tenants,
        }

    from scheduler.routers import discover

    for router in discover():
        app.include_router(router)
    return app


def install_layers(service: Service) -> None:
    """Wire the security layers into a service (once): identity's revocation check on
    every authentication, the trust engine (evidence from finished tasks, the
    placement filter and ranker, quarantine, sync between replicas, and verification by
    replication unless ``settings.replication`` is off), attestation (appraisal, and the
    gate when ``settings.attestation_gate`` is on), the Cedar placement filter and the
    incident layer, each unless ``settings.layers_off`` names it. Cedar authorization is
    installed by the Service itself; provenance needs its own keys and threads (see
    scheduler.local)."""
    from scheduler.identity_layer import install as install_identity
    from scheduler.incidents import IncidentLayer
    from scheduler.replication import Replication, ReplicationConfig
    from scheduler.trust_wiring import TrustLayer

    settings = service.settings
    if settings.layer_on("identity"):
        install_identity(service)
        from scheduler.mtls import install as install_mtls

        install_mtls(service)  # nodes may authenticate with their X.509-SVID
    if settings.layer_on("trust") and not isinstance(getattr(service, "trust", None), TrustLayer):
        layer = TrustLayer.install(service, sync_interval_s=settings.trust_sync_interval_s)
        if settings.replication:
            Replication.install(service, layer, ReplicationConfig.of(settings))
    if settings.layer_on("policy"):
        from scheduler.policy_wiring import install_placement

        # the Cedar placement filter and decision records; with the attestation gate on,
        # a node without a result is "none" to Cedar too (never "unappraised")
        attested = settings.layer_on("attestation") and settings.attestation_gate
        install_placement(service, require_attestation=attested)
    if settings.layer_on("ids"):
        # alerts -> incidents -> quarantine / revocation, shared between replicas
        IncidentLayer.install(service, sync_interval_s=settings.incident_sync_interval_s)
    if settings.layer_on("attestation"):
        from scheduler.attestation import AttestationLayer

        AttestationLayer.install(service)


def issue_tenant_token(service: Service, tenant: str, ttl: timedelta) -> str:
    with service.read() as session:
        if session.get(Tenant, tenant) is None:
            raise NotFound(f"tenant {tenant} is not registered")
    return service.issue_token("tenant", tenant, ttl)
