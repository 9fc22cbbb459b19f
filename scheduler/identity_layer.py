"""The identity layer wired into the scheduler: CA, operators, join tokens, enrollment,
node revocation, and the revocation check on the authentication path.

The CA (root + one intermediate per operator, :mod:`identity.pki`) lives in
``<data_dir>/ca`` (directory 0700, keys 0600), created at first start for
``settings.trust_domain``. The database keeps operators, join-token hashes, issued
certificates and revocations (:mod:`scheduler.tables.identity`).

Invariants:
- a join token is single use across replicas: enrollment marks it used with
  ``UPDATE ... SET used_at = ? WHERE token_id = ? AND used_at IS NULL`` in the same
  transaction that records the issued certificate; no row updated means ``reused``;
- an SVID carries only the assigned SPIFFE ID ``spiffe://<td>/operator/<op>/node/<id>``,
  where ``op`` comes from the join token, never from the request;
- a revoked node is refused: its bearer tokens (roles ``node`` and ``node-register``)
  get 401 ``reason: revoked`` at once on the replica that revoked it and within the
  revocation cache's refresh interval (1 s) on every other replica; it cannot enroll
  again; its certificates are in the :class:`RevocationSet` given to
  ``verify_client_svid``. Revocations survive a restart (they are rows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from identity.pki import (
    CertificateAuthority,
    CheckedCsr,
    CsrError,
    IssuedSvid,
    JoinTokenError,
    JoinTokenRecord,
    OperatorCa,
    PkiError,
    SpiffeIdError,
    TrustBundle,
    VerifiedSvid,
    check_csr,
    create_join_token,
    join_token_id,
    load_ca,
    save_ca,
    validate_name,
    verify_client_svid,
    verify_join_token,
)
from scheduler.authz import Principal
from scheduler.db import after_commit
from scheduler.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from scheduler.identity_operator_nodes import operator_node_ids
from scheduler.identity_revocations import RevocationCache, RevocationSnapshot
from scheduler.models import Node
from scheduler.provenance_actions import record_response_action
from scheduler.tables.identity import (
    IdentityCertificate,
    IdentityJoinToken,
    IdentityOperator,
    IdentityRevocation,
)

if TYPE_CHECKING:
    from scheduler.service import Service

CA_DIR = "ca"
NODE_ROLES = frozenset({"node", "node-register"})
_LAYER_ATTR = "_cntrust_identity_layer"
_install_lock = threading.Lock()


def install(service: Service) -> IdentityLayer:
    """Create the service's identity layer once and put the revocation check on its
    authentication path. Idempotent. Raises CaStoreError if the CA cannot be loaded."""
    with _install_lock:
        layer = getattr(service, _LAYER_ATTR, None)
        if layer is None:
            layer = IdentityLayer(service)
            setattr(service, _LAYER_ATTR, layer)
            _guard_authenticate(service, layer)
        return layer


def _guard_authenticate(service: Service, layer: IdentityLayer) -> None:
    original = service.authenticate

    def authenticate(authorization: str | None) -> Principal:
        principal = original(authorization)
        layer.check_not_revoked(principal)
        return principal

    service.authenticate = authenticate  # type: ignore[method-assign]


@dataclass(frozen=True)
class Enrollment:
    """An issued SVID and the write that makes it count (marks the token used)."""

    svid: IssuedSvid
    operator: str
    node_id: str
    record: Callable[[Session], None]


class IdentityLayer:
    """Operations of the identity layer; writes are returned as committer operations so
    the API awaits them (``service.write``) and the CLI runs them (``write_sync``)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.ca_dir = service.settings.data_dir / CA_DIR
        self._ca_lock = threading.Lock()
        self._ca = self._load_or_create_ca()
        self.revocations = RevocationCache(self._load_revocations, service.clock)

    # -- CA -----------------------------------------------------------------------------
    def _load_or_create_ca(self) -> CertificateAuthority:
        clock = self.service.clock
        if (self.ca_dir / "ca.json").exists():
            ca = load_ca(self.ca_dir, clock=clock)
            if ca.trust_domain != self.service.settings.trust_domain:
                raise PkiError(
                    f"{self.ca_dir} is for trust domain {ca.trust_domain!r}, "
                    f"not {self.service.settings.trust_domain!r}",
                    reason="trust_domain",
                )
            return ca
        ca = CertificateAuthority.create(self.service.settings.trust_domain, clock=clock)
        save_ca(ca, self.ca_dir)
        return ca

    @property
    def ca(self) -> CertificateAuthority:
        return self._ca

    def _operator_ca(self, name: str) -> OperatorCa:
        """The operator's CA, reloading from disk once if another process added it."""
        try:
            return self._ca.operator(name)
        except PkiError:
            with self._ca_lock:
                self._ca = load_ca(self.ca_dir, clock=self.service.clock)
            return self._ca.operator(name)

    def trust_bundle(self) -> TrustBundle:
        return self._ca.trust_bundle()

    def reload_ca(self) -> None:
        """Reload the CA from its directory (another process may have rotated or revoked
        an operator's CA). Raises CaStoreError."""
        with self._ca_lock:
            self._ca = load_ca(self.ca_dir, clock=self.service.clock)

    # -- operators ----------------------------------------------------------------------
    def add_operator(self, name: str, by: str) -> Callable[[Session], IdentityOperator]:
        """Create the operator's intermediate CA (kept on disk); return the write that
        records the operator. Raises InvalidRequest (bad name), Conflict (exists)."""
        try:
            validate_name(name, what="operator")
        except SpiffeIdError as exc:
            raise InvalidRequest(str(exc), reason=exc.reason) from exc
        with self.service.read() as session:
            if session.get(IdentityOperator, name) is not None:
                raise Conflict(f"operator {name} already exists")
        with self._ca_lock:
            if (self.ca_dir / "ca.json").exists():  # another process may have added some
                self._ca = load_ca(self.ca_dir, clock=self.service.clock)
            if name not in {op.operator for op in self._ca.operators()}:
                self._ca.add_operator(name)
                save_ca(self._ca, self.ca_dir)
        now = self.service.clock()

        def op(session: Session) -> IdentityOperator:
            if session.get(IdentityOperator, name) is not None:
                raise Conflict(f"operator {name} already exists")
            row = IdentityOperator(name=name, created_at=now, created_by=by[:140])
            session.add(row)
            return row

        return op

    # -- join tokens --------------------------------------------------------------------
    def create_join_token(
        self, operator: str, ttl: timedelta
    ) -> tuple[str, JoinTokenRecord, Callable[[Session], None]]:
        """A one-time join token for ``operator`` (return it to the caller once), its
        record, and the write storing the record (hash only). Raises NotFound (unknown
        operator), InvalidRequest (bad lifetime)."""
        with self.service.read() as session:
            if session.get(IdentityOperator, operator) is None:
                raise NotFound(f"operator {operator} not found")
        try:
            token, record = create_join_token(operator, now=self.service.clock(), ttl=ttl)
        except (PkiError, SpiffeIdError) as exc:
            raise InvalidRequest(str(exc), reason=exc.reason) from exc

        def op(session: Session) -> None:
            session.add(
                IdentityJoinToken(
                    token_id=record.token_id,
                    token_hash=record.token_hash,
                    operator=record.operator,
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                )
            )

        return token, record, op

    # -- enrollment ---------------------------------------------------------------------
    def begin_enrollment(self, join_token: str, csr_pem: str, node_id: str) -> Enrollment:
        """Verify the join token and the CSR and issue the SVID; the returned
        ``record`` write marks the token used (single use) and records the certificate.

        Raises Unauthorized (join token ``unknown``/``reused``/``expired``), InvalidRequest
        (node id, or the CSR check that failed: ``malformed``, ``signature``, ``key_type``,
        ``key_size``, ``ca_requested``, ``too_large``), Forbidden (node revoked),
        Conflict (operator CA unusable).
        """
        now = self.service.clock()
        # 1. the join token: known, secret matches, unused, unexpired
        row = self.check_join_token(join_token, now)
        token_id = row.token_id
        # 2. the node id (it becomes a SPIFFE path segment)
        try:
            validate_name(node_id, what="node id")
        except SpiffeIdError as exc:
            raise InvalidRequest(str(exc), reason=exc.reason, check="node_id") from exc
        # 3. the CSR: size, parse, self-signature, key type and size, no CA bit
        try:
            checked: CheckedCsr = check_csr(csr_pem.encode())
        except CsrError as exc:
            raise InvalidRequest(
                f"CSR refused: {exc}", reason=exc.reason, check=exc.reason
            ) from exc
        # 4. a revoked node never enrolls again
        if self.revocations.node_revoked(node_id):
            raise Forbidden(f"node {node_id} is revoked", reason="revoked")
        # 5. issue: the SPIFFE ID is assigned from the token's operator and the node id
        operator = row.operator
        if operator in self.revocations.snapshot().revocations.operators:
            raise Forbidden(f"operator {operator} CA is revoked", reason="operator_revoked")
        try:
            self._operator_ca(operator)
            svid = self._ca.issue_svid(checked, operator, node_id)
        except PkiError as exc:
            raise Conflict(
                f"cannot issue for operator {operator}: {exc}", reason=exc.reason
            ) from exc
        record = _EnrollmentWrite(token_id, node_id, operator, svid, now)
        return Enrollment(svid, operator, node_id, record)

    def check_join_token(self, join_token: str, now: float) -> IdentityJoinToken:
        """The join token's row if it is known, its secret matches, and it is unused and
        unexpired (it is not consumed here). Raises Unauthorized(``unknown``/``reused``/
        ``expired``)."""
        try:
            token_id = join_token_id(join_token)
            with self.service.read() as session:
                row = session.get(IdentityJoinToken, token_id)
            verify_join_token(join_token, _record_of(row), now=now)
        except JoinTokenError as exc:
            raise Unauthorized(f"join token refused: {exc.reason}", reason=exc.reason) from exc
        if row is None:  # unreachable: verify_join_token refuses a missing record
            raise Unauthorized("join token refused: unknown", reason="unknown")
        return row

    # -- revocation ---------------------------------------------------------------------
    def revoke_node(
        self, node_id: str, reason: str, by: str
    ) -> Callable[[Session], dict[str, Any]]:
        """The write that revokes ``node_id`` (idempotent: a second call returns the first
        revocation). Raises NotFound for a node never enrolled nor registered."""
        now = self.service.clock()
        cache = self.revocations

        def op(session: Session) -> dict[str, Any]:
            known = session.exec(
                select(IdentityCertificate.serial).where(IdentityCertificate.node_id == node_id)
            ).first() or session.get(Node, node_id)
            if known is None:
                raise NotFound(f"node {node_id} not found")
            existing = session.exec(
                select(IdentityRevocation)
                .where(IdentityRevocation.node_id == node_id)
                .order_by(col(IdentityRevocation.id))
            ).first()
            if existing is not None:
                return _revocation_out(existing, already=True)
            row = IdentityRevocation(
                node_id=node_id, reason=reason, revoked_by=by[:140], revoked_at=now
            )
            session.add(row)
            certs = session.exec(
                select(IdentityCertificate).where(IdentityCertificate.node_id == node_id)
            ).all()
            revoked = RevocationSnapshot.of(
                node_ids=[node_id],
                serials=[int(c.serial) for c in certs],
                spiffe_ids=[c.spiffe_id for c in certs],
            )
            after_commit(session, lambda: cache.add(revoked))
            record_response_action(
                self.service,
                session,
                "revocation",
                f"node/{node_id}",
                reason,
                by,
                source="identity",
            )
            session.flush()
            return _revocation_out(row, already=False)

        return op

    def check_not_revoked(self, principal: Principal) -> None:
        """Raises Unauthorized(reason="revoked") for a revoked node's token."""
        if principal.role in NODE_ROLES and self.revocations.node_revoked(principal.name):
            raise Unauthorized(f"node {principal.name} is revoked", reason="revoked")
        if principal.role in NODE_ROLES and self.revocations.operator_revoked(principal.name):
            raise Unauthorized(
                f"node {principal.name}'s operator is revoked", reason="operator_revoked"
            )

    def verify_node_svid(self, chain: bytes | list[bytes]) -> VerifiedSvid:
        """Verify a node's client X.509-SVID (mTLS) against this CA and the current
        revocations. Raises SvidVerificationError."""
        snapshot = self.revocations.snapshot()
        revocations = snapshot.revocations.union(self._ca.revocation_set())
        return verify_client_svid(chain, self.trust_bundle(), self.service.clock(), revocations)

    def _load_revocations(self) -> RevocationSnapshot:
        with self.service.read() as session:
            rows = session.exec(select(IdentityRevocation)).all()
            revoked_nodes = select(IdentityRevocation.node_id).where(
                col(IdentityRevocation.node_id).is_not(None)
            )
            certs = session.exec(
                select(IdentityCertificate.serial, IdentityCertificate.spiffe_id).where(
                    col(IdentityCertificate.node_id).in_(revoked_nodes)
                )
            ).all()
            operators = {r.operator for r in rows if r.operator is not None}
            operator_nodes = operator_node_ids(session, operators)
        return RevocationSnapshot.of(
            operator_node_ids=operator_nodes,
            node_ids=[r.node_id for r in rows if r.node_id is not None],
            serials=[int(s) for s, _ in certs] + [int(r.serial) for r in rows if r.serial],
            spiffe_ids=[spiffe for _, spiffe in certs],
            operators=[r.operator for r in rows if r.operator is not None],
        )


