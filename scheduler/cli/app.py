"""Root typer app; sub-apps are mounted here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="cntrust",
    help="Security and trust framework for compute networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the cntrust version."""
    from importlib.metadata import version as _v

    typer.echo(_v("cntrust"))
