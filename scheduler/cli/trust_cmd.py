"""``cntrust trust``: the attack simulator (and, once mounted by the scheduler, ``show``).

``simulate --scenario FILE [--json]`` runs the real trust engine and the baselines (no trust,
verified-outcomes-only Beta, plain EigenTrust) on the same seeded network and prints their
metrics side by side. The trust library is imported inside the command so the CLI starts
fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

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
