"""``cntrust trust``: a node's trust score (``show``, ``release``) and the attack simulator.

``show NODE [--explain] [--json]`` asks the scheduler (``GET /v1/nodes/{id}/trust``) for the
node's score, opinion, gates, top evidence and the operator's path back; ``release NODE``
lifts a trust quarantine (administrators). ``simulate --scenario FILE [--json]`` runs the
real trust engine and the baselines (no trust, verified-outcomes-only Beta, plain
EigenTrust) on the same seeded network and prints their metrics side by side. Libraries and
the HTTP client are imported inside the commands so the CLI starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

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

if TYPE_CHECKING:
    from trust.simulate import SimulationReport

app = typer.Typer(no_args_is_help=True, help="Trust scores and the attack simulator.")

_ROWS: tuple[tuple[str, str, str], ...] = (
    ("malicious_task_share", "tasks on malicious nodes (steady)", "pct"),
    ("bad_delivered_share", "bad outcomes delivered (steady)", "pct"),
    ("detect_median_rounds", "rounds to detect, median", "num"),
    ("detect_p90_rounds", "rounds to detect, p90", "num"),
    ("detected", "malicious detected", "int"),
    ("undetected", "malicious not detected", "int"),
    ("honest_fp_rate", "honest false-positive rate", "pct"),
    ("honest_load_gini", "honest load Gini", "num"),
    ("verified_share", "tasks verified", "pct"),
    ("update_p50_us", "evidence update p50 (us)", "num"),
    ("update_p99_us", "evidence update p99 (us)", "num"),
    ("recompute_mean_ms", "full recomputation mean (ms)", "num"),
    ("elapsed_s", "run time (s)", "num"),
)


def _fmt(value: object, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct" and isinstance(value, float):
        return f"{value:.2%}"
    if kind == "int":
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _table(report: SimulationReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"scenario {report.scenario}: {report.nodes} nodes, {report.rounds} rounds, "
        f"seed {report.seed}"
    )
    table.add_column("metric")
    for r in report.results:
        table.add_column(r.strategy, justify="right")
    for attr, label, kind in _ROWS:
        table.add_row(label, *(_fmt(getattr(r, attr), kind) for r in report.results))
    console = Console()
    console.print(table)
    for r in report.results:
        if r.strategy == "engine":
            misses = r.target_failures()
            console.print(
                "engine targets: " + ("all met" if not misses else "MISSED: " + "; ".join(misses))
            )


@app.command()
def simulate(
    scenario: Annotated[
        Path,
        typer.Option(
            "--scenario", help="scenario JSON file, or a bundled name (`cntrust trust scenarios`)"
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    strategies: Annotated[
        str,
        typer.Option(help="comma-separated: engine, no_trust, beta_verified, eigentrust"),
    ] = "engine,no_trust,beta_verified,eigentrust",
) -> None:
    """Run the real trust engine and the baselines on a simulated network."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from trust.errors import ScenarioError
    from trust.simulate import ALL_STRATEGIES, bundled_scenarios, load_scenario
    from trust.simulate import simulate as run

    bundled = bundled_scenarios()
    if not scenario.exists() and str(scenario) in bundled:
        scenario = Path(bundled[str(scenario)])
    try:
        sc = load_scenario(scenario)
    except ScenarioError as exc:
        typer.echo(f"error: invalid scenario {scenario}: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    unknown = [s for s in names if s not in ALL_STRATEGIES]
    if unknown or not names:
        typer.echo(
            f"error: unknown strategy {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(ALL_STRATEGIES)}",
            err=True,
        )
        raise typer.Exit(code=2)
    from rich.console import Console

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        bars = {name: progress.add_task(name, total=sc.rounds) for name in names}

        def on_round(name: str, done: int, total: int) -> None:
            progress.update(bars[name], completed=done)

        report = run(sc, names, on_round)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        _table(report)


@app.command()
def scenarios() -> None:
    """List the scenario files shipped with trust (one per behaviour, and mixed)."""
    from trust.simulate import bundled_scenarios

    for name, path in bundled_scenarios().items():
        typer.echo(f"{name}\t{path}")


def _trust_table(body: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"trust of node {body['node_id']}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    placement = body.get("placement") or {}
    table.add_row(
        "score", f"{body['score']:.3f} ({'trusted' if body['trusted'] else 'not trusted'})"
    )
    table.add_row(
        "belief / disbelief / uncertainty",
        f"{body['belief']:.3f} / {body['disbelief']:.3f} / {body['uncertainty']:.3f}",
    )
    table.add_row("status", str(body.get("status", "-")))
    table.add_row(
        "placement",
        "eligible" if placement.get("eligible") else f"excluded: {placement.get('reason')}",
    )
    for gate in body.get("gates", []):
        table.add_row("gate", f"{gate['code']}: {gate['detail']}")
    for signal in body.get("signals", []):
        table.add_row("signal", f"{signal['code']}: {signal['detail']}")
    for item in body.get("top_evidence", []):
        table.add_row(
            "evidence", f"{item['contribution']:+.3f} {item['kind']} {item['evidence_id']}"
        )
    for step in body.get("path_back", []):
        table.add_row("path back", step)
    return table


def _check_node(node: str) -> None:
    import re

    from scheduler.schemas import NAME_PATTERN

    if not re.match(NAME_PATTERN, node):
        fail(f"invalid node id {node!r}")


@app.command()
def show(
    node: str,
    explain: Annotated[bool, typer.Option("--explain", help="print the explanation")] = False,
    json_out: JsonOut = False,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
) -> None:
    """Show a node's trust score, gates, top evidence and the operator's path back."""
    _check_node(node)
    from scheduler.client import Client

    params = {"explain": "true"} if explain else {}
    with api_errors(), Client(server, token) as client:
        body = client.request("GET", f"/v1/nodes/{node}/trust", params=params)
    if json_out:
        print_json(body)
    elif explain:
        typer.echo(body["explanation"])
    else:
        console.print(_trust_table(body))


@app.command()
def release(
    node: str, json_out: JsonOut = False, server: Server = DEFAULT_SERVER, token: Token = ""
) -> None:
    """Release a node from trust quarantine (administrators): back online, evidence kept."""
    _check_node(node)
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        body = client.request("POST", f"/v1/nodes/{node}/release")
    if json_out:
        print_json(body)
    else:
        console.print(f"node [bold]{node}[/] released; score {body['score']:.3f}")
