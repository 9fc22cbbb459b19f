"""The task runner: exit codes, output digests, timeouts, rlimits, scratch dirs."""

from __future__ import annotations

import hashlib
import sys

from scheduler.runner import TaskSpec, run_task


def spec(command: list[str], **kw) -> TaskSpec:
    base = {"id": "t1", "cpu": 1.0, "memory_mb": 512, "timeout_s": 10.0}
    base.update(kw)
    return TaskSpec(command=command, **base)


def test_success_digest_and_usage(tmp_path):
    result = run_task(spec(["echo", "hello"]), tmp_path)
    assert result.exit_code == 0 and result.error is None
    assert result.output_digest == "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    assert result.usage["wall_s"] >= 0 and "cpu_s" in result.usage
    assert not (tmp_path / "t1").exists()  # scratch removed


def test_exit_code_is_reported(tmp_path):
    assert run_task(spec(["sh", "-c", "exit 7"]), tmp_path).exit_code == 7


def test_timeout_kills_the_whole_group(tmp_path):
    marker = tmp_path / "survivor"
    script = f"(sleep 2; touch {marker}) & sleep 30"
    result = run_task(spec(["sh", "-c", script], timeout_s=0.5), tmp_path)
    assert result.exit_code == 124 and "timed out" in (result.error or "")
    assert result.usage["wall_s"] < 5
    import time

    time.sleep(2.5)
    assert not marker.exists(), "a child of the timed-out task survived"


def test_memory_limit_applies(tmp_path):
    code = "b = bytearray(400 * 1024 * 1024); print(len(b))"
    result = run_task(spec([sys.executable, "-c", code], memory_mb=100), tmp_path)
    assert result.exit_code != 0


def test_task_runs_in_its_own_scratch_dir_with_minimal_env(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cmd = ["sh", "-c", f"pwd > {out}/pwd; env > {out}/env"]
    assert run_task(spec(cmd, id="abc"), tmp_path / "scratch").exit_code == 0
    assert (out / "pwd").read_text().strip() == str(tmp_path / "scratch" / "abc")
    env = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines() if "=" in line)
    assert env["CNTRUST_TASK_ID"] == "abc"
    assert "CNTRUST_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env


def test_missing_binary_is_a_failed_task_not_a_crash(tmp_path):
    result = run_task(spec(["/nonexistent/binary"]), tmp_path)
    assert result.exit_code == 127 and "could not start" in (result.error or "")