@dataclass(frozen=True)
class _EnrollmentWrite:
    token_id: str
    node_id: str
    operator: str
    svid: IssuedSvid
    now: float

    def __call__(self, session: Session) -> None:
        # single use: only the first transaction to get here flips used_at
        marked = session.connection().execute(
            sa.update(IdentityJoinToken)
            .where(col(IdentityJoinToken.token_id) == self.token_id)
            .where(col(IdentityJoinToken.used_at).is_(None))
            .values(used_at=self.now, used_by=self.node_id)
        )
        if marked.rowcount != 1:
            raise Unauthorized("join token refused: reused", reason="reused")
        if session.exec(
            select(IdentityRevocation.id).where(IdentityRevocation.node_id == self.node_id)
        ).first():
            raise Forbidden(f"node {self.node_id} is revoked", reason="revoked")
        other = session.exec(
            select(IdentityCertificate.operator)
            .where(IdentityCertificate.node_id == self.node_id)
            .where(IdentityCertificate.operator != self.operator)
        ).first()
        if other is not None:
            raise Conflict(
                f"node {self.node_id} is enrolled by another operator", reason="node_operator"
            )
        session.add(
            IdentityCertificate(
                serial=str(self.svid.serial),
                node_id=self.node_id,
                operator=self.operator,
                spiffe_id=self.svid.spiffe_id.uri,
                issued_at=self.now,
                not_after=self.svid.not_after.timestamp(),
            )
        )


def _record_of(row: IdentityJoinToken | None) -> JoinTokenRecord | None:
    if row is None:
        return None
    return JoinTokenRecord(
        token_id=row.token_id,
        token_hash=row.token_hash,
        operator=row.operator,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        used_by=row.used_by,
    )


def _revocation_out(row: IdentityRevocation, *, already: bool) -> dict[str, Any]:
    return {
        "node_id": row.node_id,
        "reason": row.reason,
        "revoked_by": row.revoked_by,
        "revoked_at": row.revoked_at,
        "already_revoked": already,
    }
