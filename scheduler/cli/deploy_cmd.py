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
) -> None:
    """Start the scheduler API, N local node agents and every embedded default."""
    from scheduler.local import Deployment, default_nodes

    settings = local_settings(data_dir)
    deployment = Deployment(
        settings, host=host, port=port, nodes=default_nodes(nodes), layers=layers
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
