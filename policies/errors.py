"""Errors raised by `policies`.

Every error carries data, not just text. Decisions never raise for a bad request: the
engine turns it into a deny with a reason (fail closed). These errors come from loading,
parsing outside input, building requests and replaying.

Tree::

    PolicyError
    ├── PolicyLoadError              a policy set (schema + policies) cannot be loaded;
    │   │                            ``problems`` lists every problem at once
    │   └── PolicyFileTooLargeError  a schema, policy, case or request file exceeds its limit
    ├── PolicyRequestError           a request or entity is malformed (bad value, unknown type)
    ├── PolicyCaseError              a policy test case file is malformed
    ├── PolicyVersionMismatchError   stored policy text does not hash to the stored version
    └── ReplayMismatchError          a replayed decision differs from the stored one
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policies._model import Decision


@dataclass(frozen=True)
class PolicyProblem:
    """One problem found while loading a policy set.

    ``file`` and ``line`` locate it (line is 1-based, 0 when unknown); ``policy_id`` is the
    policy's ``@id`` annotation when it has one, else Cedar's positional id or "".
    """

    file: str
    line: int
    policy_id: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        who = f" [{self.policy_id}]" if self.policy_id else ""
        return f"{where}{who}: {self.message}"


class PolicyError(Exception):
    """Root of every error policies raises."""


class PolicyLoadError(PolicyError):
    """The policy set cannot be loaded; ``problems`` holds every problem found."""

    def __init__(self, problems: tuple[PolicyProblem, ...] | list[PolicyProblem]) -> None:
        self.problems: tuple[PolicyProblem, ...] = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"policy set refused, {len(self.problems)} problem(s):\n{lines}")


class PolicyFileTooLargeError(PolicyLoadError):
    """A file is larger than its limit; nothing of it was parsed."""

    def __init__(self, path: str, size_bytes: int, limit_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(
            [PolicyProblem(path, 0, "", f"file is {size_bytes} bytes, limit {limit_bytes}")]
        )


class PolicyRequestError(PolicyError):
    """A request or entity is malformed; ``field`` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class PolicyCaseError(PolicyError):
    """A policy test case file is malformed."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class PolicyVersionMismatchError(PolicyError):
    """The stored policy set text does not hash to the version the decision recorded."""

    def __init__(self, expected: str, calculated: str) -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(f"policy set version mismatch: expected {expected}, got {calculated}")


class ReplayMismatchError(PolicyError):
    """Re-evaluating the stored request under the stored policy set gave another decision."""

    def __init__(self, expected: Decision, replayed: Decision) -> None:
        self.expected = expected
        self.replayed = replayed
        super().__init__(
            f"replay diverged: stored {expected.effect} {list(expected.policy_ids)}, "
            f"replayed {replayed.effect} {list(replayed.policy_ids)}"
        )
