"""Global trust propagation over the peer-feedback graph (EigenTrust), and collusion signals.

EigenTrust (Kamvar, Schlosser, Garcia-Molina 2003): local trust ``c_ij`` is rater i's
normalized positive satisfaction with j; the global vector solves
``t = (1 - alpha) * C^T t + alpha * p`` with ``p`` spread over pre-trusted nodes. Raters with
no positive rating ("dangling" rows) hand their mass to ``p``. Here the global vector only
weighs the *credibility of feedback*; it never enters a score directly, so it can never
outvote verified evidence.

Invariants: the edge log is append-only between compactions; :meth:`FeedbackGraph.compact`
sums each (rater, ratee) pair once, decayed to ``now``, so memory stays bounded by the number
of distinct pairs. Every function here is vectorized (numpy / scipy.sparse; scipy is imported
when first needed so ``import trust`` stays light).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trust.errors import TrustError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Edges:
    """Distinct feedback edges: rater index, ratee index, summed decayed rating."""

    src: IntArray
    dst: IntArray
    value: FloatArray


class FeedbackGraph:
    """Append-only log of peer ratings with O(1) amortized appends."""

    def __init__(self) -> None:
        self._src = array("q")
        self._dst = array("q")
        self._val = array("d")
        self._t = array("d")

    def __len__(self) -> int:
        return len(self._src)

    def add(self, src: int, dst: int, rating: float, observed_at: float) -> None:
        self._src.append(src)
        self._dst.append(dst)
        self._val.append(rating)
        self._t.append(observed_at)

    def extend(
        self, src: IntArray, dst: IntArray, rating: FloatArray, observed_at: FloatArray
    ) -> None:
        """Append many edges at once (arrays of equal length).

        Raises:
            TrustError: arrays of different lengths.
        """
        if not (len(src) == len(dst) == len(rating) == len(observed_at)):
            raise TrustError("edge arrays differ in length")
        self._src.frombytes(np.ascontiguousarray(src, dtype=np.int64).tobytes())
        self._dst.frombytes(np.ascontiguousarray(dst, dtype=np.int64).tobytes())
        self._val.frombytes(np.ascontiguousarray(rating, dtype=np.float64).tobytes())
        self._t.frombytes(np.ascontiguousarray(observed_at, dtype=np.float64).tobytes())

    def compact(self, n_nodes: int, now: float, half_life_s: float) -> Edges:
        """Sum every (rater, ratee) pair, decayed to ``now``; keep only the sums."""
        if not self._src:
            empty = np.zeros(0, dtype=np.int64)
            return Edges(empty, empty.copy(), np.zeros(0))
        src = np.frombuffer(self._src, dtype=np.int64)
        dst = np.frombuffer(self._dst, dtype=np.int64)
        val = np.frombuffer(self._val, dtype=np.float64)
        age = now - np.frombuffer(self._t, dtype=np.float64)
        decayed = val * np.exp2(-np.clip(age, 0.0, None) / half_life_s)
        from scipy import sparse

        m = sparse.csr_matrix((decayed, (src, dst)), shape=(n_nodes, n_nodes))
        m.sum_duplicates()
        m.eliminate_zeros()
        coo = m.tocoo()
        edges = Edges(
            coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)
        )
        self._src = array("q", edges.src.tobytes())
        self._dst = array("q", edges.dst.tobytes())
        self._val = array("d", edges.value.tobytes())
        self._t = array("d", np.full(len(edges.src), now).tobytes())
        return edges


@dataclass(frozen=True, slots=True)
class EigenTrustResult:
    """Global trust vector (sums to 1), iterations run and the final L1 residual."""

    trust: FloatArray
    iterations: int
    residual: float


def eigentrust(
    n_nodes: int,
    edges: Edges,
    pretrusted: IntArray,
    *,
    alpha: float = 0.15,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> EigenTrustResult:
    """EigenTrust power iteration with pre-trusted nodes (uniform over all if none given).

    Raises:
        TrustError: no nodes, alpha outside (0, 1], or a pre-trusted index out of range.
    """
    if n_nodes <= 0:
        raise TrustError("eigentrust needs at least one node")
    if not 0.0 < alpha <= 1.0:
        raise TrustError("alpha must be within (0, 1]")
    p = np.zeros(n_nodes)
    if len(pretrusted):
        if pretrusted.min() < 0 or pretrusted.max() >= n_nodes:
            raise TrustError("pre-trusted index out of range")
        p[pretrusted] = 1.0 / len(pretrusted)
    else:
        p[:] = 1.0 / n_nodes
    from scipy import sparse

    positive = np.maximum(edges.value, 0.0)
    keep = positive > 0
    src, dst, pos = edges.src[keep], edges.dst[keep], positive[keep]
    row_sum = np.bincount(src, weights=pos, minlength=n_nodes)
    dangling = row_sum == 0
    ct = sparse.csr_matrix((pos / row_sum[src], (dst, src)), shape=(n_nodes, n_nodes))
    t = p.copy()
    residual = math.inf
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - iterations is reported
        nxt = (1.0 - alpha) * (ct @ t + t[dangling].sum() * p) + alpha * p
        residual = float(np.abs(nxt - t).sum())
        t = nxt
        if residual < tol:
            break
    return EigenTrustResult(t, iterations, residual)


def rater_agreement(
    n_nodes: int, edges: Edges, ratee_good: npt.NDArray[np.bool_], ratee_bad: npt.NDArray[np.bool_]
) -> FloatArray:
    """Per rater: share of its ratings that agree with verified evidence about the ratee.

    A rating of a ratee that verified evidence shows good (``ratee_good``) agrees when
    positive; of a ratee shown bad, when negative; ratees with neither flag are not compared.
    Laplace-smoothed as (agree + 1) / (compared + 1): a rater with nothing comparable gets 1.
    """
    good = ratee_good[edges.dst]
    bad = ratee_bad[edges.dst]
    compared = good | bad
    agree = (good & (edges.value > 0)) | (bad & (edges.value < 0))
    n_cmp = np.bincount(edges.src[compared], minlength=n_nodes)
    n_agree = np.bincount(edges.src[agree], minlength=n_nodes)
    out: FloatArray = (n_agree + 1.0) / (n_cmp + 1.0)
    return out


@dataclass(frozen=True, slots=True)
class RatingRing:
    """Nodes that rate each other up while their ratings contradict verified evidence."""

    members: tuple[int, ...]
    contradiction_share: float


def detect_rating_rings(
    n_nodes: int,
    edges: Edges,
    agreement: FloatArray,
    *,
    min_size: int = 3,
    max_agreement: float = 0.5,
) -> tuple[RatingRing, ...]:
    """Find rating rings: groups linked by mutual positive ratings whose members' ratings
    mostly contradict verified evidence (they up-rate the bad, down-rate the good).
    """
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    pos = edges.value > 0
    if not pos.any():
        return ()
    b = sparse.csr_matrix(
        (np.ones(int(pos.sum())), (edges.src[pos], edges.dst[pos])), shape=(n_nodes, n_nodes)
    )
    mutual = b.multiply(b.T).tocsr()
    n_comp, labels = connected_components(mutual, directed=False)
    sizes = np.bincount(labels, minlength=n_comp)
    rings: list[RatingRing] = []
    for comp in np.flatnonzero(sizes >= min_size):
        members = np.flatnonzero(labels == comp)
        mean_agreement = float(agreement[members].mean())
        if mean_agreement <= max_agreement:
            rings.append(RatingRing(tuple(int(m) for m in members), 1.0 - mean_agreement))
    return tuple(rings)
