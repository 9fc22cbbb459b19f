"""``cntrust alerts``: review, triage, suppress and export IDS alerts; mint sensor tokens.

Every command but ``sensor-token`` talks to the API (``--server``/``--token``); bad input
is refused before anything is sent (exit 2), API errors print the problem (exit 1), an
unreachable server exits 3.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
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

app = typer.Typer(no_args_is_help=True, help="Review, triage, suppress and export IDS alerts.")

STATES = ("new", "acknowledged", "escalated", "closed")
SENSOR_TOKEN_MAX_S = 24 * 3600

Severity = Annotated[
    int | None,
    typer.Option(min=1, max=4, help="At most this severity (1 high): 2 = high and medium."),
]
States = Annotated[list[str] | None, typer.Option("--state", help="new|acknowledged|...")]
Nodes = Annotated[list[str] | None, typer.Option("--node", help="Node id (repeatable).")]
Layers = Annotated[list[str] | None, typer.Option("--layer", help="perimeter|element|network")]
Sources = Annotated[list[str] | None, typer.Option("--src", help="Source address.")]
Since = Annotated[str | None, typer.Option(help="Epoch seconds or ISO 8601 with offset.")]
Until = Annotated[str | None, typer.Option(help="Epoch seconds or ISO 8601 with offset.")]


def _params(
    severity: int | None,
    state: list[str] | None,
    node: list[str] | None,
    layer: list[str] | None,
    src: list[str] | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    for s in state or []:
        if s not in STATES:
            fail(f"unknown state {s!r}: use one of {', '.join(STATES)}")
    params: dict[str, Any] = {
        "severity": severity,
        "state": state or None,
        "node": node or None,
        "layer": layer or None,
        "src": src or None,
        "since": since,
        "until": until,
    }
    return {k: v for k, v in params.items() if v is not None}


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _alert_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "sev", "count", "state", "signature", "src", "dst", "node", "last seen")
    for a in rows:
        node = a.get("node") or {}
        where = a.get("node_id") or "-"
        if node:
            where = f"{where} ({node['operator_id']}/{node['region']}, {node['status']})"
        dst = a.get("dest_ip") or "-"
        if a.get("dest_port") is not None:
            dst = f"{dst}:{a['dest_port']}"
        table.add_row(
            a["id"][:12],
            str(a["severity"]),
            str(a["count"]),
            a["state"],
            f"{a['signature_id']} {a['signature']}"[:50],
            a.get("src_ip") or "-",
            dst,
            where,
            _when(a["last_seen"]),
        )
    return table


def _group_table(groups: list[dict[str, Any]]) -> Table:
    table = Table("source", "aggregates", "events", "highest sev", "signatures", "nodes")
    for g in groups:
        table.add_row(
            g["src_ip"] or "-",
            str(g["aggregates"]),
            str(g["events"]),
            str(g["highest_severity"]),
            ", ".join(str(s) for s in g["signature_ids"])[:40],
            ", ".join(g["node_ids"])[:40] or "-",
        )
    return table


def _request(server: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        return client.request(method, path, **kwargs)


@app.command("list")
def alerts_list(
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    severity: Severity = None,
    state: States = None,
    node: Nodes = None,
    layer: Layers = None,
    src: Sources = None,
    since: Since = None,
    until: Until = None,
    group_by: Annotated[str | None, typer.Option(help="'source' to group by address.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    json_out: JsonOut = False,
) -> None:
    """List aggregated alerts, most recently seen first."""
    params = _params(severity, state, node, layer, src, since, until)
    if group_by is not None:
        if group_by != "source":
            fail("--group-by takes only 'source'")
        params["group_by"] = "source"
    params["limit"] = limit
    rows = _request(server, token, "GET", "/v1/alerts", params=params)
    if json_out:
        print_json(rows)
    elif group_by:
        console.print(_group_table(rows))
    else:
        console.print(_alert_table(rows))


@app.command("show")
def alerts_show(
    alert_id: str, server: Server = DEFAULT_SERVER, token: Token = "", json_out: JsonOut = False
) -> None:
    """Show one alert: its aggregate, node, latest EVE record and triage history."""
    detail = _request(server, token, "GET", f"/v1/alerts/{alert_id}")
    if json_out:
        print_json(detail)
        return
    console.print(_alert_table([detail]))
    console.print(
        f"first seen {_when(detail['first_seen'])}, distinct sources "
        f"{detail['distinct_sources']}, category {detail['category'] or '-'}, "
        f"note: {detail['note'] or '-'}",
        highlight=False,
    )
    history = Table("at", "actor", "from", "to", "note", title="triage history")
    for h in detail["history"]:
        history.add_row(
            _when(h["at"]), h["actor"], h["from_state"] or "-", h["to_state"] or "-", h["note"]
        )
    console.print(history)


@app.command("triage")
def alerts_triage(
    alert_id: str,
    state: Annotated[str, typer.Argument(help="acknowledged|escalated|closed|new")],
    note: Annotated[str, typer.Option(help="Why (needed to close or reopen).")] = "",
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    json_out: JsonOut = False,
) -> None:
    """Move an alert to another triage state."""
    if state not in STATES:
        fail(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    row = _request(
        server, token, "POST", f"/v1/alerts/{alert_id}/triage", json={"state": state, "note": note}
    )
    if json_out:
        print_json(row)
    else:
        console.print(f"alert [bold]{row['id']}[/] is {row['state']}")


@app.command("suppress")
def alerts_suppress(
    reason: Annotated[str, typer.Option(help="Why these alerts are suppressed.")],
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 1h, 7d (max 90d).")] = "1d",
    sid: Annotated[int | None, typer.Option("--sid", min=0, help="Signature id.")] = None,
    src: Annotated[str | None, typer.Option(help="Source address or CIDR.")] = None,
    dst: Annotated[str | None, typer.Option(help="Destination address or CIDR.")] = None,
    node: Annotated[str | None, typer.Option(help="Node id.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner (default: token subject).")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    json_out: JsonOut = False,
) -> None:
    """Suppress alerts matching every field given, until the suppression expires."""
    import ipaddress

    if sid is None and src is None and dst is None and node is None:
        fail("give at least one of --sid, --src, --dst, --node")
    for name, value in (("--src", src), ("--dst", dst)):
        if value is not None:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                fail(f"{name} {value!r} is not an address or CIDR network")
    if not reason.strip():
        fail("--reason must not be empty")
    lifetime = parse_duration(ttl)
    body = {
        "signature_id": sid,
        "src_ip": src,
        "dest_ip": dst,
        "node_id": node,
        "owner": owner,
        "reason": reason,
        "ttl_s": lifetime.total_seconds(),
    }
    sup = _request(
        server,
        token,
        "POST",
        "/v1/suppressions",
        json={k: v for k, v in body.items() if v is not None},
    )
    if json_out:
        print_json(sup)
    else:
        console.print(f"suppression [bold]{sup['id']}[/] until {_when(sup['expires_at'])} UTC")


@app.command("suppressions")
def alerts_suppressions(
    include_expired: Annotated[bool, typer.Option("--all", help="Include expired.")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    json_out: JsonOut = False,
) -> None:
    """List suppressions."""
    params = {"include_expired": "true"} if include_expired else {}
    rows = _request(server, token, "GET", "/v1/suppressions", params=params)
    if json_out:
        print_json(rows)
        return
    table = Table("id", "sid", "src", "dst", "node", "owner", "expires", "active", "reason")
    for s in rows:
        table.add_row(
            s["id"],
            str(s["signature_id"] or "-"),
            s["src_ip"] or "-",
            s["dest_ip"] or "-",
            s["node_id"] or "-",
            s["owner"],
            _when(s["expires_at"]),
            "yes" if s["active"] else "no",
            s["reason"][:40],
        )
    console.print(table)


@app.command("unsuppress")
def alerts_unsuppress(sup_id: str, server: Server = DEFAULT_SERVER, token: Token = "") -> None:
    """Delete a suppression."""
    _request(server, token, "DELETE", f"/v1/suppressions/{sup_id}")
    console.print(f"suppression [bold]{sup_id}[/] deleted")


@app.command("export")
def alerts_export(
    out: Annotated[Path | None, typer.Option("--out", help="Write here (stdout without).")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    severity: Severity = None,
    state: States = None,
    node: Nodes = None,
    layer: Layers = None,
    src: Sources = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 10_000,
) -> None:
    """Export aggregated alerts as Suricata EVE JSON lines."""
    import httpx

    from scheduler.client import ApiError

    params = _params(severity, state, node, layer, src, since, until)
    params["limit"] = limit
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with api_errors():
        try:
            with httpx.Client(base_url=server, headers=headers, timeout=60.0) as http:
                resp = http.get("/v1/alerts/export", params=params)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"title": resp.reason_phrase, "detail": resp.text[:300]}
            raise ApiError(resp.status_code, str(body.get("title")), str(body.get("detail")))
    text = resp.text
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", 1)
    typer.echo(f"{len(text.splitlines())} alerts written to {out}", err=True)


@app.command("sensor-token")
def sensor_token(
    name: str,
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 12h (max 24h).")] = "1h",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a bearer token for an IDS sensor to POST alerts (local admin)."""
    import re

    from scheduler.schemas import NAME_PATTERN

    if not re.match(NAME_PATTERN, name):
        fail(f"invalid name {name!r}: lowercase letters, digits, '.', '_' and '-' (max 63)")
    lifetime = parse_duration(ttl)
    if lifetime.total_seconds() > SENSOR_TOKEN_MAX_S:
        fail("sensor tokens live at most 24h")
    typer.echo(with_local(data_dir, lambda s: s.issue_token("sensor", name, lifetime)))
