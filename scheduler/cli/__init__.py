"""The ``cntrust`` command line."""

from __future__ import annotations

from scheduler.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
