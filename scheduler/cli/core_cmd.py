"""``cntrust tenant|task|node|admin`` commands."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scheduler.cli.common import (
    DEFAULT_DATA_DIR,
    DEFAULT_SERVER,
    DataDir,
    JsonOut,
    Server,
    Token,
    api_errors,
    console,
    fail,
    parse_duration,
    print_json,
    with_local,
)
from scheduler.runtime import run_event_loop

tenant_app = typer.Typer(no_args_is_help=True, help="Manage tenants (local admin).")
task_app = typer.Typer(no_args_is_help=True, help="Submit and inspect tasks.")
node_app = typer.Typer(no_args_is_help=True, help="Nodes: list, show, run an agent.")
admin_app = typer.Typer(no_args_is_help=True, help="Administrator credentials (local admin).")

NAME_HELP = "lowercase letters, digits, '.', '_' and '-' (max 63)"


def _check_name(name: str) -> None:
    import re

    from scheduler.schemas import NAME_PATTERN

    if not re.match(NAME_PATTERN, name):
        fail(f"invalid name {name!r}: {NAME_HELP}")


# -- tenants -------------------------------------------------------------------
@tenant_app.command("add")
def tenant_add(name: str, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Register a tenant."""
    _check_name(name)
    from scheduler import store

    def op(service: Any) -> None:
        now = service.clock()
        service.write_sync(lambda s: store.add_tenant(s, name, now))

    with_local(data_dir, op)
    console.print(f"tenant [bold]{name}[/] added")


