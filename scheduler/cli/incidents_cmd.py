"""``cntrust incidents`` and ``cntrust quarantine``: the whole-network layer's incidents and
the quarantines of every source (trust, incident, attestation, analyst), for analysts.

Every command talks to the API (``--server``/``--token``); bad input is refused before
anything is sent (exit 2), API errors print the problem (exit 1), an unreachable server
exits 3. Revocations cannot be undone here: a revoked certificate stays revoked, the node
comes back by re-enrolling with a new join token (``cntrust token create`` /
``cntrust node enroll``).
"""

from __future__ import annotations

from datetime import UTC, datetime
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

incidents_app = typer.Typer(no_args_is_help=True, help="Correlated incidents and responses.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Quarantined nodes: list, add, release.")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _request(server: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        return client.request(method, path, **kwargs)


def incident_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "kind", "sev", "alerts", "nodes", "sources", "response", "last seen")
    for i in rows:
        response = i.get("response") or {}
        acted = response.get("action", "-")
        if response.get("quarantined"):
            acted += f" ({', '.join(response['quarantined'])})"
        table.add_row(
            i["id"],
            i["kind"].removeprefix("ids.network."),
            str(i["severity"]),
            str(i["alert_count"]),
            ", ".join(i["node_ids"])[:40] or "-",
            str(len(i["sources"])),
            acted,
            _when(i["last_seen"]),
        )
    return table


def quarantine_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "node", "source", "reason", "requeued", "at", "released")
    for q in rows:
        released = "-" if q["active"] else f"{q['released_by']}: {q['release_note']}"
        table.add_row(
            str(q["id"]),
            q["node_id"],
            q["source"],
            q["reason"][:60],
            str(q["requeued"]),
            _when(q["at"]),
            released[:50],
        )
    return table


@incidents_app.command("list")
def incidents_list(
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    kind: Annotated[str | None, typer.Option(help="e.g. ids.network.ddos")] = None,
    node: Annotated[str | None, typer.Option(help="Only incidents naming this node.")] = None,
    severity: Annotated[int | None, typer.Option(min=1, max=4, help="At most (1 high).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    json_out: JsonOut = False,
) -> None:
    """List incidents, most recently active first."""
    params: dict[str, Any] = {"limit": limit}
    if kind is not None:
        if not kind.startswith("ids.network."):
            fail(f"unknown incident kind {kind!r}: kinds start with ids.network.")
        params["kind"] = kind
    if node is not None:
        params["node"] = node
    if severity is not None:
        params["severity"] = severity
    rows = _request(server, token, "GET", "/v1/incidents", params=params)
    if json_out:
        print_json(rows)
    else:
        console.print(incident_table(rows))


@incidents_app.command("show")
def incidents_show(
    incident_id: str, server: Server = DEFAULT_SERVER, token: Token = "", json_out: JsonOut = False
) -> None:
    """Show one incident: its nodes, alerts, reasons and the response taken."""
    if not incident_id.startswith("inc-") or len(incident_id) > 64:
        fail(f"not an incident id: {incident_id!r} (ids look like inc-0123abcd...)")
    row = _request(server, token, "GET", f"/v1/incidents/{incident_id}")
    if json_out:
        print_json(row)
        return
    console.print(incident_table([row]))
    for reason in row["reasons"]:
        console.print(f"  why: {reason}", highlight=False)
    for reason in (row.get("response") or {}).get("reasons", []):
        console.print(f"  response: {reason}", highlight=False)
    console.print(f"  alerts: {', '.join(row['alert_ids']) or '-'}", highlight=False)
    if row.get("quarantines"):
        console.print(quarantine_table(row["quarantines"]))


@quarantine_app.command("list")
def quarantine_list(
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    node: Annotated[str | None, typer.Option(help="Only this node.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include released ones.")] = False,
    json_out: JsonOut = False,
) -> None:
    """List active quarantines (with --all, released ones too)."""
    params: dict[str, Any] = {"include_released": all_}
    if node is not None:
        params["node"] = node
    rows = _request(server, token, "GET", "/v1/quarantines", params=params)
    if json_out:
        print_json(rows)
    else:
        console.print(quarantine_table(rows))


@quarantine_app.command("add")
def quarantine_add(
    node_id: str,
    reason: Annotated[str, typer.Option(help="Why (kept with the quarantine).")],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    json_out: JsonOut = False,
) -> None:
    """Quarantine a node by hand: cordoned, its work rescheduled."""
    if not reason.strip():
        fail("--reason must not be empty")
    row = _request(
        server, token, "POST", f"/v1/nodes/{node_id}/quarantine", json={"reason": reason}
    )
    if json_out:
        print_json(row)
    else:
        console.print(
            f"node [bold]{row['node_id']}[/] quarantined (id {row['id']}), "
            f"{row['requeued']} tasks rescheduled"
        )


@quarantine_app.command("release")
def quarantine_release(
    quarantine_id: int,
    note: Annotated[str, typer.Option(help="Why it is safe again (required).")],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    json_out: JsonOut = False,
) -> None:
    """Release one quarantine with a note; the node is back online when none remains."""
    if not note.strip():
        fail("--note must not be empty")
    if quarantine_id < 1:
        fail("quarantine ids are positive integers")
    row = _request(
        server, token, "POST", f"/v1/quarantines/{quarantine_id}/release", json={"note": note}
    )
    if json_out:
        print_json(row)
        return
    still = row.get("node_still_quarantined_by") or []
    state = f"still quarantined by {', '.join(still)}" if still else "back online"
    console.print(f"quarantine {row['id']} released; node [bold]{row['node_id']}[/] {state}")
