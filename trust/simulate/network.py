"""The simulated compute network: identities, operators, behaviours, joins and departures.

An *identity* is what the trust system sees (one node id). A whitewashing device leaves when
it is excluded and comes back after a delay under a new identity (same operator and device);
a Sybil burst adds many identities at once sharing an operator, a network and a hardware
fingerprint. Arrays are preallocated to the largest number of identities the scenario can
create, so identity index == registration order == the trust engine's node index.

Behaviour per round gives each identity a probability of returning a wrong result
(:meth:`Population.bad_probability`) and a rating strategy (:meth:`Population.rate`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from trust.simulate.scenario import BEHAVIOURS, Scenario

HONEST = 0
ALWAYS_BAD, ON_OFF, BAD_MOUTHING, BALLOT_STUFFING, SYBIL, WHITEWASHING, TURNED = range(1, 8)
CODE = {name: k + 1 for k, name in enumerate(BEHAVIOURS)}
COLLUDING = (BAD_MOUTHING, BALLOT_STUFFING, SYBIL)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class Population:
    """Identities of one simulated network (the same for every strategy given one seed)."""

    def __init__(self, sc: Scenario) -> None:
        rng = np.random.default_rng([sc.seed, 1])
        self.sc = sc
        n = sc.nodes
        n_mal = round(sc.malicious_fraction * n)
        names = list(sc.behaviours)
        weights = np.array([sc.behaviours[k] for k in names])
        per = np.floor(n_mal * weights / weights.sum()).astype(int)
        per[: n_mal - per.sum()] += 1
        counts = dict(zip(names, (int(c) for c in per), strict=True))
        self.n_sybil = counts.get("sybil_burst", 0)
        n_ww = counts.get("whitewashing", 0)
        cycles = sc.rounds // (sc.whitewash_delay_rounds + 1) + 1
        cap = n + n_ww * cycles
        self.capacity = cap
        self.behaviour = np.zeros(cap, dtype=np.int64)
        self.operator = np.zeros(cap, dtype=np.int64)
        self.device = np.arange(cap, dtype=np.int64)
        self.join_round = np.full(cap, -1, dtype=np.int64)
        self.offset = np.zeros(cap, dtype=np.int64)
        self.turn_round = np.full(cap, np.iinfo(np.int64).max, dtype=np.int64)
        self.active = np.zeros(cap, dtype=bool)
        self.pretrusted = np.zeros(cap, dtype=bool)
        # Initial identities: honest first, then malicious by behaviour (sybils join later).
        codes = [HONEST] * (n - n_mal)
        for name in names:
            codes.extend([CODE[name]] * counts[name])
        initial = np.array(codes, dtype=np.int64)
        perm = rng.permutation(n)
        self.behaviour[:n] = initial[perm]
        # Attackers run their own operators; honest-turned-bad nodes sit at honest operators.
        n_bad_ops = min(sc.operators - 1, max(1, round(sc.operators * sc.malicious_fraction)))
        n_bad_ops = max(n_bad_ops, 0) if sc.malicious_fraction > 0 else 0
        honest_ops = np.arange(n_bad_ops, sc.operators)
        attacker = (self.behaviour[:n] != HONEST) & (self.behaviour[:n] != TURNED)
        self.operator[:n] = rng.choice(honest_ops, n)
        if n_bad_ops:
            self.operator[:n][attacker] = rng.integers(0, n_bad_ops, int(attacker.sum()))
        self.sybil_operator = sc.operators
        self.offset[:n] = rng.integers(0, sc.on_off_good_rounds + sc.on_off_bad_rounds, n)
        lo, hi = max(1, int(sc.rounds * 0.2)), max(2, int(sc.rounds * 0.8))
        turned = self.behaviour[:n] == TURNED
        self.turn_round[:n][turned] = rng.integers(lo, hi, int(turned.sum()))
        honest_idx = np.flatnonzero(self.behaviour[:n] == HONEST)
        pre = rng.choice(honest_idx, min(sc.pretrusted_count, len(honest_idx)), replace=False)
        self.pretrusted[pre] = True
        self.join_round[:n] = 0
        # Sybil identities occupy the slots after the initial ones and join in a burst.
        self.size = n
        self.sybil_round = int(sc.rounds * sc.sybil_round_fraction)
        self.pending: list[tuple[int, int, int]] = []  # (round, device, operator) rejoins

    def add_identity(self, behaviour: int, operator: int, device: int, rnd: int) -> int:
        """Append one identity (joining at ``rnd``); return its index."""
        i = self.size
        if i >= self.capacity:
            grow = max(16, self.capacity // 2)
            for name in ("behaviour", "operator", "device", "join_round", "offset", "turn_round"):
                arr = getattr(self, name)
                fill = np.iinfo(np.int64).max if name == "turn_round" else 0
                setattr(self, name, np.concatenate([arr, np.full(grow, fill, dtype=np.int64)]))
            for name in ("active", "pretrusted"):
                arr = getattr(self, name)
                setattr(self, name, np.concatenate([arr, np.zeros(grow, dtype=bool)]))
            self.capacity += grow
        self.behaviour[i] = behaviour
        self.operator[i] = operator
        self.device[i] = device
        self.join_round[i] = rnd
        self.size = i + 1
        return i

    def malicious_now(self, rnd: int) -> BoolArray:
        """Identities controlled by an attacker at this round (turned nodes after the turn)."""
        b = self.behaviour[: self.size]
        out: BoolArray = (b != HONEST) & ((b != TURNED) | (self.turn_round[: self.size] <= rnd))
        return out

    def ever_malicious(self) -> BoolArray:
        out: BoolArray = self.behaviour[: self.size] != HONEST
        return out

    def bad_probability(self, rnd: int) -> FloatArray:
        """Probability that each identity returns a wrong result this round."""
        sc = self.sc
        b = self.behaviour[: self.size]
        p = np.zeros(self.size)
        p[(b == ALWAYS_BAD) | (b == WHITEWASHING)] = 1.0
        period = sc.on_off_good_rounds + sc.on_off_bad_rounds
        phase = (rnd + self.offset[: self.size]) % period
        p[(b == ON_OFF) & (phase >= sc.on_off_good_rounds)] = 1.0
        p[np.isin(b, COLLUDING)] = sc.collusion_bad_probability
        p[(b == TURNED) & (self.turn_round[: self.size] <= rnd)] = 1.0
        return p

    def ratings(
        self, rng: np.random.Generator, rnd: int, p_bad: FloatArray
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """This round's peer ratings: (rater, ratee, rating in {-1, +1}).

        Honest raters rate a random peer by the outcome of one interaction with it.
        Bad-mouthers up-rate fellow colluders and down-rate honest nodes; ballot-stuffers and
        Sybils up-rate their own group; other attackers rate like honest nodes.
        """
        active = np.flatnonzero(self.active[: self.size])
        k = self.sc.ratings_per_node
        if k == 0 or len(active) < 2:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), np.zeros(0)
        rater = np.repeat(active, k)
        ratee = active[rng.integers(0, len(active), len(rater))]
        rating = np.where(rng.random(len(rater)) < p_bad[ratee], -1.0, 1.0)
        b = self.behaviour
        for group, others in ((BAD_MOUTHING, (BAD_MOUTHING, BALLOT_STUFFING)), (SYBIL, (SYBIL,))):
            members = active[np.isin(b[active], others)]
            rows = np.flatnonzero(b[rater] == group)
            if len(members) == 0 or len(rows) == 0:
                continue
            half = rng.random(len(rows)) < 0.5
            ratee[rows[half]] = members[rng.integers(0, len(members), int(half.sum()))]
            rating[rows[half]] = 1.0
            if group == BAD_MOUTHING:
                honest = active[b[active] == HONEST]
                rest = rows[~half]
                ratee[rest] = honest[rng.integers(0, len(honest), len(rest))]
                rating[rest] = -1.0
        stuffers = np.flatnonzero(b[rater] == BALLOT_STUFFING)
        members = active[np.isin(b[active], (BAD_MOUTHING, BALLOT_STUFFING))]
        if len(stuffers) and len(members):
            ratee[stuffers] = members[rng.integers(0, len(members), len(stuffers))]
            rating[stuffers] = 1.0
        keep = rater != ratee
        return rater[keep], ratee[keep], rating[keep]
