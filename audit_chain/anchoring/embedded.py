"""The embedded default chain: an in-process EVM (eth-tester over py-evm) that survives restarts.

eth-tester keeps its chain in memory only. `EmbeddedChain` makes it durable by
journaling every block it mines: each raw signed transaction (one per block,
auto-mined) and each empty block, with the block's timestamp and hash, appended to
`<data_dir>/journal.jsonl` and fsynced before the caller gets the transaction hash.
On restart a fresh eth-tester replays the journal in order. Every `snapshot_every`
journal entries the py-evm database is also written to `<data_dir>/state.snapshot`
(a cache, checked against the journal), so a restart replays only the lines after it.

Invariants:
- replay is deterministic: genesis parameters are fixed (its timestamp is the first
  journal line), block timestamps come from the journal, and the post-merge
  `prevrandao` (mix hash) is derived from the parent hash instead of os.urandom,
  so every block, receipt and contract address has the same hash after a restart;
  replay compares each block hash with the journal and refuses to diverge;
- only journaled operations can change the chain: `eth_sendTransaction` (node-side
  signing), snapshots, reverts, resets and time travel are refused;
- a torn last journal line (crash mid-append) was never acknowledged and is dropped;
  any other corrupt line stops the start with `EmbeddedChainError`;
- transactions are looked up through an index, never eth-tester's backwards scan of
  every block.

The anchorer's key is generated on first start into `<data_dir>/anchorer.key`
(mode 0600), funded from eth-tester's prefunded account, and deploys the Anchor
contract as its first transaction (so the contract address is fixed by the key).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rlp
from eth.exceptions import PyEVMError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import get_default_account_keys
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionNotFound
from eth_tester.exceptions import ValidationError as TesterValidationError
from web3 import EthereumTesterProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

from audit_chain.anchoring._limits import cap_recursion_limit
from audit_chain.anchoring._snapshot import Snapshot, read_snapshot, write_snapshot
from audit_chain.anchoring.deploy import deploy_anchor_contract
from audit_chain.anchoring.errors import EmbeddedChainError
from audit_chain.anchoring.files import load_anchorer_key, write_anchorer_key
from audit_chain.anchoring.records import json_depth_ok

cap_recursion_limit()  # py_ecc raised it to 100,000 on import: see _limits

JOURNAL_NAME = "journal.jsonl"
KEY_NAME = "anchorer.key"
SNAPSHOT_NAME = "state.snapshot"
JOURNAL_FORMAT = 1
MAX_JOURNAL_LINE_BYTES = 64 * 1024
FUNDING_WEI = 1_000 * 10**18
_REFUSED_PREFIXES = ("evm_", "testing_", "personal_", "eth_sendTransaction", "eth_sign")
_ALLOWED = ("evm_mine",)


class _DeterministicBackend(PyEVMBackend):
    """PyEVMBackend with a fixed genesis, settable block timestamps, a deterministic
    mix hash, and a transaction-hash -> block-number index."""

    chain: Any

    def __init__(self, genesis_timestamp: int) -> None:
        params = PyEVMBackend.generate_genesis_params({"timestamp": genesis_timestamp})
        self._tx_index: dict[bytes, int] = {}
        super().__init__(genesis_parameters=params)

    def set_pending_timestamp(self, timestamp: int) -> None:
        parent = self.chain.get_canonical_head()
        if timestamp <= parent.timestamp:
            raise EmbeddedChainError("block timestamps must increase")
        self.chain.header = self.chain.header.copy(timestamp=timestamp)

    def pending_parent_timestamp(self) -> int:
        return int(self.chain.get_canonical_head().timestamp)

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = b"\x00" * 20) -> tuple[bytes, ...]:
        hashes = []
        for _ in range(num_blocks):
            parent_hash = self.chain.header.parent_hash
            mix_hash = keccak(b"cntrust-embedded-prevrandao" + parent_hash)
            block = self.chain.mine_block(coinbase=coinbase, mix_hash=mix_hash, blob_gas_used=0)
            for tx in block.transactions:
                self._tx_index[tx.hash] = block.number
            hashes.append(block.hash)
        return tuple(hashes)

    def _store(self) -> dict[bytes, bytes]:
        store = getattr(getattr(self.chain.chaindb.db, "wrapped_db", None), "kv_store", None)
        if not isinstance(store, dict):
            raise EmbeddedChainError("py-evm database layout not supported for snapshots")
        return store

    def export_snapshot(self, journal_entries: int) -> Snapshot:
        head = self.chain.get_canonical_head()
        return Snapshot(journal_entries, head.hash, dict(self._store()), dict(self._tx_index))

    def import_snapshot(self, snapshot: Snapshot) -> None:
        store = self._store()
        store.clear()
        store.update(snapshot.kv)
        self.chain = type(self.chain)(self.chain.chaindb.db)
        self._tx_index = dict(snapshot.tx_index)

    def head_hash(self) -> bytes:
        return bytes(self.chain.get_canonical_head().hash)

    def _locate(self, transaction_hash: bytes) -> tuple[Any, Any, int, bool]:
        number = self._tx_index.get(transaction_hash)
        if number is not None:
            block = self.chain.get_canonical_block_by_number(number)
            pending = False
        else:
            block = self.chain.get_block()
            pending = True
        for index, transaction in enumerate(block.transactions):
            if transaction.hash == transaction_hash:
                return block, transaction, index, pending
        raise TransactionNotFound(f"No transaction found for hash 0x{transaction_hash.hex()}")

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, transaction, index, pending = self._locate(transaction_hash)
        return serialize_transaction(block, transaction, index, pending)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        block, transaction, index, pending = self._locate(transaction_hash)
        receipts = block.get_receipts(self.chain.chaindb)
        return serialize_transaction_receipt(
            block, receipts, transaction, index, pending, self.chain.get_vm()
        )


class _Journal:
    """Append-only JSON lines, fsynced per append."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.count = 0

    def read(self) -> list[dict[str, Any]]:
        if not self._path.exists():
            return []
        data = self._path.read_bytes()
        good_end = data.rfind(b"\n") + 1
        if good_end < len(data):
            # Torn tail: its writer never returned, so nobody saw this operation.
            with self._path.open("r+b") as fh:
                fh.truncate(good_end)
                os.fsync(fh.fileno())
            data = data[:good_end]
        entries = []
        for number, line in enumerate(data.splitlines(), start=1):
            if len(line) > MAX_JOURNAL_LINE_BYTES or not json_depth_ok(line, 4):
                raise EmbeddedChainError(f"journal line {number} too long or too deep")
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise EmbeddedChainError(f"journal line {number} is not JSON") from exc
            if not isinstance(entry, dict) or not isinstance(entry.get("op"), str):
                raise EmbeddedChainError(f"journal line {number} is malformed")
            entries.append(entry)
        self.count = len(entries)
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.count += 1


