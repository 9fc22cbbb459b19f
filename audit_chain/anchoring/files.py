"""Anchorer key files and the persisted anchoring state, on disk.

Invariants:
- a key file holds one 32-byte secp256k1 private key as hex on one line, and is
  created with mode 0600; `load_anchorer_key` refuses a file others can read;
- the state file is replaced atomically (write to a temporary file, fsync,
  rename, fsync the directory), so a crash leaves the old or the new state.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from audit_chain.anchoring._limits import cap_recursion_limit
from audit_chain.anchoring.errors import AnchorRecordError
from audit_chain.anchoring.records import MAX_STATE_JSON_BYTES, AnchorState

cap_recursion_limit()  # py_ecc raised it to 100,000 on import: see _limits

MAX_KEY_FILE_BYTES = 256


def write_anchorer_key(path: Path, private_key: bytes) -> LocalAccount:
    """Create `path` (mode 0600, must not exist) holding `private_key`; return its account.

    Raises:
        AnchorRecordError: the key is not 32 bytes or is not a valid secp256k1 key.
        FileExistsError: `path` exists already.
    """
    if len(private_key) != 32:
        raise AnchorRecordError("anchorer key must be 32 bytes", field="key")
    try:
        account: LocalAccount = Account.from_key(private_key)
    except (ValueError, TypeError) as exc:
        raise AnchorRecordError(f"invalid anchorer key: {exc}", field="key") from exc
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, ("0x" + private_key.hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)
    return account


def load_anchorer_key(path: Path) -> LocalAccount:
    """Read an anchorer key file written by `write_anchorer_key` (or by hand, same format).

    Raises:
        AnchorRecordError: the file is readable by group/others, too large, or not a key.
        OSError: the file cannot be read.
    """
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AnchorRecordError(
            f"anchorer key file {path} must not be accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}; use chmod 600)",
            field="key",
        )
    data = path.read_bytes()[: MAX_KEY_FILE_BYTES + 1]
    if len(data) > MAX_KEY_FILE_BYTES:
        raise AnchorRecordError("anchorer key file too large", field="key")
    text = data.decode("ascii", errors="replace").strip()
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise AnchorRecordError("anchorer key file must hold hex", field="key") from exc
    if len(key) != 32:
        raise AnchorRecordError("anchorer key must be 32 bytes", field="key")
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError) as exc:
        raise AnchorRecordError(f"invalid anchorer key: {exc}", field="key") from exc
    return account


def save_state_file(path: Path, state: AnchorState) -> None:
    """Atomically replace `path` with `state` as JSON."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, state.to_json().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def load_state_file(path: Path) -> AnchorState | None:
    """The state saved at `path`, or None when there is none.

    Raises:
        AnchorRecordError: the file is too large or malformed.
    """
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_STATE_JSON_BYTES + 1)
    except FileNotFoundError:
        return None
    return AnchorState.from_json(data)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
