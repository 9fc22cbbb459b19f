"""Shared CLI plumbing: options, error exits, JSON output, local admin access."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="CNTRUST_DATA_DIR", help="Deployment data directory."),
]
Server = Annotated[
    str, typer.Option("--server", envvar="CNTRUST_SERVER", help="Scheduler API URL.")
]
Token = Annotated[
    str, typer.Option("--token", envvar="CNTRUST_TOKEN", help="Bearer token.", show_default=False)
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]

DEFAULT_SERVER = "http://127.0.0.1:8440"
DEFAULT_DATA_DIR = Path(".cntrust")

_DURATION = re.compile(r"^(\d+)([smhd])$")


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        fail(f"invalid duration {text!r}: use e.g. 90s, 10m, 1h, 2d")
    value, unit = int(match[1]), match[2]
    seconds = value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds <= 0:
        fail(f"duration must be positive: {text!r}")
    return timedelta(seconds=seconds)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn API errors into a message and a non-zero exit."""
    from scheduler.client import ApiError

    try:
        yield
    except ApiError as exc:
        if exc.status == 0:
            fail(f"cannot reach the server: {exc.detail}", 3)
        fail(f"{exc.status} {exc.title}: {exc.detail}", 1)


def local_settings(data_dir: Path) -> Any:
    from pydantic import ValidationError

    from scheduler.settings import Settings

    try:
        return Settings(data_dir=data_dir)
    except ValidationError as exc:
        fail("invalid configuration: " + "; ".join(e["msg"] for e in exc.errors()))


def with_local(data_dir: Path, fn: Callable[[Any], Any]) -> Any:
    """Run ``fn(service)`` against the deployment's data dir (local admin)."""
    from scheduler.errors import SchedulerError
    from scheduler.service import Service

    settings = local_settings(data_dir)
    service = Service(settings)
    try:
        return fn(service)
    except SchedulerError as exc:
        fail(exc.detail, 1)
    finally:
        service.close()
