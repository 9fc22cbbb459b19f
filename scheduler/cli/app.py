"""Root typer app; every sub-app is mounted here and imports its heavy modules lazily."""

from __future__ import annotations

import typer

from scheduler.cli import (
    alerts_cmd,
    attest_cmd,
    audit_cmd,
    identity_cmd,
    ids_cmd,
    ids_scenarios_cmd,
    incidents_cmd,
    policy_cmd,
    trust_cmd,
)
from scheduler.cli.core_cmd import admin_app, node_app, task_app, tenant_app
from scheduler.cli.deploy_cmd import demo, up

app = typer.Typer(
    name="cntrust",
    help="Security and trust framework for compute networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(up)
app.command()(demo)
app.add_typer(tenant_app, name="tenant")
app.add_typer(task_app, name="task")
app.add_typer(node_app, name="node")
app.add_typer(admin_app, name="admin")
app.add_typer(audit_cmd.app, name="audit", help="Verify provenance bundles offline.")
app.add_typer(policy_cmd.app, name="policy", help="Validate, test and check Cedar policies.")
app.add_typer(
    trust_cmd.app, name="trust", help="Trust: a node's score and why; release; simulate attacks."
)
app.add_typer(alerts_cmd.app, name="alerts", help="Review, triage, suppress and export IDS alerts.")
app.add_typer(identity_cmd.operator_app, name="operator", help="Node operators and their CAs.")
app.add_typer(identity_cmd.token_app, name="token", help="One-time join tokens.")
node_app.command("enroll")(identity_cmd.enroll)
node_app.command("revoke")(identity_cmd.revoke)
node_app.command("attest")(attest_cmd.node_attest)
app.add_typer(attest_cmd.app, name="refvalues", help="Signed, versioned reference values.")
app.add_typer(ids_cmd.app, name="ids", help="Intrusion detection: scan pcaps, run a sensor.")
app.add_typer(ids_scenarios_cmd.app, name="ids-scenarios", help="Generate labelled attack pcaps.")
app.add_typer(incidents_cmd.incidents_app, name="incidents", help="Correlated incidents.")
app.add_typer(incidents_cmd.quarantine_app, name="quarantine", help="Quarantined nodes.")


@app.command()
def version() -> None:
    """Print the cntrust version."""
    from importlib.metadata import version as _v

    typer.echo(_v("cntrust"))
