"""The composition root: settings in, every component wired, nothing global.

:class:`Service` owns the database engine and committer, the token keys, the
authorizer, the placement pipeline and telemetry. The HTTP app
(:mod:`scheduler.app`), the CLI's local commands and the tests all build one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlmodel import Session

from identity import TokenIssuer, TokenVerificationError, TokenVerifier
from scheduler.authz import (
    Authorizer,
    AuthzDecision,
    BuiltinAuthorizer,
    Principal,
    Resource,
    authorize,
)
from scheduler.db import Committer, create_db_engine
from scheduler.errors import Unauthorized
from scheduler.keys import load_or_create_keyset
from scheduler.models import Task
from scheduler.placement import PlacementPipeline
from scheduler.settings import Settings
from scheduler.telemetry import Telemetry

T = TypeVar("T")


@dataclass(frozen=True)
class ResponseAction:
    """A security response the scheduler took or lifted, for the provenance log.

    ``action`` is a stable dotted id (``response.quarantine``, ``response.release``,
    ``response.revoke``, ``response.policy_change``); ``subject`` what it acted on
    (a node id, an operator, a policy set); ``source`` what triggered it (``trust``,
    ``incident``, ``attestation``, ``analyst``, ``admin``). ``detail`` holds ids and
    digests only, never secrets or payloads.
    """

    action: str
    subject: str
    reason: str
    actor: str
    source: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


ROLE_CLAIM = "cntrust_role"
SERVICE_TOKEN_MAX = timedelta(minutes=15)
VERIFIED_CACHE_SIZE = 10_000
VERIFIED_CACHE_TTL_S = 30.0


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        authorizer: Authorizer | None = None,
        pipeline: PlacementPipeline | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        settings.ensure_data_dir()
        self.engine = create_db_engine(settings.effective_database_url)
        self.committer = Committer(self.engine)
        self.keyset = load_or_create_keyset(settings.data_dir)
        self.issuer = TokenIssuer(self.keyset, settings.issuer, clock)
        self.verifier = TokenVerifier(
            self.keyset.keys_by_kid, settings.issuer, settings.audience, clock
        )
        self.authorizer: Authorizer = authorizer or BuiltinAuthorizer()
        if authorizer is None and settings.layer_on("policy"):
            # the Cedar policy set decides (scheduler.policy_authz)
            from scheduler.policy_authz import install as install_policy_authorizer

            install_policy_authorizer(self)
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}
        # called as hook(session, task) inside the transaction that records a finished task
        self.finished_hooks: list[Callable[[Session, Task], None]] = []
        # called as hook(session, action) inside the transaction of a security response
        # (quarantine, release, revocation, policy change); the provenance layer logs them
        self.response_hooks: list[Callable[[Session, ResponseAction], None]] = []
        # called as hook(session, now) in every maintenance pass of the API (every 0.5 s)
        self.maintenance_hooks: list[Callable[[Session, float], None]] = []
        self.pipeline = pipeline or PlacementPipeline()
        # called by close() before the committer stops (background threads of the layers)
        self.close_hooks: list[Callable[[], None]] = []
        self.telemetry = Telemetry(
            "cntrust-scheduler",
            console=settings.console_traces,
            otlp_endpoint=settings.otlp_endpoint,
        )

        self.telemetry.tasks_by_state = self.tasks_by_state

    def tasks_by_state(self) -> dict[str, int]:
        from sqlmodel import func, select

        from scheduler.models import Task

        with self.read() as session:
            rows = session.exec(select(Task.state, func.count()).group_by(Task.state)).all()
        return {str(getattr(state, "value", state)): int(count) for state, count in rows}

    # -- writes -------------------------------------------------------------
    async def write(self, op: Callable[[Session], T]) -> T:
        """Run a write durably via the group committer; returns after commit."""
        return await asyncio.wrap_future(self.committer.submit(op))

    def write_sync(self, op: Callable[[Session], T]) -> T:
        return self.committer.run(op)

    def read(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def record_response(self, session: Session, action: ResponseAction) -> None:
        """Hand a security response action to every response hook, in ``session``'s
        transaction (so the action and its record commit together or not at all)."""
        for hook in self.response_hooks:
            hook(session, action)

    # -- tokens -------------------------------------------------------------
    def issue_token(self, role: str, subject: str, ttl: timedelta, **claims: Any) -> str:
        return self.issuer.issue(subject, self.settings.audience, ttl, {ROLE_CLAIM: role, **claims})

    def authenticate(self, authorization: str | None) -> Principal:
        """Bearer token -> principal; raises Unauthorized (never says why beyond a code)."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("a bearer token is required")
        token = authorization[7:].strip()
        now = self.clock()
        cached = self._verified.get(token)
        if cached is not None and cached[0] > now:
            claims = cached[1]
        else:
            try:
                claims = self.verifier.verify(token)
            except TokenVerificationError as exc:
                self._verified.pop(token, None)
                raise Unauthorized(f"token refused: {exc.reason}", reason=exc.reason) from exc
            self._remember(token, claims, now)
        role = claims.get(ROLE_CLAIM)
        if not isinstance(role, str):
            raise Unauthorized("token carries no role", reason="missing_claim")
        return Principal(role=role, name=str(claims["sub"]), claims=claims)

    def authenticate_peer(self, tls: Mapping[str, Any]) -> Principal:
        """TLS client certificate -> principal. Refused until the identity layer installs
        its X.509-SVID check (scheduler.mtls): fail closed."""
        raise Unauthorized(
            "client certificates are not accepted here", reason="client_certificate_unsupported"
        )

    def _remember(self, token: str, claims: dict[str, Any], now: float) -> None:
        """Cache a verified token for a short while (never past its exp), so agents and
        clients that reuse a token skip the signature check on every request."""
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))
        until = min(float(claims["exp"]), now + VERIFIED_CACHE_TTL_S)
        self._verified[token] = (until, claims)

    def authorize(self, principal: Principal, action: str, resource: Resource) -> AuthzDecision:
        return authorize(self.authorizer, principal, action, resource)

    def close(self) -> None:
        for hook in self.close_hooks:
            hook()
        self.committer.close()
        self.telemetry.shutdown()
        self.engine.dispose()
