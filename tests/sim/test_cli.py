"""``drplan sim start`` and ``drplan sim estate`` as a new user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from drplan.sim import Estate

from .conftest import StaticToken, small_estate

ROOT = Path(__file__).resolve().parents[2]
DRPLAN = [sys.executable, "-c", "from drplan.cli import main; main()"]


def test_sim_estate_prints_a_loadable_estate():
    out = subprocess.run(
        [*DRPLAN, "sim", "estate", str(ROOT / "plans/three-tier.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    est = Estate.from_yaml_text(out)
    assert est.vms and all(v.phase == "reprotected-to-onprem" for v in est.vms)


def test_sim_estate_bad_phase_exits_2():
    r = subprocess.run(
        [*DRPLAN, "sim", "estate", str(ROOT / "plans/three-tier.yaml"), "--phase", "bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "unknown phase 'bogus'" in r.stderr and "Traceback" not in r.stderr


def test_sim_start_serves_until_interrupted(tmp_path):
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

    estate = tmp_path / "estate.yaml"
    estate.write_text(small_estate().to_yaml())
    proc = subprocess.Popen(
        [*DRPLAN, "sim", "start", "--estate", str(estate), "--speed", "6000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        env = dict(ln.strip().removeprefix("export ").split("=", 1) for ln in lines if "export " in ln)
        client = SiteRecoveryManagementClient(
            StaticToken(env["DRPLAN_SIM_TOKEN"]),
            env["DRPLAN_SIM_SUBSCRIPTION_ID"],
            base_url=env["DRPLAN_SIM_ENDPOINT"],
            connection_verify=env["DRPLAN_SIM_CA_FILE"],
        )
        items = list(
            client.replication_protected_items.list(env["DRPLAN_SIM_RESOURCE_GROUP"], env["DRPLAN_SIM_VAULT"])
        )
        assert sorted(i.properties.friendly_name for i in items) == ["db-01", "db-02", "web-01"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "simulator stopped" in out


def test_sim_start_with_invalid_estate_exits_2(tmp_path):
    bad = tmp_path / "estate.yaml"
    bad.write_text("vms: 3\n")
    r = subprocess.run(
        [*DRPLAN, "sim", "start", "--estate", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "vms" in r.stderr and "Traceback" not in r.stderr


def test_sim_estate_provider_option_writes_either_stack():
    def estate(*extra: str) -> Estate:
        out = subprocess.run(
            [*DRPLAN, "sim", "estate", str(ROOT / "plans/three-tier.yaml"), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return Estate.from_yaml_text(out)

    default, classic, modern = estate(), estate("--provider", "classic"), estate("--provider", "modernized")
    assert default.model_dump() == modern.model_dump()  # modernized by default (classic is out of support)
    assert {v.provider for v in modern.vms} == {"modernized"} and modern.appliances
    assert [v.name for v in modern.vms] == [v.name for v in classic.vms]
    r = subprocess.run(
        [*DRPLAN, "sim", "estate", str(ROOT / "plans/three-tier.yaml"), "--provider", "azure"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "unknown provider 'azure'" in r.stderr
