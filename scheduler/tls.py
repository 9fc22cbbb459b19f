"""TLS for the scheduler: the server certificate, the mTLS listener, the peer certificate
in the ASGI scope.

uvicorn does not put the client certificate in the ASGI scope, so
:class:`PeerCertHttpToolsProtocol` (and the h11 variant) reads it from the connection's
``ssl_object`` once, when the connection is made (the handshake is over by then), and adds
the ASGI TLS extension to every request of that connection::

    scope["extensions"]["tls"] = {"client_cert_chain": [<leaf PEM>], "tls_version": 0x0304,
                                  "server_cert": None, "client_cert_name": None,
                                  "client_cert_error": None, "cipher_suite": None}

Python's ``ssl`` gives the peer's leaf only (the chain getters arrive in 3.13), so the
verifier chains the leaf through the operator CAs of the server's trust bundle.

The listener requests a client certificate but does not require one (``CERT_OPTIONAL``):
tenants and admins authenticate with bearer tokens; nodes present their X.509-SVID.
OpenSSL refuses, during the handshake, a certificate that does not chain to the trust
domain's root or is outside its validity (TLS alerts ``unknown_ca`` / ``certificate_expired``);
everything else (clientAuth EKU, CA as leaf, SPIFFE ID, operator, revocation) is checked
per request by :mod:`scheduler.mtls`.

:class:`MtlsServer` is a uvicorn server with a second, TLS listener on the same event loop
and app: ``cntrust up`` keeps its plain HTTP port for the CLI and adds the mTLS port for
node agents.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from identity.pki import (
    CertificateAuthority,
    issue_server_certificate,
    renew_at,
)
from identity.pki.keys import write_file

log = logging.getLogger(__name__)

TLS_DIR = "tls"
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def peer_tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection, or None on a plain connection."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


class _PeerCertMixin:
    """Wrap the connection's ASGI app so every request carries the TLS extension."""

    app: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        tls = peer_tls_extension(transport)
        if tls is None:
            return
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            extensions = scope.setdefault("extensions", {})
            extensions["tls"] = tls
            await inner(scope, receive, send)

        self.app = app


class PeerCertHttpToolsProtocol(_PeerCertMixin, HttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension."""


class PeerCertH11Protocol(_PeerCertMixin, H11Protocol):
    """uvicorn's h11 protocol plus the ASGI TLS extension."""


def server_ssl_context(cert_path: Path, key_path: Path, ca_path: Path) -> ssl.SSLContext:
    """TLS >= 1.2 server context; asks for (does not require) a client certificate that
    chains to the roots in ``ca_path``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_path), str(key_path))
    ctx.load_verify_locations(cafile=str(ca_path))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


@dataclass
class ServerTls:
    """Where the scheduler's TLS files live (``<data_dir>/tls``)."""

    directory: Path

    @property
    def cert_path(self) -> Path:
        return self.directory / "server.crt"

    @property
    def key_path(self) -> Path:
        return self.directory / "server.key"

    @property
    def ca_path(self) -> Path:
        """The trust bundle (roots) for clients to verify the server, and for the server
        to verify client certificates."""
        return self.directory / "ca.pem"

    def issue(self, ca: CertificateAuthority, hosts: Sequence[str]) -> x509.Certificate:
        """(Re)issue the server certificate from ``ca`` and write the files (key 0600)."""
        issued = issue_server_certificate(ca, hosts)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(self.key_path, issued.private_key_pem, mode=0o600)
        write_file(self.cert_path, issued.certificate_pem, mode=0o644)
        write_file(self.ca_path, ca.trust_bundle().to_pem(), mode=0o644)
        return issued.certificate

    def context(self) -> ssl.SSLContext:
        return server_ssl_context(self.cert_path, self.key_path, self.ca_path)


def server_hosts(host: str) -> list[str]:
    """Names the server certificate covers: the bind address (unless a wildcard),
    localhost and the loopback addresses."""
    hosts = ["localhost", "127.0.0.1", "::1"]
    if host not in ("0.0.0.0", "::", ""):  # noqa: S104 (comparing, not binding)
        hosts.insert(0, host)
    return hosts


class MtlsServer(uvicorn.Server):
    """uvicorn server with an extra TLS listener (same app, same event loop).

    The server certificate is re-issued at half-life by a timer and loaded into the live
    context, so new handshakes get the new certificate without a restart.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        tls_socket: socket.socket,
        tls: ServerTls,
        ca: CertificateAuthority,
        hosts: Sequence[str],
    ) -> None:
        super().__init__(config)
        self.tls_socket = tls_socket
        self.tls = tls
        self.ca = ca
        self.hosts = list(hosts)
        self.ssl_context: ssl.SSLContext | None = None
        self._timer: threading.Timer | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit:
            return
        self.started = False  # started means both listeners are up
        cert = self.tls.issue(self.ca, self.hosts)
        self.ssl_context = self.tls.context()
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            create_protocol, sock=self.tls_socket, ssl=self.ssl_context, backlog=config.backlog
        )
        self.servers.append(server)
        self._schedule_renewal(cert)
        self.started = True

    def _schedule_renewal(self, cert: x509.Certificate) -> None:
        delay = max(1.0, renew_at(cert).timestamp() - self.ca.clock())
        self._timer = threading.Timer(delay, self._renew)
        self._timer.daemon = True
        self._timer.start()

    def _renew(self) -> None:
        if self.should_exit or self.ssl_context is None:
            return
        try:
            cert = self.tls.issue(self.ca, self.hosts)
            self.ssl_context.load_cert_chain(str(self.tls.cert_path), str(self.tls.key_path))
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("server certificate renewal failed: %s; retrying in 60 s", exc)
            self._timer = threading.Timer(60.0, self._renew)
            self._timer.daemon = True
            self._timer.start()
            return
        self._schedule_renewal(cert)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await super().shutdown(sockets=sockets)


def mtls_config(app: Any, host: str, port: int, **kwargs: Any) -> uvicorn.Config:
    """A uvicorn config whose connections carry the ASGI TLS extension."""
    try:
        import httptools  # noqa: F401

        protocol: type[asyncio.Protocol] = PeerCertHttpToolsProtocol
    except ImportError:  # pragma: no cover (httptools comes with uvicorn[standard])
        protocol = PeerCertH11Protocol
    return uvicorn.Config(app, host=host, port=port, http=protocol, **kwargs)


def bind_socket(host: str, port: int = 0) -> socket.socket:
    """A listening-ready TCP socket (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
