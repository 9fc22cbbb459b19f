"""``cntrust audit``: fetch and verify provenance proof bundles offline.

``cntrust audit verify FILE --log-key VKEY [--statement-key VKEY] [--rpc URL]``
``cntrust audit bundle TASK_ID --server URL --token T -o FILE``
``cntrust audit key --server URL``
``cntrust audit monitor --server URL --state FILE [--interval S] [--once]`` (see
:mod:`scheduler.cli.audit_monitor`)

Exit codes: 0 every step held; 1 the bundle failed a step (named on stderr); 2 bad usage
(unreadable file or key, on-chain check requested but unavailable); 3 server unreachable
(`bundle`, `key`). The library is
imported inside the command so the CLI starts fast and the verifier never loads the web
stack; ``audit_chain.anchoring`` (web3) is imported only with ``--rpc``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Callable

    from audit_chain.bundle import Anchor

app = typer.Typer(
    no_args_is_help=True,
    help="Provenance log: verify a task's proof bundle offline.",
    pretty_exceptions_enable=False,
)

_err = Console(stderr=True, highlight=False)
_out = Console(highlight=False)
_MAX_KEY_FILE_BYTES = 4096


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=code)


def _read_key(value: str, option: str) -> str:
    """A vkey given inline, or the path of a file that holds one."""
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:
        is_file = False
    if not is_file:
        return value.strip()
    if path.stat().st_size > _MAX_KEY_FILE_BYTES:
        raise _fail(f"{option}: {value} is too large to be a verifier key")
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{option}: cannot read {value}: {exc}") from exc


def _anchor_checker(rpc: str) -> Callable[[Anchor], None]:
    try:
        anchoring = importlib.import_module("audit_chain.anchoring")
    except ModuleNotFoundError as exc:
        if exc.name not in ("audit_chain.anchoring", "web3"):
            raise
        raise _fail(
            f"--rpc given but the on-chain check is unavailable ({exc.name} is not installed); "
            "run without --rpc to verify offline"
        ) from exc
    factory = getattr(anchoring, "make_anchor_checker", None)
    if factory is None:
        raise _fail("--rpc given but audit_chain.anchoring has no make_anchor_checker()")
    checker: Callable[[Anchor], None] = factory(rpc)
    return checker


@app.callback()
def audit() -> None:
    """Provenance log: verify a task's proof bundle offline."""


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="Proof bundle (JSON) to verify.")],
    log_key: Annotated[
        str, typer.Option("--log-key", help="The log's verifier key (vkey text or a file).")
    ],
    statement_key: Annotated[
        str | None,
        typer.Option("--statement-key", help="Key that signs records (default: the log key)."),
    ] = None,
    rpc: Annotated[
        str | None, typer.Option("--rpc", help="EVM JSON-RPC URL: also check the anchor on chain.")
    ] = None,
    allow_unanchored: Annotated[
        bool, typer.Option("--allow-unanchored", help="Accept a bundle without an anchor.")
    ] = False,
) -> None:
    """Verify a proof bundle: signatures, inclusion, consistency to the anchor, chain."""
    from audit_chain.bundle import MAX_BUNDLE_BYTES, parse_bundle
    from audit_chain.checkpoint import open_checkpoint
    from audit_chain.errors import BundleVerificationError
    from audit_chain.note import NoteVerifier
    from audit_chain.statement import parse_statement
    from audit_chain.verify import verify_bundle

    try:
        with file.open("rb") as fh:
            data = fh.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from exc
    vkey = _read_key(log_key, "--log-key")
    svkey = None if statement_key is None else _read_key(statement_key, "--statement-key")
    check_anchor = None if rpc is None else _anchor_checker(rpc)

    try:
        verify_bundle(
            data, vkey, svkey, check_anchor=check_anchor, require_anchor=not allow_unanchored
        )
    except BundleVerificationError as exc:
        _err.print(f"[bold red]FAILED[/] at step [bold]{exc.step}[/]: {exc.detail}", soft_wrap=True)
        raise typer.Exit(code=2 if exc.step == "keys" else 1) from None

    # Every step held: summarise what was proven.
    bundle = parse_bundle(data)
    statement = parse_statement(bundle.envelope.payload)
    checkpoint = open_checkpoint(bundle.checkpoint, NoteVerifier.from_vkey(vkey))
    table = Table(title="Proof bundle verified", show_header=False, title_justify="left")
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("record", f"{statement.predicate_type}")
    table.add_row("subject", statement.subject_name)
    table.add_row("leaf index", str(bundle.leaf_index))
    table.add_row("checkpoint", f"{checkpoint.origin} @ {checkpoint.tree_size} entries")
    anchor = bundle.anchor
    if anchor is None:
        table.add_row("anchor", "none (accepted with --allow-unanchored)")
    else:
        table.add_row(
            "anchor",
            f"chain {anchor.chain_id}, contract {anchor.contract}, block {anchor.block_number}, "
            f"tree size {anchor.tree_size}",
        )
        table.add_row("tx", anchor.tx_hash)
    if anchor is None:
        chain = "not applicable"
    elif rpc is None:
        chain = "NOT checked (no --rpc given): the anchor was verified offline only"
    else:
        chain = f"checked on chain via {rpc}"
    table.add_row("chain", chain)
    _out.print(table)


