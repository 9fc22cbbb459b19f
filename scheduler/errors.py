"""Scheduler errors; each maps to one RFC 9457 problem type and HTTP status.

Tree::

    SchedulerError
    ├── NotFound            404  an id that does not exist (or is not visible to the caller)
    ├── Conflict            409  the state does not allow the action (report on a task not held)
    ├── Unauthorized        401  missing or invalid credentials
    ├── Forbidden           403  authenticated but not allowed (carries the decision's reasons)
    └── InvalidRequest      422  the request is well-formed JSON but not acceptable
"""

from __future__ import annotations

from typing import Any


class SchedulerError(Exception):
    status = 500
    type_slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(SchedulerError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(SchedulerError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class Unauthorized(SchedulerError):
    status = 401
    type_slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(SchedulerError):
    status = 403
    type_slug = "forbidden"
    title = "Forbidden"


class InvalidRequest(SchedulerError):
    status = 422
    type_slug = "invalid-request"
    title = "Invalid request"