class _JournalingProvider(EthereumTesterProvider):
    """EthereumTesterProvider that journals every block it mines and refuses unjournaled
    state changes. All requests are serialized (py-evm is not thread-safe)."""

    def __init__(
        self,
        tester: EthereumTester,
        backend: _DeterministicBackend,
        journal: _Journal,
        clock: Callable[[], float],
        after_append: Callable[[], None],
    ) -> None:
        super().__init__(tester)
        self._after_append = after_append
        self._tester = tester
        self._backend = backend
        self._journal = journal
        self._clock = clock
        self._lock = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        name = str(method)
        with self._lock:
            if name.startswith(_REFUSED_PREFIXES) and name not in _ALLOWED:
                raise EmbeddedChainError(f"the embedded chain refuses {name}")
            if name not in ("eth_sendRawTransaction", "evm_mine"):
                return super().make_request(method, params)
            timestamp = max(int(self._clock()), self._backend.pending_parent_timestamp() + 1)
            self._backend.set_pending_timestamp(timestamp)
            before = self._tester.get_block_by_number("latest")["number"]
            response = super().make_request(method, params)
            latest = self._tester.get_block_by_number("latest")
            if latest["number"] > before + 1:
                raise EmbeddedChainError("one request mined several blocks; journal refuses it")
            if latest["number"] == before + 1:
                entry: dict[str, Any] = {
                    "op": "tx" if name == "eth_sendRawTransaction" else "mine",
                    "timestamp": timestamp,
                    "block_hash": str(latest["hash"]),
                }
                if name == "eth_sendRawTransaction":
                    raw = params[0]
                    entry["raw"] = raw if isinstance(raw, str) else Web3.to_hex(raw)
                self._journal.append(entry)
                self._after_append()
            return response


