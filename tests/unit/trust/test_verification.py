from __future__ import annotations

import numpy as np
import pytest

from trust import Opinion, TrustError, decide_replicas, verification_share, verification_shares


def test_share_grows_with_uncertainty_and_distrust() -> None:
    newcomer = Opinion.from_counts(0, 0)
    trusted = Opinion.from_counts(40, 0)
    shaky = Opinion.from_counts(10, 5)
    assert verification_share(newcomer) == pytest.approx(1.0)
    assert verification_share(trusted) < verification_share(shaky) < verification_share(newcomer)
    assert verification_share(trusted) >= 0.2
    with pytest.raises(TrustError):
        verification_share(trusted, min_share=0.6, max_share=0.5)


def test_vectorized_matches_scalar() -> None:
    ops = [Opinion.from_counts(r, s) for r, s in [(0, 0), (3, 1), (40, 0), (2, 9)]]
    got = verification_shares(
        np.array([o.expected for o in ops]), np.array([o.uncertainty for o in ops])
    )
    assert got == pytest.approx([verification_share(o) for o in ops])


def test_trusted_majority_blames_the_dissenter() -> None:
    v = decide_replicas({"new": "bad", "t1": "ok", "t2": "ok"}, {"new": 0.5, "t1": 0.9, "t2": 0.9})
    assert v.decided and v.majority_digest == "ok"
    assert v.disagreeing == ("new",) and v.agreeing == ("t1", "t2")


def test_no_trusted_majority_decides_nothing() -> None:
    v = decide_replicas({"a": "x", "b": "y"}, {"a": 0.9, "b": 0.9})
    assert not v.decided and v.disagreeing == ()
    # many untrusted colluders do not outvote one trusted node... unless they carry the weight
    v = decide_replicas({"c1": "bad", "c2": "bad", "t": "ok"}, {"c1": 0.1, "c2": 0.1, "t": 0.9})
    assert v.decided and v.disagreeing == ("c1", "c2")


def test_agreement_and_errors() -> None:
    v = decide_replicas({"a": "x", "b": "x"}, {})
    assert v.decided and v.disagreeing == ()
    with pytest.raises(TrustError):
        decide_replicas({"a": "x"}, {"a": 1.0})
