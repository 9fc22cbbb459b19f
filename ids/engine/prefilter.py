"""Multi-pattern prefilter: one pass over a payload finds the rules worth evaluating.

Each payload rule contributes one pattern (its `fast_pattern` content, else its longest
positive content); the prefilter returns the set of rule indices whose pattern occurs in the
payload (case-insensitively for nocase patterns). Hyperscan is used when importable,
pyahocorasick otherwise. A candidate is only a candidate: full evaluation follows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ids.engine.errors import EngineConfigError

PatternSpec = tuple[bytes, bool]  # (pattern, nocase)


def _hs_escape(pattern: bytes) -> bytes:
    return b"".join(b"\\x%02x" % b for b in pattern)


class Prefilter:
    """Compiled multi-pattern matcher over (pattern, nocase) -> rule indices.

    Raises:
        EngineConfigError: backend "hyperscan" was requested but is not importable.
    """

    def __init__(self, patterns: Sequence[tuple[PatternSpec, int]], backend: str = "auto") -> None:
        groups: dict[PatternSpec, list[int]] = {}
        for spec, idx in patterns:
            key = (spec[0].lower(), True) if spec[1] else spec
            groups.setdefault(key, []).append(idx)
        self.specs = list(groups)
        self.rule_sets = [tuple(groups[s]) for s in self.specs]
        self.backend = "none"
        self._scan: Callable[[bytes], set[int]] = _scan_none
        if not self.specs:
            return
        if backend in ("auto", "hyperscan"):
            try:
                self._scan = self._build_hyperscan()
                self.backend = "hyperscan"
                return
            except ImportError as exc:
                if backend == "hyperscan":
                    raise EngineConfigError(
                        "prefilter_backend", "hyperscan is not installed"
                    ) from exc
        self._scan = self._build_aho()
        self.backend = "pyahocorasick"

    def _build_hyperscan(self) -> Callable[[bytes], set[int]]:
        import hyperscan

        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        flags = [
            hyperscan.HS_FLAG_SINGLEMATCH | (hyperscan.HS_FLAG_CASELESS if nocase else 0)
            for _p, nocase in self.specs
        ]
        db.compile(
            expressions=[_hs_escape(p) for p, _n in self.specs],
            ids=list(range(len(self.specs))),
            elements=len(self.specs),
            flags=flags,
        )

        def on_match(pid: int, _s: int, _e: int, _f: int, ctx: Any) -> None:
            ctx.add(pid)

        scan = db.scan

        def run(payload: bytes) -> set[int]:
            found: set[int] = set()
            scan(payload, match_event_handler=on_match, context=found)
            return found

        return run

    def _build_aho(self) -> Callable[[bytes], set[int]]:
        import ahocorasick

        exact = ahocorasick.Automaton()
        folded = ahocorasick.Automaton()
        n_exact = n_folded = 0
        for pid, (pat, nocase) in enumerate(self.specs):
            key = pat.decode("latin-1")
            auto = folded if nocase else exact
            prev = auto.get(key, ())
            auto.add_word(key, (*prev, pid))
            if nocase:
                n_folded += 1
            else:
                n_exact += 1
        if n_exact:
            exact.make_automaton()
        if n_folded:
            folded.make_automaton()

        def run(payload: bytes) -> set[int]:
            found: set[int] = set()
            if n_exact:
                for _end, pids in exact.iter(payload.decode("latin-1")):
                    found.update(pids)
            if n_folded:
                for _end, pids in folded.iter(payload.lower().decode("latin-1")):
                    found.update(pids)
            return found

        return run

    def candidates(self, payload: bytes) -> list[int]:
        """Rule indices whose prefilter pattern occurs in `payload` (unsorted)."""
        pids = self._scan(payload)
        if not pids:
            return []
        sets = self.rule_sets
        if len(pids) == 1:
            return list(sets[next(iter(pids))])
        out: list[int] = []
        for pid in pids:
            out.extend(sets[pid])
        return out


def _scan_none(_payload: bytes) -> set[int]:
    return set()
