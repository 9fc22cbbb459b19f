"""``cntrust policy``: validate, test and query Cedar policy sets offline.

The policies library is imported inside each command so the CLI starts fast.
Exit codes: 0 success (``check``: allowed); 1 invalid set, failing case or denied
request; 2 bad input (missing file, unreadable JSON, file too large).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Validate, test and query Cedar policy sets.")

MAX_REQUEST_FILE_BYTES = 1024 * 1024

_out = Console()
_err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


def _load(directory: Path | None) -> Any:
    from policies import PolicyLoadError, load_default_policy_set, load_policy_set

    try:
        return load_default_policy_set() if directory is None else load_policy_set(directory)
    except PolicyLoadError as exc:
        for problem in exc.problems:
            _err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
        raise _fail(f"policy set refused ({len(exc.problems)} problem(s))", code=1) from None


@app.command()
def validate(
    directory: Path | None = typer.Argument(
        None,
        help="Directory with one *.cedarschema.json and *.cedar files (default: the shipped pack).",
    ),
) -> None:
    """Validate a policy set against its schema; report every problem at once."""
    policy_set = _load(directory)
    _out.print(
        f"valid: {len(policy_set.policies)} policies, version {policy_set.version}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command("test")
def test_cmd(
    directory: Path | None = typer.Argument(
        None, help="Policy directory with a cases/ folder (default: the shipped pack)."
    ),
) -> None:
    """Run the case files in DIR/cases against the set in DIR."""
    from policies import PolicyCaseError, default_policy_dir, run_policy_tests

    directory = directory or default_policy_dir()
    policy_set = _load(directory)
    try:
        results = run_policy_tests(directory, policy_set=policy_set)
    except PolicyCaseError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"policy cases ({policy_set.version[:19]}…)")
    for column in ("file", "case", "expected", "got", "deciding policies", "result"):
        table.add_column(column)
    for r in results:
        table.add_row(
            escape(r.file),
            escape(r.name),
            r.expect,
            r.decision.effect,
            escape(", ".join(r.decision.policy_ids)) or "-",
            "[green]pass[/green]"
            if r.passed
            else "[red]FAIL[/red]: " + escape("; ".join(r.problems)),
        )
    _out.print(table)
    failed = [r for r in results if not r.passed]
    _out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed", highlight=False)
    if failed:
        raise typer.Exit(code=1)


@app.command()
def check(
    request_file: Path = typer.Option(
        ..., "--request", help="JSON request: principal, action, resource, context, entities."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
    policies: Path | None = typer.Option(
        None, "--policies", help="Policy directory (default: the built-in pack)."
    ),
) -> None:
    """Decide one request and show the decision with its reasons (exit 1 when denied)."""
    from policies import CedarEngine, PolicyRequestError, Request

    try:
        size = request_file.stat().st_size
    except OSError as exc:
        raise _fail(f"cannot read {request_file}: {exc.strerror}") from None
    if size > MAX_REQUEST_FILE_BYTES:
        raise _fail(f"{request_file} is {size} bytes, limit {MAX_REQUEST_FILE_BYTES}")
    try:
        request = Request.from_dict(json.loads(request_file.read_bytes()))
    except (ValueError, RecursionError) as exc:
        raise _fail(f"{request_file} is not JSON: {exc!r}") from None
    except PolicyRequestError as exc:
        raise _fail(f"{request_file}: {exc}") from None
    decision = CedarEngine(_load(policies), cache_size=0).decide(request)
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), indent=2))
    else:
        colour = "green" if decision.allowed else "red"
        _out.print(f"[{colour}]{decision.effect.upper()}[/{colour}]")
        for policy_id in decision.policy_ids:
            _out.print(f"  policy: {policy_id}", markup=False, highlight=False, soft_wrap=True)
        for reason in decision.reasons:
            _out.print(f"  reason: {reason}", markup=False, highlight=False, soft_wrap=True)
        _out.print(
            f"  policy set: {decision.policy_set_version}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if not decision.allowed:
        raise typer.Exit(code=1)


@app.command()
def show(
    server: str = typer.Option(
        "http://127.0.0.1:8440", "--server", envvar="CNTRUST_SERVER", help="Scheduler API URL."
    ),
    token: str = typer.Option(
        ..., "--token", envvar="CNTRUST_TOKEN", help="Bearer token.", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
) -> None:
    """Show the policy set in force on a scheduler: version, policies and change history."""
    from scheduler.cli.common import api_errors, print_json
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        answer = client.request("GET", "/v1/policy")
    if as_json:
        print_json(answer)
        return
    _out.print(f"policy set {answer['version']}", markup=False, highlight=False, soft_wrap=True)
    table = Table(title=f"{len(answer['policies'])} policies")
    for column in ("id", "effect", "reason"):
        table.add_column(column)
    for policy in answer["policies"]:
        table.add_row(escape(policy["id"]), policy["effect"], escape(policy["reason"]))
    _out.print(table)
    history = Table(title="changes (newest first)")
    for column in ("when", "who", "old", "new"):
        history.add_column(column)
    for change in answer["history"]:
        history.add_row(
            _when(float(change["changed_at"])),
            escape(change["changed_by"]),
            change["old_version"][:19] + "…",
            change["new_version"][:19] + "…",
        )
    _out.print(history if answer["history"] else "no changes since the default pack")


def _when(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command("replay")
def replay_cmd(
    task_id: str = typer.Argument(..., help="The task whose placement decision to replay."),
    server: str = typer.Option(
        "http://127.0.0.1:8440", "--server", envvar="CNTRUST_SERVER", help="Scheduler API URL."
    ),
    token: str = typer.Option(
        ..., "--token", envvar="CNTRUST_TOKEN", help="Bearer token.", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
) -> None:
    """Replay a task's placement decision with its stored inputs and policy version.

    Exit 0 when the replayed decision is the same, 1 when it differs (or the task is
    unknown or has no recorded decision), 3 when the server cannot be reached."""
    from urllib.parse import quote

    from scheduler.cli.common import api_errors, print_json
    from scheduler.client import Client

    with api_errors(), Client(server, token) as client:
        answer = client.request("GET", f"/v1/tasks/{quote(task_id, safe='')}/placement/replay")
    if as_json:
        print_json(answer)
    else:
        stored = answer["stored"]
        _out.print(
            f"task {answer['task_id']} on node {answer['node_id']} (attempt {answer['attempt']}, "
            f"{_when(float(answer['decided_at']))})\n"
            f"policy set {answer['policy_version']}\n"
            f"stored:   {stored['decision']} by {', '.join(stored['policy_ids']) or '-'}",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
        for reason in stored["reasons"]:
            _out.print(f"  - {reason}", markup=False, highlight=False, soft_wrap=True)
        replayed = answer.get("replayed")
        if replayed is not None:
            ids = ", ".join(replayed["policy_ids"]) or "-"
            _out.print(f"replayed: {replayed['decision']} by {ids}", markup=False,
                       highlight=False, soft_wrap=True)  # fmt: skip
        if answer["same"]:
            _out.print("same decision", markup=False, highlight=False)
        for difference in answer["differences"]:
            _err.print(f"differs: {difference}", markup=False, highlight=False, soft_wrap=True)
    if not answer["same"]:
        raise typer.Exit(code=1)
