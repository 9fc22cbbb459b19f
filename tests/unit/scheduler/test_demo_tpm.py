"""The demo's software-TPM step where swtpm is absent or does not start (the step that
enrolls and attests through a real swtpm runs in ``cntrust demo`` itself)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from scheduler import demo_tpm
from scheduler.demo import Check


class FakeScenario:
    def __init__(self, data_dir: Path, tls_url: str | None = "https://127.0.0.1:1") -> None:
        self.buffer = io.StringIO()
        self.console = Console(file=self.buffer, width=200)
        self.checks: list[Check] = []
        service = SimpleNamespace(attestation=object())
        self.d = SimpleNamespace(
            tls_url=tls_url, service=service, settings=SimpleNamespace(data_dir=data_dir)
        )

    def check(self, step: str, expected: str, observed: str, ok: bool) -> None:
        self.checks.append(Check(step, expected, observed, ok))


def test_without_swtpm_the_step_is_skipped_not_failed(monkeypatch, tmp_path):
    real_which = shutil.which
    monkeypatch.setattr(demo_tpm.shutil, "which", lambda t: None if t == "swtpm" else real_which(t))
    assert demo_tpm.missing_tools() == ["swtpm"]
    assert demo_tpm.begin(tmp_path) is None
    scenario = FakeScenario(tmp_path)
    demo_tpm.run(scenario, None)  # type: ignore[arg-type]
    assert scenario.checks == []
    assert "skipped: swtpm/tpm2-tools not installed (missing: swtpm)" in scenario.buffer.getvalue()
    assert not (tmp_path / "swtpm").exists()


def test_without_the_identity_layer_the_step_is_skipped(tmp_path):
    pending = SimpleNamespace(wait=lambda: pytest.fail("must not wait for the TPM"))
    scenario = FakeScenario(tmp_path, tls_url=None)
    demo_tpm.run(scenario, pending)  # type: ignore[arg-type]
    assert scenario.checks == []
    assert "skipped: the identity and attestation layers" in scenario.buffer.getvalue()


@pytest.mark.skipif(bool(demo_tpm.missing_tools()), reason="swtpm/tpm2-tools not installed")
def test_a_software_tpm_that_cannot_be_provisioned_is_a_failed_check(tmp_path):
    (tmp_path / "swtpm").mkdir()  # provisioning needs a fresh directory: mkdir fails
    (tmp_path / "swtpm" / "state").mkdir()
    pending = demo_tpm.begin(tmp_path)
    assert pending is not None
    with pytest.raises(RuntimeError):
        pending.wait()
    scenario = FakeScenario(tmp_path)
    demo_tpm.run(scenario, pending)  # type: ignore[arg-type]
    [check] = scenario.checks
    assert not check.ok and check.observed.startswith("software TPM failed:")
    pending.stop()


@pytest.mark.skipif(bool(demo_tpm.missing_tools()), reason="swtpm/tpm2-tools not installed")
def test_software_tpm_starts_and_stops(tmp_path):
    pending = demo_tpm.begin(tmp_path)
    assert pending is not None
    tpm = pending.wait()
    assert tpm.tcti.startswith("swtpm:host=127.0.0.1,port=")
    assert pending.ek_ca_file.read_bytes().count(b"BEGIN CERTIFICATE") == 2
    pending.stop()
    assert tpm.process.poll() is not None
