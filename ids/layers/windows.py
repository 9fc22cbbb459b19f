"""Bounded, windowed per-key state shared by the detectors and the correlator.

A `WindowedTable` maps a key to a state object that lives for one window: the window
starts at the key's first event (as Suricata's thresholds do, not sliding) and a new one
starts at the first event after `window_s` has passed. The table holds at most `max_keys`
keys; when full, the least recently touched key is evicted (and counted). `on_drop`, when
given, sees every state that leaves the table (window over, or evicted).

Invariants:
- Memory is bounded by `max_keys` states; each state bounds its own sets (`CappedSet`).
- Time only comes from event timestamps, so a replay gives identical results.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from ids.layers.errors import LayersConfigError

K = TypeVar("K", bound=Hashable)
S = TypeVar("S")
T = TypeVar("T", bound=Hashable)


def require_positive(name: str, value: float) -> None:
    """Raise `LayersConfigError` unless `value` > 0."""
    if not value > 0:
        raise LayersConfigError(name, value, "must be > 0")


class CappedSet(Generic[T]):
    """A set that stops growing at `cap` members but keeps counting distinct additions it
    could not store as `overflow` (so `size` is a lower bound once full)."""

    __slots__ = ("_items", "cap", "overflow")

    def __init__(self, cap: int) -> None:
        self._items: set[T] = set()
        self.cap = cap
        self.overflow = 0

    def add(self, item: T) -> bool:
        """Add `item`; True when it was new (stored or counted as overflow)."""
        if item in self._items:
            return False
        if len(self._items) < self.cap:
            self._items.add(item)
        else:
            self.overflow += 1
        return True

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        """Stored members plus overflow additions (an upper estimate once full)."""
        return len(self._items) + self.overflow

    def sorted_sample(self, limit: int) -> list[T]:
        """Up to `limit` members in sorted order (deterministic)."""
        return sorted(self._items, key=str)[:limit]


class WindowedTable(Generic[K, S]):
    """Per-key window state with LRU eviction at `max_keys`."""

    def __init__(
        self,
        window_s: float,
        max_keys: int,
        factory: Callable[[float], S],
        on_drop: Callable[[K, S], None] | None = None,
    ) -> None:
        require_positive("window_s", window_s)
        require_positive("max_keys", max_keys)
        self.window_s = window_s
        self.max_keys = int(max_keys)
        self._factory = factory
        self._on_drop = on_drop
        self._data: OrderedDict[K, tuple[float, S]] = OrderedDict()
        self.evicted = 0

    def get(self, key: K, ts: float) -> tuple[S, bool]:
        """The state for `key` at time `ts`, and whether a new window started."""
        entry = self._data.get(key)
        if entry is not None and ts - entry[0] <= self.window_s:
            self._data.move_to_end(key)
            return entry[1], False
        if entry is not None and self._on_drop is not None:
            self._on_drop(key, entry[1])
        state = self._factory(ts)
        self._data[key] = (ts, state)
        self._data.move_to_end(key)
        while len(self._data) > self.max_keys:
            old_key, (_start, old_state) = self._data.popitem(last=False)
            self.evicted += 1
            if self._on_drop is not None:
                self._on_drop(old_key, old_state)
        return state, True

    def peek(self, key: K) -> S | None:
        """The current state for `key` without touching it, or None."""
        entry = self._data.get(key)
        return entry[1] if entry is not None else None

    def window_start(self, key: K) -> float | None:
        """When the key's current window started, or None."""
        entry = self._data.get(key)
        return entry[0] if entry is not None else None

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> Iterator[tuple[K, S]]:
        """Keys and states, least recently touched first."""
        for key, (_start, state) in self._data.items():
            yield key, state
