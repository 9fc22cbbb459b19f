"""Subjective-logic binomial opinions from Beta evidence counts.

With positive mass ``r``, negative mass ``s`` and prior weight ``W`` (2 for the uniform Beta
prior), Josang's mapping gives::

    belief = r / (r + s + W)    disbelief = s / (r + s + W)    uncertainty = W / (r + s + W)

belief + disbelief + uncertainty = 1 always, and the expected probability (the score) is
``belief + base_rate * uncertainty``. A node with no evidence has uncertainty 1 and scores its
base rate, which is below the trust threshold: newcomers are never trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trust.errors import TrustError


@dataclass(frozen=True, slots=True)
class Opinion:
    """A binomial opinion (b, d, u, a); ``expected`` is the trust score in [0, 1]."""

    belief: float
    disbelief: float
    uncertainty: float
    base_rate: float

    @property
    def expected(self) -> float:
        return self.belief + self.base_rate * self.uncertainty

    @classmethod
    def from_counts(
        cls, positive: float, negative: float, *, prior_weight: float = 2.0, base_rate: float = 0.5
    ) -> Opinion:
        """Map Beta evidence counts to an opinion.

        Raises:
            TrustError: negative or non-finite counts, or a non-positive prior weight.
        """
        if not (math.isfinite(positive) and math.isfinite(negative)):
            raise TrustError("evidence counts must be finite")
        if positive < 0 or negative < 0 or prior_weight <= 0:
            raise TrustError("evidence counts must be >= 0 and prior_weight > 0")
        total = positive + negative + prior_weight
        return cls(positive / total, negative / total, prior_weight / total, base_rate)

    def to_dict(self) -> dict[str, float]:
        return {
            "belief": self.belief,
            "disbelief": self.disbelief,
            "uncertainty": self.uncertainty,
            "base_rate": self.base_rate,
            "expected": self.expected,
        }


def decay_factor(elapsed_s: float, half_life_s: float) -> float:
    """2 ** (-elapsed / half_life); evidence observed ``elapsed_s`` ago keeps this share."""
    if elapsed_s <= 0:
        return 1.0
    return math.exp(-math.log(2.0) * elapsed_s / half_life_s)
