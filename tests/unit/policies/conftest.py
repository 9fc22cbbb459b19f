"""Shared fixtures for the policies tests: the default pack, loaded once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policies import CedarEngine, PolicySet, default_policy_dir, load_default_policy_set


@pytest.fixture(scope="session")
def default_set() -> PolicySet:
    return load_default_policy_set()


@pytest.fixture
def engine(default_set: PolicySet) -> CedarEngine:
    return CedarEngine(default_set)


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    """A writable copy of the default pack (schema, policies and cases)."""
    target = tmp_path / "pack"
    shutil.copytree(default_policy_dir(), target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
