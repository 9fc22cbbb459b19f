"""`cntrust ids`: the perimeter engine offline (`scan`) and live (`sensor`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ids.engine import RuleSet

app = typer.Typer(no_args_is_help=True, help="Perimeter intrusion detection (Suricata rules).")

MAX_RULES_BYTES = 64 * 1024 * 1024


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _parse_vars(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise _fail(f"--var expects NAME=VALUE, got {item!r}")
        out[name.strip().lstrip("$")] = value.strip()
    return out


def _load_rules(path: Path | None, variables: dict[str, str]) -> RuleSet:
    from ids.engine import parse_rules

    if path is None:
        return parse_rules("", variables)
    try:
        if path.stat().st_size > MAX_RULES_BYTES:
            raise _fail(f"rules file {path} is larger than 64 MiB")
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise _fail(f"cannot read rules file {path}: {exc.strerror or exc}") from exc
    ruleset = parse_rules(text, variables)
    for err in ruleset.errors:
        typer.echo(f"rule skipped: line {err.line} sid {err.sid}: {err.reason}", err=True)
    return ruleset


@app.command()
def scan(
    files: Annotated[list[Path], typer.Argument(help="pcap or pcapng files, in order")],
    rules: Annotated[Path | None, typer.Option("--rules", help="Suricata rules file")] = None,
    eve: Annotated[Path | None, typer.Option("--eve", help="write EVE JSON lines here")] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="address/port var, e.g. HOME_NET=[10.0.0.0/8]")
    ] = None,
    node_id: Annotated[str | None, typer.Option(help="node id put in cntrust.node_id")] = None,
    flows: Annotated[bool, typer.Option(help="also log EVE flow records")] = False,
    ips: Annotated[bool, typer.Option(help="simulate IPS: drop rules block")] = False,
    midstream: Annotated[bool, typer.Option(help="pick up TCP sessions without a SYN")] = False,
    packet: Annotated[bool, typer.Option(help="include the raw frame (base64) in alerts")] = False,
) -> None:
    """Scan capture files and write Suricata EVE JSON lines (stdout without --eve)."""
    from ids.engine import EngineConfig, EngineError, eve_dumps, scan_pcap

    variables = _parse_vars(var or [])
    ruleset = _load_rules(rules, variables)
    for f in files:
        if not f.is_file():
            raise _fail(f"no such capture file: {f}")
    config = EngineConfig(
        node_id=node_id, log_flows=flows, ips=ips, midstream=midstream, log_packet=packet
    )
    result = scan_pcap([str(f) for f in files], ruleset, config=config)
    try:
        out = eve.open("w", encoding="utf-8") if eve else sys.stdout
    except OSError as exc:
        raise _fail(f"cannot write {eve}: {exc.strerror or exc}") from exc
    try:
        for event in result:
            out.write(eve_dumps(event) + "\n")
    except (EngineError, OSError) as exc:
        raise _fail(str(exc)) from exc
    finally:
        if eve:
            out.close()
    _print_stats(result.stats.as_dict())


def _print_stats(stats: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ids scan", show_header=False)
    for key in (
        "packets",
        "alerts",
        "decode_errors",
        "truncated_records",
        "bogus_records",
        "flows_created",
        "rules_loaded",
        "rules_failed",
    ):
        table.add_row(key, str(stats[key]))
    Console(stderr=True).print(table)


@app.command()
def sensor(
    iface: Annotated[str, typer.Option("--iface", help="interface to capture on")],
    server: Annotated[str, typer.Option("--server", help="scheduler base URL")],
    rules: Annotated[Path | None, typer.Option("--rules", help="Suricata rules file")] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="CNTRUST_TOKEN", help="bearer token")
    ] = None,
    var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE")] = None,
    node_id: Annotated[str | None, typer.Option(help="node id put in cntrust.node_id")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1_000)] = 100,
    max_batch_bytes: Annotated[
        int, typer.Option(min=4096, max=64 * 1024 * 1024, help="cut batches by size")
    ] = 1024 * 1024,
    flush_s: Annotated[float, typer.Option(min=0.05)] = 1.0,
    max_packets: Annotated[int | None, typer.Option(min=1, help="stop after N frames")] = None,
    duration_s: Annotated[float | None, typer.Option(min=0.1, help="stop after S s")] = None,
) -> None:
    """Capture live on IFACE and POST alert batches to SERVER/v1/alerts."""
    import httpx

    from ids.engine import Engine, EngineConfig, SensorError
    from ids.engine.sensor import AlertShipper, af_packet_source, run_sensor

    if not server.startswith(("http://", "https://")):
        raise _fail("--server must be an http:// or https:// URL")
    variables = _parse_vars(var or [])
    ruleset = _load_rules(rules, variables)
    config = EngineConfig(node_id=node_id, midstream=True, log_pcap_cnt=False)
    engine = Engine(ruleset, config=config)
    client = httpx.Client(timeout=10.0)

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            return client.post(url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            raise OSError(str(exc)) from exc

    shipper = AlertShipper(
        server,
        token,
        post,
        batch_size=batch_size,
        flush_interval_s=flush_s,
        max_batch_bytes=max_batch_bytes,
    )
    try:
        frames = run_sensor(
            engine, af_packet_source(iface), shipper, max_packets=max_packets, duration_s=duration_s
        )
    except SensorError as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        shipper.flush()
        frames = engine.pcap_cnt
    finally:
        client.close()
    typer.echo(
        f"frames={frames} alerts_shipped={shipper.shipped} failed_posts={shipper.failed_posts} "
        f"pending={len(shipper.pending)} oversized_dropped={shipper.oversized_alerts}",
        err=True,
    )
