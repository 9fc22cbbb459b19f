"""A small synchronous client for the scheduler API (used by the CLI, demo and tests)."""

from __future__ import annotations

import ssl
from typing import Any

import httpx


class ApiError(Exception):
    """The API answered with a problem+json (or could not be reached)."""

    def __init__(self, status: int, title: str, detail: str, body: Any = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body


class Client:
    def __init__(
        self,
        server: str,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        verify: str | bool = True,
    ) -> None:
        """``verify``: True (system CAs) or the path of a PEM bundle (e.g. the deployment's
        ``<data_dir>/tls/ca.pem``) for https servers."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        ctx: ssl.SSLContext | bool = True
        if isinstance(verify, str):
            ctx = ssl.create_default_context(cafile=verify)
        elif verify is False:
            ctx = False
        self._http = httpx.Client(base_url=server, headers=headers, timeout=timeout, verify=ctx)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"title": resp.reason_phrase, "detail": resp.text[:300]}
            raise ApiError(
                resp.status_code, str(body.get("title", "")), str(body.get("detail", "")), body
            )
        return resp.json() if resp.content else None

    def submit(self, command: list[str], **spec: Any) -> dict[str, Any]:
        body = {"command": command, **{k: v for k, v in spec.items() if v is not None}}
        return dict(self.request("POST", "/v1/tasks", json=body))

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/tasks/{task_id}"))

    def tasks(self, **params: Any) -> list[dict[str, Any]]:
        query = {k: v for k, v in params.items() if v is not None}
        return list(self.request("GET", "/v1/tasks", params=query))

    def cancel(self, task_id: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/tasks/{task_id}/cancel"))

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/nodes"))

    def node(self, node_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/nodes/{node_id}"))

    def add_tenant(self, name: str) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/tenants", json={"name": name}))
