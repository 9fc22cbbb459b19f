"""The node keys that sign task results (one Ed25519 key per node).

Invariants:
- a node has at most one result key (primary key); it is set once, at registration, and a
  different key for the same node is refused (an operator removes the row to re-key);
- only the raw public key is stored (base64) with its key id; the private key never leaves
  the node's own directory.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class NodeResultKey(SQLModel, table=True):
    __tablename__ = "node_result_key"

    node_id: str = Field(primary_key=True, max_length=64)
    public_key: str = Field(max_length=64)
    key_id: str = Field(max_length=32)
    registered_at: float
