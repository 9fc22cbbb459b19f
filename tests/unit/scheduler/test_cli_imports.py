"""The CLI starts fast and the regulator's verifier never pulls in the web stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("fastapi", "sqlalchemy", "sqlmodel", "uvicorn", "web3", "eth", "scapy", "cedarpy")


def test_cli_import_pulls_in_no_heavy_dependency():
    code = (
        "import sys, scheduler.cli.app\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_audit_verify_help_runs_without_the_web_stack():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from scheduler.cli import app\n"
        "r = CliRunner().invoke(app, ['audit', 'verify', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(','.join(m for m in ('fastapi', 'sqlalchemy', 'uvicorn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
