"""``cntrust up`` and ``cntrust demo``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli.common import DEFAULT_DATA_DIR, DataDir, console, fail, local_settings


def up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8440,
    nodes: Annotated[int, typer.Option(help="Local node agents to start.", min=0, max=64)] = 3,
    layers: Annotated[
        bool,
        typer.Option(
            "--layers/--no-layers",
            help="Security layers (Cedar, identity, trust, provenance); --no-layers runs the "
            "bare reference scheduler, e.g. to measure their overhead.",
        ),
    ] = True,
    without: Annotated[
        list[str] | None,
        typer.Option(
            "--without",
            help="Leave one security layer out (repeatable): identity, attestation, policy, "
            "trust, provenance, ids — e.g. to measure its cost.",
        ),
    ] = None,
    agent_auth: Annotated[
        str,
        typer.Option(
            "--agent-auth",
            help="How local agents authenticate with the layers on: mtls (enroll, X.509-SVID) "
            "or token (bearer tokens over plain HTTP, e.g. to measure mTLS).",
        ),
    ] = "mtls",
    chain_rpc: Annotated[
        str | None,
        typer.Option(
            "--chain-rpc", help="Anchor on this EVM chain (JSON-RPC URL), not the embedded one."
        ),
    ] = None,
    chain_key: Annotated[
        Path | None,
        typer.Option("--chain-key", help="Anchorer key file (hex secp256k1 key, mode 0600)."),
    ] = None,
    contract: Annotated[
        str | None,
        typer.Option("--contract", help="Anchor contract address (default: deploy one)."),
    ] = None,
) -> None:
    """Start the scheduler API, N local node agents and every embedded default."""
    from scheduler.local import Deployment, default_nodes

    if agent_auth not in ("mtls", "token"):
        fail(f"--agent-auth must be mtls or token, not {agent_auth!r}")
    if (chain_key is not None or contract is not None) and chain_rpc is None:
        fail("--chain-key and --contract go with --chain-rpc")
    if chain_rpc is not None and chain_key is None:
        fail("--chain-rpc needs --chain-key FILE (the anchorer's key)")
    if chain_rpc is not None and not layers:
        fail("--chain-rpc anchors the provenance log: it needs the layers")
    settings = local_settings(data_dir)
    if without:
        from scheduler.settings import LAYERS

        unknown = sorted(set(without) - set(LAYERS))
        if unknown:
            fail(f"unknown layer {', '.join(unknown)}; the layers are {', '.join(LAYERS)}")
        if not layers:
            fail("--without goes with the layers on (drop --no-layers)")
        settings.layers_off = sorted({*settings.layers_off, *without})
    deployment = Deployment(
        settings,
        host=host,
        port=port,
        nodes=default_nodes(nodes),
        layers=layers,
        agent_mtls=agent_auth == "mtls",
    )
    deployment.chain_rpc, deployment.chain_key, deployment.chain_contract = (
        chain_rpc,
        chain_key,
        contract,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        deployment.start()
    except RuntimeError as exc:
        deployment.stop()
        fail(str(exc), 1)
    from scheduler.runtime import tune_for_service

    tune_for_service()
    console.print(f"[bold green]cntrust is up[/] on {deployment.url}")
    console.print(f"  API docs      {deployment.url}/docs")
    console.print(f"  data dir      {settings.data_dir.resolve()}")
    console.print(f"  admin token   {deployment.admin_token_path.resolve()} (mode 0600)")
    console.print(f"  node agents   {', '.join(deployment.agents) or 'none'}")
    if deployment.tls_url:
        console.print(f"  agents (mTLS) {deployment.tls_url} (X.509-SVIDs)")
    if deployment.provenance is not None:
        chain = chain_rpc or "embedded (data dir)"
        anchorer = getattr(deployment.provenance, "_anchorer", None)
        where = f", contract {anchorer.contract_address}" if anchorer is not None else ""
        console.print(f"  anchoring     {chain}{where}")
    console.print("Ctrl-C stops everything.")
    stop.wait()
    console.print("stopping...")
    deployment.stop()
    console.print("stopped.")


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where to put the demo deployment (default: a temp dir)."),
    ] = None,
) -> None:
    """Start a fresh local deployment, run a scripted scenario, report, stop."""
    from scheduler.demo import run_demo

    ok = run_demo(data_dir, console)
    raise typer.Exit(0 if ok else 1)
