"""Tables of the provenance log (one log per database).

Invariants:
- ``prov_tile`` holds every committed Merkle tile, inner-node companion and *full* entry
  bundle, keyed by its tlog-tiles path; rows are written in the transaction that moves
  ``prov_log_state`` to the tree that needs them, so the state never names a missing tile.
- ``prov_entry`` holds the entries of the rightmost, not yet full entry bundle (one row per
  entry, so a batch writes only its new entries); the rows of a bundle are deleted in the
  transaction that writes the full bundle.
- ``prov_task_entry`` maps a finished task to its one leaf index: the primary key makes a
  second entry for a task impossible, the unique index a second task for a leaf.
- ``prov_tenant_salt`` keeps the tenant name and the salt of its commitment outside the log:
  deleting the row erases the link without breaking any proof.
- ``prov_checkpoint`` keeps every published checkpoint (tree size strictly increasing);
  ``prov_anchor`` every confirmed anchor (``superseded`` once its block left the chain).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class ProvTile(SQLModel, table=True):
    __tablename__ = "prov_tile"

    path: str = Field(primary_key=True, max_length=160)
    data: bytes = Field(sa_type=sa.LargeBinary)


class ProvEntry(SQLModel, table=True):
    __tablename__ = "prov_entry"

    leaf_index: int = Field(sa_type=sa.BigInteger, primary_key=True)
    data: bytes = Field(sa_type=sa.LargeBinary)


class ProvLogState(SQLModel, table=True):
    __tablename__ = "prov_log_state"

    id: int = Field(default=1, primary_key=True)
    origin: str = Field(max_length=256)
    tree_size: int = Field(sa_type=sa.BigInteger)
    root: bytes = Field(sa_type=sa.LargeBinary)


class ProvCheckpoint(SQLModel, table=True):
    __tablename__ = "prov_checkpoint"

    tree_size: int = Field(sa_type=sa.BigInteger, primary_key=True)
    note: bytes = Field(sa_type=sa.LargeBinary)
    published_at: float


class ProvTaskEntry(SQLModel, table=True):
    __tablename__ = "prov_task_entry"

    task_id: str = Field(primary_key=True, max_length=40)
    leaf_index: int = Field(sa_type=sa.BigInteger, unique=True)


class ProvTenantSalt(SQLModel, table=True):
    __tablename__ = "prov_tenant_salt"

    task_id: str = Field(primary_key=True, max_length=40)
    tenant: str = Field(max_length=64)
    salt: bytes = Field(sa_type=sa.LargeBinary)


class ProvAnchor(SQLModel, table=True):
    __tablename__ = "prov_anchor"

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int = Field(sa_type=sa.BigInteger)
    contract: str = Field(max_length=42)
    tx_hash: str = Field(max_length=66, index=True)
    block_number: int = Field(sa_type=sa.BigInteger)
    block_hash: str = Field(max_length=66)
    log_id: str = Field(max_length=66)
    tree_size: int = Field(sa_type=sa.BigInteger, index=True)
    root: str = Field(max_length=66)
    anchorer: str = Field(max_length=42)
    confirmations: int
    anchored_at: float
    superseded: bool = False
