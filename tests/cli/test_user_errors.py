"""Every user-facing error of a run command is said in words, without a traceback, with exit code 1; a run
that would wait for an approval nobody can give refuses at once."""

from __future__ import annotations

import time

import pytest

from .conftest import ROOT, cli_env, run_cli

pytestmark = pytest.mark.timeout(300)
THREE_TIER = "plans/three-tier.yaml"


def _no_traceback(done) -> str:
    out = done.stdout + done.stderr
    assert "Traceback" not in out and 'File "' not in out, out
    return " ".join(out.split())  # the words, however the terminal width wrapped them


def _estate(tmp_path, change) -> str:
    from drplan.plan.loader import load_plan
    from drplan.sim.estate import Estate

    estate = Estate.from_plan(load_plan(ROOT / THREE_TIER))
    change(estate)
    path = tmp_path / "estate.yaml"
    path.write_text(estate.to_yaml())
    return str(path)


def test_no_terminal_and_no_approve_refuses_at_once(tmp_path):
    start = time.monotonic()
    done = run_cli("failback", THREE_TIER, "--simulate", env=cli_env(tmp_path))
    elapsed = time.monotonic() - start
    out = _no_traceback(done)
    assert done.returncode == 1, out
    assert "no terminal" in out and "--approve" in out and "commit-gate" in out, out
    assert elapsed < 15, f"took {elapsed:.0f}s to refuse"  # no temporary server was started


def test_with_a_prefect_server_it_says_where_to_approve(tmp_path):
    env = cli_env(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")  # nothing listens there
    done = run_cli("failback", THREE_TIER, "--simulate", env=env, timeout=120)
    out = _no_traceback(done)
    assert done.returncode == 1, out
    assert "approve in the Prefect UI at http://127.0.0.1:9" in out, out
    assert "could not run the flow" in out, out


def test_plan_busy_is_one_sentence(tmp_path):
    from drplan.run.host_lock import PlanLock

    lock = PlanLock("three-tier", tmp_path / "locks")
    lock.acquire(flow_run="other-run", flow="failback")
    try:
        done = run_cli("failback", THREE_TIER, "--simulate", "--approve", env=cli_env(tmp_path))
    finally:
        lock.release()
    out = _no_traceback(done)
    assert done.returncode == 1 and "already being run" in out, out


def test_failed_preflight_lists_the_checks(tmp_path):
    estate = _estate(tmp_path, lambda e: setattr(e.vm("web-01"), "protection_disabled", True))
    done = run_cli("failback", THREE_TIER, "--estate", estate, "--approve", env=cli_env(tmp_path))
    out = _no_traceback(done)
    assert done.returncode == 1, out
    assert "preflight of plan three-tier failed" in out and "web-01: protection is disabled" in out, out


def test_no_valid_recovery_point(tmp_path):
    from drplan.sim.estate import ExplicitPoint, PointKind

    def old_points_only(estate) -> None:  # group sql's one common app-consistent point is 5h old: over 2h
        for vm in ("sql-01", "sql-02"):
            estate.vm(vm).recovery_points = [
                ExplicitPoint(ago=5 * 3600, kind=PointKind.app, multi_vm_sync=True),
                ExplicitPoint(ago=60),
            ]

    estate = _estate(tmp_path, old_points_only)
    done = run_cli("failback", THREE_TIER, "--estate", estate, "--approve", env=cli_env(tmp_path))
    out = _no_traceback(done)
    assert done.returncode == 1 and "sql" in out and "max_data_loss" in out, out


def test_missing_azure_credentials_is_one_clear_line(tmp_path):
    done = run_cli("failback", THREE_TIER, "--approve", env=cli_env(tmp_path))
    out = _no_traceback(done)
    assert done.returncode == 1, out
    assert out.count("Azure credentials: none found") == 1, out
    assert "EnvironmentCredential" not in out and "DefaultAzureCredential failed" not in out, out