@tenant_app.command("token")
def tenant_token(
    name: str,
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 10m.")] = "10m",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a bearer token for a tenant."""
    _check_name(name)
    lifetime = parse_duration(ttl)
    if lifetime.total_seconds() > 24 * 3600:
        fail("tenant tokens live at most 24h")
    from scheduler.app import issue_tenant_token

    token = with_local(data_dir, lambda service: issue_tenant_token(service, name, lifetime))
    typer.echo(token)


# -- admin ----------------------------------------------------------------------
@admin_app.command("token")
def admin_token(
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 1h.")] = "1h",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print an administrator bearer token."""
    lifetime = parse_duration(ttl)
    if lifetime.total_seconds() > 12 * 3600:
        fail("admin tokens live at most 12h")
    typer.echo(with_local(data_dir, lambda s: s.issue_token("admin", "admin", lifetime)))


def _call_api(
    server: str,
    token: str,
    fetch: Callable[[Any], Any],
    json_out: bool,
    render: Callable[[Any], Any],
) -> None:
    """Call the API, then print JSON (--json) or the human rendering."""
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        result = fetch(client)
    if json_out:
        print_json(result)
    else:
        console.print(render(result))


# -- tasks ------------------------------------------------------------------------
def _task_table(tasks: list[dict[str, Any]]) -> Table:
    table = Table("id", "tenant", "state", "node", "command", "reason")
    for t in tasks:
        table.add_row(
            t["id"][:12],
            t["tenant"],
            t["state"],
            t.get("node_id") or "-",
            " ".join(t["command"])[:40],
            (t.get("reason") or "")[:60],
        )
    return table


@task_app.command("submit")
def task_submit(
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    cpu: Annotated[float, typer.Option(help="CPU cores.")] = 1.0,
    memory: Annotated[int, typer.Option(help="Memory in MB.")] = 256,
    gpu: Annotated[int, typer.Option(help="GPUs.")] = 0,
    classification: Annotated[str, typer.Option(help="public|internal|secret")] = "public",
    region: Annotated[str | None, typer.Option(help="Data region constraint.")] = None,
    timeout: Annotated[float, typer.Option(help="Timeout in seconds.")] = 60.0,
    json_out: JsonOut = False,
) -> None:
    """Submit a task: cntrust task submit --token T -- echo hello"""
    from scheduler.client import Client

    if classification not in ("public", "internal", "secret"):
        fail("classification must be public, internal or secret")
    with api_errors(), Client(server, token) as client:
        task = client.submit(
            command,
            cpu=cpu,
            memory_mb=memory,
            gpu=gpu,
            classification=classification,
            region=region,
            timeout_s=timeout,
        )
    if json_out:
        print_json(task)
    else:
        console.print(f"task [bold]{task['id']}[/] {task['state']}: {task['reason']}")


@task_app.command("show")
def task_show(
    task_id: str, server: Server = DEFAULT_SERVER, token: Token = "", json_out: JsonOut = False
) -> None:
    """Show a task with its transitions."""
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        task = client.task(task_id)
    if json_out:
        print_json(task)
        return
    console.print(_task_table([task]))
    events = Table("at", "from", "to", "node", "reason", title="transitions")
    for e in task.get("events", []):
        events.add_row(
            f"{e['at']:.3f}",
            e["from_state"] or "-",
            e["to_state"],
            e["node_id"] or "-",
            e["reason"],
        )
    console.print(events)


@task_app.command("list")
def task_list(
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    state: Annotated[str | None, typer.Option(help="Filter by state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    json_out: JsonOut = False,
) -> None:
    """List tasks (tenants see their own)."""
    _call_api(server, token, lambda c: c.tasks(state=state, limit=limit), json_out, _task_table)


@task_app.command("cancel")
def task_cancel(
    task_id: str, server: Server = DEFAULT_SERVER, token: Token = "", json_out: JsonOut = False
) -> None:
    """Cancel a task."""
    _call_api(
        server,
        token,
        lambda c: c.cancel(task_id),
        json_out,
        lambda task: f"task [bold]{task['id']}[/] {task['state']}",
    )


# -- nodes ------------------------------------------------------------------------
def _node_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table("id", "operator", "region", "status", "cpu", "memory", "accelerators", "tasks")
    for n in nodes:
        accels = ", ".join(f"{a['count']}x{a['kind']}:{a['model']}" for a in n["accelerators"])
        table.add_row(
            n["id"],
            n["operator"],
            n["region"],
            n["status"],
            f"{n['cpu_used']:g}/{n['cpu_cores']:g}",
            f"{n['memory_used_mb']}/{n['memory_mb']} MB",
            accels or "-",
            str(n["active_tasks"]),
        )
    return table


@node_app.command("list")
def node_list(
    server: Server = DEFAULT_SERVER, token: Token = "", json_out: JsonOut = False
) -> None:
    """List nodes."""
    _call_api(server, token, lambda c: c.nodes(), json_out, _node_table)


@node_app.command("show")
def node_show(
    node_id: str, server: Server = DEFAULT_SERVER, token: Token = "", json_out: JsonOut = False
) -> None:
    """Show one node: its registration, identity, attestation status and history."""
    from scheduler.cli.attest_cmd import render_attestation, show_attestation

    def fetch(client: Any) -> dict[str, Any]:
        node = client.node(node_id)
        attestation = show_attestation(client, node_id)
        return {**node, "attestation": attestation} if attestation else node

    def render(node: dict[str, Any]) -> Any:
        from rich.console import Group

        attestation = node.pop("attestation", None)
        parts = [_node_table([node])]
        return Group(*parts, *(render_attestation(attestation) if attestation else []))

    _call_api(server, token, fetch, json_out, render)


@node_app.command("token")
def node_token(
    name: str,
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 15m.")] = "15m",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a one-node registration token (local admin)."""
    _check_name(name)
    lifetime = parse_duration(ttl)
    if lifetime.total_seconds() > 3600:
        fail("registration tokens live at most 1h")
    typer.echo(with_local(data_dir, lambda s: s.issue_token("node-register", name, lifetime)))


@node_app.command("agent")
def node_agent(
    server: Server = DEFAULT_SERVER,
    directory: Annotated[Path, typer.Option("--dir", help="The agent's own data dir.")] = Path(
        ".cntrust-node"
    ),
    token: Annotated[
        str | None, typer.Option("--token", help="Registration token (first start).")
    ] = None,
    cpu: Annotated[float, typer.Option(help="CPU cores offered.", min=0.1)] = 1.0,
    memory: Annotated[int, typer.Option(help="Memory offered, MB.", min=16)] = 1024,
    gpu: Annotated[int, typer.Option(help="GPUs offered.", min=0)] = 0,
    gpu_model: Annotated[str, typer.Option(help="GPU model.")] = "generic",
    fpga: Annotated[int, typer.Option(help="FPGAs offered.", min=0)] = 0,
    region: Annotated[str, typer.Option(help="Region.")] = "local",
    operator: Annotated[str, typer.Option(help="Operator.")] = "local",
    slots: Annotated[int | None, typer.Option(help="Concurrent tasks.", min=1)] = None,
    ca_bundle: Annotated[
        Path | None,
        typer.Option("--ca-bundle", help="PEM roots to verify an https:// server."),
    ] = None,
) -> None:
    """Run a node agent: register, heartbeat, pull and run tasks (no inbound port).

    With an https:// server and a --dir holding an enrolled node (cntrust node enroll),
    the agent presents its X.509-SVID (mTLS), needs no --token and renews the SVID at
    half-life; otherwise it authenticates with the bearer token given by --token."""
    from scheduler.agent import Agent, AgentConfig, AgentError
    from scheduler.agent_identity import is_enrolled

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    accels: list[dict[str, Any]] = []
    if gpu:
        accels.append({"kind": "gpu", "model": gpu_model, "count": gpu})
    if fpga:
        accels.append({"kind": "fpga", "model": "generic", "count": fpga})
    from identity.errors import IdentityError

    try:
        agent = Agent(
            AgentConfig(
                server=server,
                data_dir=directory,
                registration_token=token,
                cpu_cores=cpu,
                memory_mb=memory,
                accelerators=accels,
                region=region,
                operator=operator,
                slots=slots,
                ca_bundle=str(ca_bundle) if ca_bundle is not None else None,
                mtls=server.startswith("https://") and is_enrolled(directory),
            )
        )
    except IdentityError as exc:
        fail(f"cannot load the node's credentials from {directory}: {exc}", 1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.stop)
        await agent.run()

    try:
        run_event_loop(main())
    except AgentError as exc:
        fail(str(exc), 1)
