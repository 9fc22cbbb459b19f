"""Column store of per-node engine state: plain Python lists indexed by registration order.

Lists of floats keep the single-update path fast (no numpy scalar boxing); bulk reads convert
with ``numpy.asarray``. Masses (``r s pr ps tr ts``) are stored scaled by the engine's decay
growth factor (see :mod:`trust.engine`); ``recent`` keeps each item's mass at observation.
"""

from __future__ import annotations

import math
from collections import deque

from trust.evidence import EvidenceKind


class NodeTable:
    """Per-node columns; operators are interned to small integers."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.op_index: dict[str, int] = {}
        self.op_names: list[str] = []
        self.op_nodes: list[int] = []
        self.op_quarantined: list[int] = []
        self.op_of: list[int] = []
        self.registered_at: list[float] = []
        self.pretrusted: list[bool] = []
        self.r: list[float] = []
        self.s: list[float] = []
        self.pr: list[float] = []
        self.ps: list[float] = []
        self.tr: list[float] = []
        self.ts: list[float] = []
        self.cred: list[float] = []
        self.prior_r: list[float] = []  # pre-trusted prior mass: constant, never decays
        self.att_status: list[int] = []
        self.att_at: list[float] = []
        self.revoked: list[bool] = []
        self.quarantined: list[bool] = []
        self.q_recommended: list[bool] = []
        self.burst_keys: list[list[str]] = []
        self.recent: list[deque[tuple[str, EvidenceKind, float, float]]] = []

    def add(self, node_id: str, operator: str, at: float, pretrusted: bool, recent: int) -> int:
        i = len(self.ids)
        op = self.op_index.get(operator)
        if op is None:
            op = len(self.op_names)
            self.op_index[operator] = op
            self.op_names.append(operator)
            self.op_nodes.append(0)
            self.op_quarantined.append(0)
        self.op_nodes[op] += 1
        self.ids.append(node_id)
        self.index[node_id] = i
        self.op_of.append(op)
        self.registered_at.append(at)
        self.pretrusted.append(pretrusted)
        for column in (self.r, self.s, self.pr, self.ps, self.tr, self.ts, self.cred, self.prior_r):
            column.append(0.0)
        self.att_status.append(0)
        self.att_at.append(-math.inf)
        self.revoked.append(False)
        self.quarantined.append(False)
        self.q_recommended.append(False)
        self.burst_keys.append([])
        self.recent.append(deque(maxlen=recent))
        return i

    def scale_masses(self, factor: float) -> None:
        for name in ("r", "s", "pr", "ps", "tr", "ts"):
            setattr(self, name, [v * factor for v in getattr(self, name)])