_MAX_FETCH_BYTES = 256 * 1024


def _fetch(server: str, path: str, token: str | None) -> bytes:
    """GET ``server + path``; exit 3 when unreachable, 1 on an error answer."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=server, headers=headers, timeout=30.0) as http:
            resp = http.get(path)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the server: {type(exc).__name__}: {exc}", 3) from exc
    if resp.status_code >= 400:
        try:
            detail = str(resp.json().get("detail", ""))
        except ValueError:
            detail = resp.text[:300]
        raise _fail(f"{resp.status_code} {resp.reason_phrase}: {detail}", 1)
    if len(resp.content) > _MAX_FETCH_BYTES:
        raise _fail(f"the server's answer to {path} is too large ({len(resp.content)} bytes)", 1)
    return bytes(resp.content)


@app.command()
def bundle(
    task_id: Annotated[str, typer.Argument(help="Task whose proof bundle to fetch.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the bundle.")],
    server: Annotated[
        str, typer.Option("--server", envvar="CNTRUST_SERVER", help="Scheduler API URL.")
    ] = "http://127.0.0.1:8440",
    token: Annotated[
        str | None, typer.Option("--token", envvar="CNTRUST_TOKEN", help="Bearer token.")
    ] = None,
) -> None:
    """Fetch a task's proof bundle (JSON) for offline verification with `audit verify`."""
    from audit_chain.bundle import parse_bundle
    from audit_chain.errors import AuditChainError

    if not task_id or len(task_id) > 40 or not task_id.replace("-", "").isalnum():
        raise _fail(f"invalid task id {task_id!r}")
    data = _fetch(server, f"/v1/tasks/{task_id}/bundle", token)
    try:
        parsed = parse_bundle(data)
    except AuditChainError as exc:
        raise _fail(f"the server sent something that is not a proof bundle: {exc}", 1) from exc
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc.strerror or exc}") from exc
    anchored = "anchored" if parsed.anchor is not None else "not anchored yet"
    _out.print(f"wrote {output} (leaf {parsed.leaf_index}, {len(data)} bytes, {anchored})")


@app.command()
def key(
    server: Annotated[
        str, typer.Option("--server", envvar="CNTRUST_SERVER", help="Scheduler API URL.")
    ] = "http://127.0.0.1:8440",
) -> None:
    """Print the log's verifier key (signed-note vkey) as served by the scheduler."""
    from audit_chain.errors import MalformedKeyError
    from audit_chain.note import NoteVerifier

    text = _fetch(server, "/log/key", None).decode("utf-8", errors="replace").strip()
    try:
        NoteVerifier.from_vkey(text)
    except MalformedKeyError as exc:
        raise _fail(f"the server's log key is malformed: {exc}", 1) from exc
    typer.echo(text)


@app.command()
def monitor(
    state: Annotated[Path, typer.Option("--state", help="Monitor state file (JSON, 0600).")],
    server: Annotated[
        str, typer.Option("--server", envvar="CNTRUST_SERVER", help="Scheduler API URL.")
    ] = "http://127.0.0.1:8440",
    log_key: Annotated[
        str | None,
        typer.Option("--log-key", help="The log's verifier key (default: pinned, else fetched)."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between polls.")
    ] = 30.0,
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    recheck_entries: Annotated[
        bool, typer.Option("--recheck-entries", help="Re-read every entry on every poll.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="CNTRUST_TOKEN", help="Token to POST an alert with."),
    ] = None,
) -> None:
    """Follow the log: every checkpoint must extend the last one seen, entries must match."""
    import time

    from audit_chain import AuditChainError
    from scheduler.cli.audit_monitor import (
        MonitorUsageError,
        ServerUnreachable,
        http_fetch,
        poll,
        post_alert,
    )

    key = None if log_key is None else _read_key(log_key, "--log-key")
    fetch, close = http_fetch(server)
    try:
        while True:
            try:
                observation, how = poll(fetch, state, key, recheck_entries=recheck_entries)
            except MonitorUsageError as exc:
                raise _fail(str(exc)) from exc
            except ServerUnreachable as exc:
                if once:
                    raise _fail(f"cannot reach the log at {server}: {exc}", 3) from exc
                _err.print(f"[yellow]warning:[/] log unreachable: {exc}")
            except AuditChainError as exc:
                reason = getattr(exc, "reason", "failed")
                _err.print(
                    f"[bold red]LOG MISBEHAVED[/] ({type(exc).__name__}, {reason}): {exc}",
                    soft_wrap=True,
                )
                if token:
                    _err.print(post_alert(server, token, exc))
                raise typer.Exit(code=1) from None
            else:
                if how == "tofu":
                    _err.print("[yellow]note:[/] log key fetched from the server and pinned")
                cp = observation.current
                _out.print(
                    f"ok: {cp.origin} at {cp.tree_size} entries "
                    f"(+{observation.new_entries}), consistent with the last checkpoint seen"
                )
            if once:
                return
            time.sleep(interval)
    finally:
        close()
