"""The README's command lines, run as written, so they never drift."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.deploy import UpProcess

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def bash_blocks(section: str) -> list[str]:
    """The ```bash blocks between heading ``section`` and the next heading of its level."""
    start = README.index(section)
    level = section.split(" ")[0]
    rest = README[start + len(section) :]
    end = re.search(rf"^{level} ", rest, flags=re.M)
    body = rest[: end.start()] if end else rest
    return re.findall(r"```bash\n(.*?)```", body, flags=re.S)


def test_setup_commands_are_the_ones_ci_runs():
    install, demo = bash_blocks("## Set up (two commands)")[0].strip().splitlines()
    assert "pip install -e '.[test]'" in install
    assert "pip install -q -e '.[test]'" in (REPO / ".ci" / "run").read_text()
    assert demo == "cntrust demo"
    assert bash_blocks("## Test")[0].strip() == "pytest"


@pytest.mark.slow  # on its embedded defaults whatever the database: run once (SQLite pass)
def test_cntrust_demo_exits_zero(tmp_path):
    cntrust = Path(sys.executable).with_name("cntrust")
    cmd = [str(cntrust)] if cntrust.exists() else [sys.executable, "-m", "scheduler.cli"]
    env = {**os.environ, "COLUMNS": "160"}
    env.pop("CNTRUST_DATABASE_URL", None)  # the demo runs on its embedded defaults
    proc = subprocess.run(
        [*cmd, "demo"], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "expectations held" in proc.stdout


def test_tour_runs_as_written(tmp_path, database_url):
    data = tmp_path / ".cntrust"
    up = UpProcess(data, nodes=3, env={"CNTRUST_DATABASE_URL": database_url}).start()
    try:
        script = "\n".join(bash_blocks("## Five-minute tour"))
        bindir = Path(sys.executable).parent
        env = {
            **os.environ,
            "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
            "CNTRUST_DATA_DIR": str(data),
            "CNTRUST_SERVER": up.url,
            "CNTRUST_DATABASE_URL": database_url,
        }
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=tmp_path,
            env=env,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "succeeded" in proc.stdout and "gpu-box-1" in proc.stdout
        assert "CNTRUST SCENARIO" in proc.stdout and "engine targets: all met" in proc.stdout
        assert re.search(r"\b\d+ passed, 0 failed", proc.stdout)
        assert "revoked" in proc.stdout and "verified" in proc.stdout.lower()
    finally:
        up.stop()
