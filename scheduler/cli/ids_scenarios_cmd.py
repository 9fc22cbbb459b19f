"""``cntrust ids-scenarios``: generate labelled attack pcaps and score detections on them.

The ids library is imported inside the commands so the CLI starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Labelled IDS scenario pcaps and scoring.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Directory for the pcaps and answer key.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed; same seed, same bytes.")] = 0,
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", help="Only this scenario (repeatable)."),
    ] = None,
) -> None:
    """Write one pcap per scenario plus answer_key.json and scenario.rules into OUT."""
    from rich.console import Console
    from rich.table import Table

    from ids.scenarios import SCENARIOS, generate_scenarios

    if seed < 0:
        raise _fail("--seed must be >= 0")
    unknown = [s for s in scenario or [] if s not in SCENARIOS]
    if unknown:
        raise _fail(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    if out.exists() and not out.is_dir():
        raise _fail(f"{out} exists and is not a directory")
    try:
        key = generate_scenarios(out, seed=seed, only=scenario or None)
    except OSError as exc:
        raise _fail(f"cannot write to {out}: {exc.strerror or exc}") from exc
    table = Table(title=f"scenarios (seed {seed}) in {out}")
    for col in ("scenario", "pcap", "packets", "attack packets", "expected"):
        table.add_column(col)
    for entry in key["scenarios"]:
        expected = ", ".join(e["detection"] for e in entry["expected"]) or "(nothing)"
        table.add_row(
            entry["name"],
            entry["pcap"],
            str(entry["packets"]),
            str(entry["attack_packets"]),
            expected,
        )
    Console().print(table)


@app.command()
def score(
    directory: Annotated[Path, typer.Argument(help="Directory written by `generate`.")],
) -> None:
    """Run the detectors (and the rule engine where a scenario needs rules) on each
    scenario pcap and print recall/precision against the answer key."""
    from rich.console import Console
    from rich.table import Table

    from ids.engine import scan_pcap
    from ids.errors import IdsError
    from ids.layers import LayersError, PerimeterConfig, PerimeterSensor
    from ids.scenarios import score_detections

    key_path = directory / "answer_key.json"
    try:
        key = json.loads(key_path.read_text())
        scenarios = key["scenarios"]
        inventory = key["inventory"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _fail(f"cannot read answer key {key_path}: {exc}") from exc
    alerts = {}
    for entry in scenarios:
        pcap = directory / entry["pcap"]
        try:
            if entry.get("needs_rule_engine"):  # content rules: the perimeter rule engine
                rules = (directory / "scenario.rules").read_text()
                alerts[entry["name"]] = [
                    e for e in scan_pcap(str(pcap), rules) if e.get("event_type") == "alert"
                ]
            else:
                sensor = PerimeterSensor(PerimeterConfig(node_ips=inventory))
                alerts[entry["name"]] = sensor.observe_pcap(pcap)
        except (OSError, LayersError, IdsError) as exc:
            raise _fail(f"cannot read {entry['pcap']}: {exc}") from exc
    table = Table(title="perimeter detectors vs answer key")
    for col in ("scenario", "recall", "precision", "alerts"):
        table.add_column(col)
    for name, result in score_detections(alerts, key).items():
        table.add_row(name, f"{result.recall:.2f}", f"{result.precision:.2f}", str(result.alerts))
    Console().print(table)
