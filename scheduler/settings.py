"""Configuration, parsed once at the edge (environment ``CNTRUST_*`` and CLI flags)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".cntrust")


LAYERS = ("identity", "attestation", "policy", "trust", "provenance", "ids")
"""The security layers: mTLS identity and revocation, the attestation gate, Cedar
authorization and placement, trust scoring (and replication), the provenance log, and
incident response."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CNTRUST_", extra="forbid")

    data_dir: Path = DEFAULT_DATA_DIR
    # security layers left out where the layers are installed (see LAYERS), e.g. to measure
    # one layer's cost against the bare scheduler: CNTRUST_LAYERS_OFF='["trust"]'
    layers_off: list[str] = Field(default_factory=list)
    database_url: str | None = None
    issuer: str = "cntrust"
    audience: str = "cntrust-api"
    trust_domain: str = "cntrust.local"
    # node SVID renewal requires a passing attestation (attest-to-renew); false only where
    # no attestation runs, and each renewal record then says "not_required"
    attest_to_renew: bool = True
    # TPM-rooted enrollment: PEM file of the EK certificate CAs (roots and intermediates);
    # without an EK certificate a node's TPM enrollment is refused unless this is false
    tpm_ek_ca_file: Path | None = None
    tpm_require_ek_certificate: bool = True
    # extra DNS names / IP addresses for the scheduler's TLS certificate (besides the bind
    # address, localhost and loopback), e.g. the name remote agents use
    tls_server_names: list[str] = Field(default_factory=list)
    heartbeat_timeout_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    running_grace_s: float = Field(default=5.0, ge=0)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    max_claim: int = Field(default=16, gt=0, le=256)
    claim_wait_s: float = Field(default=10.0, ge=0, le=60)
    # attestation layer (installed with the layers): the gate keeps nodes without a fresh
    # affirming/warning result from work (fail closed); results expire after the TTL
    attestation_gate: bool = True
    attestation_result_ttl_s: float = Field(default=90.0, gt=0, le=86400)
    attestation_interval_s: float = Field(default=30.0, gt=0, le=3600)
    attestation_update_window_s: float = Field(default=3600.0, ge=0)
    # hardware claim of EAT-only nodes: "none" (no claim: the status follows the other
    # claims) or "warning" (the library's default)
    attestation_eat_hardware: Literal["none", "warning"] = "none"
    # a result with an unchanged status is fed to the trust engine at most this often
    attestation_trust_refresh_s: float = Field(default=3600.0, gt=0)
    otlp_endpoint: str | None = None
    console_traces: bool = False
    # trust layer: replicas sharing a database apply each other's trust evidence this often
    trust_sync_interval_s: float = Field(default=0.5, gt=0, le=60)
    # how often a replica feeds the alerts other replicas stored to its correlator
    incident_sync_interval_s: float = Field(default=0.5, gt=0, le=60)
    # adaptive verification by replication (scheduler/replication.py), on with the layers;
    # the engine's share per node is bounded by these (max: the throughput cap)
    replication: bool = True
    replication_min_share: float = Field(default=0.05, ge=0, le=1)
    replication_max_share: float = Field(default=0.5, ge=0, le=1)
    replication_max_replicas: int = Field(default=2, ge=1, le=4)
    # alert handling (scheduler.incidents): aggregation key of /v1/alerts (by_both, by_src,
    # by_dst for spoofed floods, by_rule), the larger body limit of sensor batches and
    # element telemetry, and whether a high-severity incident also revokes the node
    alerts_track: str = "by_both"
    alerts_max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, le=64 * 1024 * 1024)
    incident_revoke: bool = False

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("database_url must be sqlite:// or postgresql+psycopg://")
        return value

    @model_validator(mode="after")
    def _replication_shares(self) -> Settings:
        if self.replication_min_share > self.replication_max_share:
            raise ValueError("replication_min_share must be <= replication_max_share")
        return self

    @field_validator("layers_off")
    @classmethod
    def _known_layers(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LAYERS))
        if unknown:
            raise ValueError(f"unknown layers {unknown}; the layers are {', '.join(LAYERS)}")
        return sorted(set(value))

    def layer_on(self, name: str) -> bool:
        """Whether security layer ``name`` (one of :data:`LAYERS`) is installed where the
        layers are (``cntrust up`` without ``--no-layers``)."""
        return name not in self.layers_off

    @field_validator("alerts_track")
    @classmethod
    def _known_track(cls, value: str) -> str:
        if value not in ("by_both", "by_src", "by_dst", "by_rule"):
            raise ValueError("alerts_track must be by_both, by_src, by_dst or by_rule")
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cntrust.db').resolve()}"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        return self.data_dir
