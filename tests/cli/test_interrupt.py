"""One Ctrl-C (to the terminal's process group) or one SIGTERM (to the process) stops a run command within
5 seconds, saying what it means, without a traceback, and leaves no process behind: not Prefect's temporary
server, not a hook."""

from __future__ import annotations

import os
import signal
import time

import pytest

from flows.interrupt import children

from .conftest import cli_env

pytestmark = pytest.mark.timeout(300)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stopped_cleanly(term, pids: list[int], elapsed: float) -> None:
    print(f"stopped {elapsed:.2f}s after the signal; {len(pids)} child process(es) before it")
    assert elapsed < 5.0, f"took {elapsed:.1f}s to stop:\n{term.text[-3000:]}"
    assert "interrupted" in term.text and "Re-run the same command" in term.text, term.text[-3000:]
    assert "Traceback" not in term.text, term.text
    deadline = time.monotonic() + 2
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "a child process outlived the command"


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "started-with-sigint-ignored"])
def test_ctrl_c_at_the_commit_gate_stops_within_5_seconds(terminal, tmp_path, sigint_ignored):
    """Also when started with SIGINT ignored (nohup, a shell's background job, some CI runners): Python then
    keeps ignoring it, and the command sat at the prompt for ever (seen in a CI rehearsal)."""
    term = terminal(
        "failback",
        "plans/three-tier.yaml",
        "--simulate",
        env=cli_env(tmp_path),
        sigint_ignored=sigint_ignored,
    )
    term.wait_for("the commit approval prompt", lambda t: "Approve commit-gate?" in t)
    pids = children(term.proc.pid)
    assert pids, "the command has no child process (Prefect's temporary server)"
    os.killpg(term.proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    elapsed = term.wait_exit(timeout=30)
    _stopped_cleanly(term, pids, elapsed)
    assert term.proc.returncode == 1


def test_sigterm_mid_run_stops_within_5_seconds(terminal, tmp_path):
    term = terminal(
        "failback", "plans/three-tier.yaml", "--simulate", "--approve", "--speed", "30", env=cli_env(tmp_path)
    )
    term.wait_for("a unit under way", lambda t: "running" in t or "failed-back" in t)
    pids = children(term.proc.pid)
    term.proc.send_signal(signal.SIGTERM)  # what timeout, systemd or a container runtime sends: one process
    elapsed = term.wait_exit(timeout=30)
    _stopped_cleanly(term, pids, elapsed)
