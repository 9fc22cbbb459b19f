"""Tables of the layers wired into the scheduler (alerts, provenance, identity, ...).

Every module in this package is imported here, so its SQLModel tables are
registered before ``create_all`` runs; a layer adds a module, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