class EmbeddedChain:
    """An in-process EVM with a durable journal, a funded anchorer key and the Anchor contract.

    Raises (from the constructor):
        EmbeddedChainError: the journal is corrupt or diverges on replay.
        AnchorRecordError: the key file is malformed or too open (mode not 0600).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        new_key: Callable[[int], bytes] = secrets.token_bytes,
        snapshot_every: int = 1024,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clock = clock
        self._snapshot_every = snapshot_every
        self._journal = _Journal(self.data_dir / JOURNAL_NAME)
        entries = self._journal.read()
        if entries:
            genesis = entries[0]
            if genesis.get("op") != "genesis" or genesis.get("format") != JOURNAL_FORMAT:
                raise EmbeddedChainError("journal does not start with a genesis line")
            genesis_timestamp = genesis.get("timestamp")
            if not isinstance(genesis_timestamp, int) or genesis_timestamp < 0:
                raise EmbeddedChainError("journal genesis timestamp is malformed")
        else:
            genesis_timestamp = int(clock())
            self._journal.append(
                {"op": "genesis", "format": JOURNAL_FORMAT, "timestamp": genesis_timestamp}
            )
            entries = [{"op": "genesis"}]
        self._backend = _DeterministicBackend(genesis_timestamp)
        start = self._restore_snapshot(entries, genesis_timestamp)
        self.snapshot_used = start > 1
        self._snapshot_at = start
        self._tester = EthereumTester(self._backend)
        self._replay(entries[start:], first_line=start + 1)
        self.blocks_replayed = len(entries) - start
        self.provider = _JournalingProvider(
            self._tester, self._backend, self._journal, clock, self._maybe_snapshot
        )
        self.web3 = Web3(self.provider)
        self.account = self._anchorer_account(new_key)
        self.contract_address = self._ensure_contract()

    def _restore_snapshot(self, entries: list[dict[str, Any]], genesis_timestamp: int) -> int:
        """Load the snapshot if it matches the journal; return the first entry to replay."""
        snapshot = read_snapshot(self.data_dir / SNAPSHOT_NAME)
        if snapshot is None or not 1 < snapshot.journal_entries <= len(entries):
            return 1
        expected = "0x" + snapshot.head_hash.hex()
        if entries[snapshot.journal_entries - 1].get("block_hash") != expected:
            return 1
        self._backend.import_snapshot(snapshot)
        if self._backend.head_hash() != snapshot.head_hash:
            self._backend = _DeterministicBackend(genesis_timestamp)
            return 1
        return snapshot.journal_entries

    def _maybe_snapshot(self) -> None:
        if self._journal.count - self._snapshot_at < self._snapshot_every:
            return
        write_snapshot(
            self.data_dir / SNAPSHOT_NAME, self._backend.export_snapshot(self._journal.count)
        )
        self._snapshot_at = self._journal.count

    @property
    def chain_id(self) -> int:
        return int(self.web3.eth.chain_id)

    def mine_block(self) -> None:
        """Mine one empty block (journaled), e.g. to add confirmations."""
        self.provider.make_request(RPCEndpoint("evm_mine"), [1])

    def _replay(self, entries: list[dict[str, Any]], *, first_line: int) -> None:
        for number, entry in enumerate(entries, start=first_line):
            timestamp = entry.get("timestamp")
            if not isinstance(timestamp, int):
                raise EmbeddedChainError(f"journal line {number}: bad timestamp")
            self._backend.set_pending_timestamp(timestamp)
            try:
                if entry["op"] == "tx" and isinstance(entry.get("raw"), str):
                    self._tester.send_raw_transaction(entry["raw"])
                elif entry["op"] == "mine":
                    self._tester.mine_blocks(1)
                else:
                    raise EmbeddedChainError(f"journal line {number}: unknown operation")
            except (TesterValidationError, PyEVMError, ValueError) as exc:
                raise EmbeddedChainError(f"journal line {number}: replay failed: {exc}") from exc
            block_hash = self._tester.get_block_by_number("latest")["hash"]
            if str(block_hash) != entry.get("block_hash"):
                raise EmbeddedChainError(
                    f"journal line {number}: replay diverged "
                    f"(expected block {entry.get('block_hash')}, got {block_hash})"
                )

    def _anchorer_account(self, new_key: Callable[[int], bytes]) -> LocalAccount:
        key_path = self.data_dir / KEY_NAME
        if key_path.exists():
            account = load_anchorer_key(key_path)
        else:
            account = write_anchorer_key(key_path, new_key(32))
        if self.web3.eth.get_balance(account.address) == 0:
            self._fund(account.address)
        return account

    def _fund(self, address: str) -> None:
        funder: LocalAccount = Account.from_key(get_default_account_keys(1)[0].to_bytes())
        block = self.web3.eth.get_block("latest")
        base_fee = int(block.get("baseFeePerGas", 0) or 0)
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.web3.eth.chain_id,
            "nonce": self.web3.eth.get_transaction_count(funder.address, "latest"),
            "to": address,
            "value": FUNDING_WEI,
            "gas": 21_000,
            "maxFeePerGas": 2 * base_fee + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        signed = funder.sign_transaction(tx)
        self.web3.eth.send_raw_transaction(signed.raw_transaction)

    def _ensure_contract(self) -> str:
        sender = bytes.fromhex(self.account.address[2:])
        address = Web3.to_checksum_address(keccak(rlp.encode([sender, 0]))[12:])
        if self.web3.eth.get_code(address):
            return address
        if self.web3.eth.get_transaction_count(self.account.address, "latest") != 0:
            raise EmbeddedChainError("the anchorer's first transaction was not the deployment")
        deployed = deploy_anchor_contract(self.web3, self.account, poll_s=0.0)
        if deployed != address:
            raise EmbeddedChainError("contract deployed at an unexpected address")
        return deployed
