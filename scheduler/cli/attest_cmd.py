"""``cntrust refvalues add|list|retire`` (admin, over the API), ``cntrust node attest``
(on the node: one attestation round) and the attestation part of ``cntrust node show``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scheduler.cli.common import (
    DEFAULT_SERVER,
    JsonOut,
    Server,
    Token,
    api_errors,
    console,
    fail,
    print_json,
)

app = typer.Typer(no_args_is_help=True, help="Signed, versioned reference values (admin).")


def _client(server: str, token: str) -> Any:
    from scheduler.client import Client

    return Client(server, token)


def _refset_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "state", "components", "added", "by", "window ends", "retired")
    for r in rows:
        comps = ", ".join(sorted((r.get("values") or {}).get("components", {})))
        table.add_row(
            r["id"],
            r["state"],
            comps or "-",
            f"{r['added_at']:.0f}",
            r["added_by"],
            f"{r['window_ends_at']:.0f}" if r["window_ends_at"] else "-",
            f"{r['retired_at']:.0f}" if r["retired_at"] else "-",
        )
    return table


@app.command("add")
def refvalues_add(
    file: Annotated[Path, typer.Argument(help="JSON: node_class, version, components, ...")],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    json_out: JsonOut = False,
) -> None:
    """Sign and add a reference-value set; the class's current version stays accepted for
    the update window."""
    try:
        values = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {file}: {exc}")
    if not isinstance(values, dict):
        fail(f"{file} must hold a JSON object")
    with api_errors(), _client(server, token) as client:
        row = client.request("POST", "/v1/refvalues", json={"values": values})
    if json_out:
        print_json(row)
    else:
        console.print(f"reference values [bold]{row['id']}[/] added ({row['state']})")


@app.command("list")
def refvalues_list(
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    node_class: Annotated[str | None, typer.Option("--class", help="One node class.")] = None,
    json_out: JsonOut = False,
) -> None:
    """List reference-value sets with their state (current, update-window, retired...)."""
    params = {"node_class": node_class} if node_class else {}
    with api_errors(), _client(server, token) as client:
        rows = client.request("GET", "/v1/refvalues", params=params)
    if json_out:
        print_json(rows)
    else:
        console.print(_refset_table(rows))


@app.command("retire")
def refvalues_retire(
    node_class: str,
    version: Annotated[int, typer.Argument(min=1)],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    json_out: JsonOut = False,
) -> None:
    """Stop accepting one version at once."""
    with api_errors(), _client(server, token) as client:
        row = client.request("POST", f"/v1/refvalues/{node_class}/{version}/retire")
    if json_out:
        print_json(row)
    else:
        console.print(f"reference values [bold]{row['id']}[/] {row['state']}")


def node_attest(
    server: Server = DEFAULT_SERVER,
    directory: Annotated[Path, typer.Option("--dir", help="The agent's data dir.")] = Path(
        ".cntrust-node"
    ),
    json_out: JsonOut = False,
) -> None:
    """One attestation round from this node (nonce, measure, signed EAT); print the result.
    Exits 1 when the result does not permit work, 2 on a refusal or bad state."""
    import httpx

    from scheduler.attest_agent import Attester, AttestError

    state_path = directory / "agent.json"
    try:
        state = json.loads(state_path.read_text())
        node_id, session = str(state["node_id"]), str(state["token"])
    except (OSError, ValueError, KeyError, TypeError):
        fail(f"no agent state in {directory} (start the agent there first)")
    accelerators: list[dict[str, Any]] = []

    async def once() -> dict[str, Any]:
        attester = Attester(directory, accelerators=accelerators)
        async with httpx.AsyncClient(base_url=server, timeout=30) as client:
            headers = {"Authorization": f"Bearer {session}"}
            return await attester.attest_once(client, headers, node_id)

    try:
        result = asyncio.run(once())
    except AttestError as exc:
        fail(f"attestation refused: {exc}")
    except httpx.HTTPError as exc:
        fail(f"cannot reach the server: {type(exc).__name__}", 3)
    if json_out:
        print_json(result)
    else:
        colour = {"affirming": "green", "warning": "yellow"}.get(result["status"], "red")
        console.print(
            f"node [bold]{node_id}[/]: [{colour}]{result['status']}[/] "
            f"(result {result['result_id']}, expires {result['expires_at']:.0f})"
        )
        for claim, reasons in sorted(result["reasons"].items()):
            for reason in reasons:
                console.print(f"  {claim}: {reason}", highlight=False)
    if not result["permits_work"]:
        raise typer.Exit(1)


def show_attestation(client: Any, node_id: str) -> dict[str, Any] | None:
    """The node's identity and attestation (None where the layer is off)."""
    from scheduler.client import ApiError

    try:
        return dict(client.request("GET", f"/v1/attestation/nodes/{node_id}"))
    except ApiError as exc:
        if exc.status == 404 and "not enabled" in exc.detail:
            return None
        raise


def render_attestation(body: dict[str, Any]) -> list[Any]:
    ident, att = body["identity"], body["attestation"]
    certs = ", ".join(c["spiffe_id"] for c in ident["certificates"]) or "not enrolled (no SVID)"
    key = ident["attestation_key"]
    lines: list[Any] = [
        f"identity: operator {ident['operator']}; {certs}"
        + ("; [red]REVOKED[/]: " + str(ident["revocation_reason"]) if ident["revoked"] else ""),
        "attestation key: "
        + (f"{key['alg']} {key['kid']}" + (" + TPM AK" if key["tpm"] else "") if key else "none")
        + ("; TPM AK from enrollment (quotes)" if ident.get("tpm_enrolled") else ""),
        f"attestation: {att['status'] or 'missing'} (result {att['result_id'] or '-'}); "
        + ("permits work" if att["permits_work"] else f"[red]excluded[/]: {att['exclusion']}"),
    ]
    table = Table("issued", "status", "evidence", "reference values", "reasons", title="history")
    for h in body["history"]:
        reasons = "; ".join(r for rs in h["reasons"].values() for r in rs)
        table.add_row(
            f"{h['issued_at']:.0f}",
            h["status"],
            h["evidence_type"],
            h["reference_values_id"] or "-",
            reasons[:90],
        )
    lines.append(table)
    return lines
