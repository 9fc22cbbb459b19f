"""API routers of the layers wired into the scheduler.

Every module here that defines ``router`` (a FastAPI ``APIRouter``) is included
by :func:`scheduler.app.create_app`, in module-name order. Routes find the
service at ``request.app.state.service`` and use the same ``Caller``
dependency, the same ``authorize`` seam and the same problem+json errors.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter


def discover() -> list[APIRouter]:
    routers = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{__name__}.{module.name}")
        router = getattr(mod, "router", None)
        if isinstance(router, APIRouter):
            routers.append(router)
    return routers
