"""Sybil-burst signal: many new nodes sharing an operator, a network or a hardware fingerprint
registering within a short window.

:class:`BurstTracker` keeps, per key (``operator:acme``, ``network:10.1.2.0/24``,
``hardware:ab12...``), the registrations inside the window. When a key reaches ``burst_min``
registrations, every node of that window is flagged, and so is every later registration
under that key while the window stays full. O(1) amortized per
registration (each registration enters and leaves a window once; flagging touches only the
burst's members).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from trust.errors import TrustError


@dataclass(frozen=True, slots=True)
class BurstFlag:
    """Node ``index`` joined in a burst of registrations sharing ``key``."""

    index: int
    key: str


class BurstTracker:
    """Sliding-window registration counter per shared key."""

    def __init__(self, *, window_s: float, burst_min: int) -> None:
        if window_s <= 0 or burst_min < 2:
            raise TrustError("window_s must be > 0 and burst_min >= 2")
        self._window_s = window_s
        self._burst_min = burst_min
        self._windows: dict[str, deque[tuple[float, int]]] = {}
        self._flagged: dict[str, set[int]] = {}

    def burst_size(self, key: str) -> int:
        """How many nodes were flagged under ``key`` so far (0 if none)."""
        return len(self._flagged.get(key, ()))

    def register(self, index: int, keys: tuple[str, ...], at: float) -> list[BurstFlag]:
        """Record a registration; return a flag for every node newly found in a burst."""
        flags: list[BurstFlag] = []
        for key in keys:
            window = self._windows.setdefault(key, deque())
            while window and window[0][0] < at - self._window_s:
                window.popleft()
            window.append((at, index))
            if len(window) < self._burst_min:
                continue
            flagged = self._flagged.setdefault(key, set())
            # Unflagged registrations are always the newest ones: walk back until a flagged one.
            for _, i in reversed(window):
                if i in flagged:
                    break
                flagged.add(i)
                flags.append(BurstFlag(i, key))
        return flags
