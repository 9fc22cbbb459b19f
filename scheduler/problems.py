"""RFC 9457 problem+json for every error, and the request body size limit."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.authz import AuthorizationDenied
from scheduler.errors import SchedulerError

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://cntrust.dev/problems/"
MEDIA_TYPE = "application/problem+json"


def problem(
    status: int, slug: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _safe_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without echoing the submitted values (they may hold secrets)."""
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(SchedulerError)
    async def _scheduler_error(request: Request, exc: SchedulerError) -> JSONResponse:
        return problem(
            exc.status, exc.type_slug, exc.title, exc.detail, request.url.path, **exc.extra
        )

    @app.exception_handler(AuthorizationDenied)
    async def _denied(request: Request, exc: AuthorizationDenied) -> JSONResponse:
        return problem(
            403,
            "forbidden",
            "Forbidden",
            str(exc),
            request.url.path,
            reasons=list(exc.decision.reasons),
            policy_ids=list(exc.decision.policy_ids),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _safe_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(
                400,
                "malformed-json",
                "Malformed JSON",
                "the body is not valid JSON",
                request.url.path,
            )
        return problem(
            422,
            "invalid-request",
            "Invalid request",
            "the request does not match the schema",
            request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(
            exc.status_code, "http-error"
        )
        return problem(exc.status_code, slug, str(exc.detail), str(exc.detail), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s: %s", request.url.path, type(exc).__name__)
        return problem(500, "internal", "Internal error", "an internal error occurred")


class BodyLimit:
    """ASGI middleware: refuse bodies larger than ``limit`` bytes with 413 problem+json.

    ``overrides`` gives exact paths their own (still bounded) limit, e.g. sensor batches
    on ``/v1/alerts``."""

    def __init__(self, app: ASGIApp, limit: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.overrides = dict(overrides or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.limit)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit:
                    await self._refuse(send, limit)
                    return
        seen = 0
        refused = False

        async def limited() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            if refused:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps(
            {
                "type": PROBLEM_BASE + "too-large",
                "title": "Request body too large",
                "status": 413,
                "detail": f"the body exceeds {limit} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    """Raised inside the app's receive() once the body passes the limit."""
