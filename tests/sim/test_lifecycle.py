"""The lifecycle the simulator models: Azure VM shut down, on-prem VM up, tools, commit, audit."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from drplan.errors import BootTimeout, VCenterUnreachable
from drplan.observed import Phase
from drplan.run.ports import OnPremSite
from drplan.sim import SimClock, start_simulator

from .conftest import Asr, small_estate


def test_failback_shuts_azure_vm_down_and_boots_onprem_vm_with_tools(estate):
    clock = SimClock(speed=1000)
    with start_simulator(estate, clock=clock) as sim:
        asr = Asr(sim)
        site = sim.onprem
        assert isinstance(site, OnPremSite)
        before = site.read_state(["db-01"]).vms["db-01"]
        assert before.power_state == "poweredOff" and before.tools_version_status == "guestToolsNotInstalled"
        assert sim.engine.azure_vm("db-01") == "running"
        asr.failback("db-01")
        assert sim.engine.azure_vm("db-01") == "stopped"
        state = site.read_state(["db-01"]).vms["db-01"]
        assert state.power_state == "poweredOn"
        assert state.tools_version_status == "guestToolsCurrent"  # ASR re-enabled VMware Tools (Windows)
        booted = site.wait_for_boot("db-01", timeout=600)
        assert booted.booted and booted.guest_ip == "10.20.0.11"
        asr.commit("db-01")
        assert sim.engine.azure_vm("db-01") == "deleted"
        assert sim.estate.vm("db-01").phase == Phase.committed


def test_wait_for_boot_times_out_naming_what_is_missing(sim):
    sim.onprem.power_on("web-01")
    sim.onprem.set_tools_running("web-01", False)
    with pytest.raises(BootTimeout, match="VMware Tools running"):
        sim.onprem.wait_for_boot("web-01", timeout=300)
    sim.onprem.set_tools_running("web-01", True)
    sim.onprem.set_guest_ip("web-01", "192.0.2.7")
    assert sim.onprem.wait_for_boot("web-01", timeout=300).guest_ip == "192.0.2.7"


def test_site_reads_vcenter_names_and_reports_disconnection(sim):
    state = sim.onprem.read_state(
        ["WEB01", "web-01", "nope", "mt-lin-01"], port_groups=["drill-network", "x"]
    )
    assert state.connected and state.vms["WEB01"].present and state.vms["web-01"].present
    assert not state.vms["nope"].present and state.vms["mt-lin-01"].power_state == "poweredOn"
    assert state.port_groups == frozenset({"drill-network"})
    sim.onprem.set_connected(False)
    assert sim.onprem.read_state(["WEB01"]).connected is False
    with pytest.raises(VCenterUnreachable):
        sim.onprem.wait_for_boot("WEB01", timeout=60)


def test_protection_state_moves_through_the_lifecycle(sim, asr):
    seen = []

    def snap():
        p = asr.get("web-01").properties
        seen.append(
            (
                p.provider_specific_details.instance_type,
                p.protection_state,
                p.active_location,
                p.failover_recovery_point_id is not None,
                p.last_successful_failover_time is not None,
            )
        )

    snap()
    asr.failback("web-01")
    snap()
    asr.commit("web-01")
    snap()
    sim.clock.advance(sim.estate.durations.agent_registration)
    asr.reprotect_to_azure("web-01")
    snap()
    assert seen == [
        ("InMage", "Protected", "Primary", False, True),
        ("InMage", "UnplannedFailoverCommitPendingStatesBegin", "Recovery", True, True),
        ("InMage", "UnplannedFailoverCommitted", "Recovery", True, True),
        ("InMageAzureV2", "Protected", "Primary", False, True),
    ]


def test_both_failover_directions_are_accepted_and_audited(sim, asr, tmp_path):
    asr.failback("web-01", direction="PrimaryToRecovery")
    asr.failback("db-01", direction="RecoveryToPrimary")
    recs = {r["vm"]: r for r in sim.audit.requests("unplannedFailover", outcome="accepted")}
    assert recs["web-01"]["direction"] == "PrimaryToRecovery"
    assert recs["db-01"]["direction"] == "RecoveryToPrimary"
    # LatestTime: the newest point, whatever its kind (an app-consistent point replaces the crash point
    # made at the same instant, so the newest is app-consistent one time in twelve), at most 5 minutes old
    db = recs["db-01"]
    assert db["recovery_point"] and db["recovery_point_consistency"] in (
        "CrashConsistent",
        "ApplicationConsistent",
    )
    sent, point = (
        datetime.fromisoformat(db[k].replace("Z", "+00:00")) for k in ("time", "recovery_point_time")
    )
    assert timedelta(0) <= sent - point <= timedelta(seconds=300)


def test_audit_log_is_written_as_jsonl(tmp_path):
    path = tmp_path / "audit.jsonl"
    with start_simulator(small_estate(), speed=6000, audit_path=path) as sim:
        asr = Asr(sim)
        asr.failback("web-01")
        asr.commit("web-01")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["event"], r["operation"], r["outcome"]) for r in lines] == [
        ("request", "unplannedFailover", "accepted"),
        ("job", "unplannedFailover", "succeeded"),
        ("request", "failoverCommit", "accepted"),
        ("job", "failoverCommit", "succeeded"),
    ]
    assert all(r["time"].endswith("Z") for r in lines)
    assert sim.request_counts[("POST", "ReplicationProtectedItems_UnplannedFailover")] == 1
    sim.reset_counts()
    assert not sim.request_counts


def test_jobs_complete_in_simulated_time(estate):
    clock = SimClock(speed=1.0)  # real time barely moves: only advance() does
    with start_simulator(estate, clock=clock) as sim:
        asr = Asr(sim)
        asr.client.replication_protected_items.begin_failover_commit  # noqa: B018 - the API exists
        from azure.mgmt.recoveryservicessiterecovery import models as m

        asr.client.replication_protected_items.begin_unplanned_failover(
            asr.rg,
            asr.vault,
            *asr.ref("web-01"),
            m.UnplannedFailoverInput(
                properties=m.UnplannedFailoverInputProperties(
                    failover_direction="PrimaryToRecovery",
                    source_site_operations="NotRequired",
                    provider_specific_details=m.InMageUnplannedFailoverInput(
                        recovery_point_type="LatestTime"
                    ),
                )
            ),
            polling=False,
        )
        job = next(iter(sim.engine.jobs.values()))
        sim.clock.advance(599)
        assert sim.engine.job_status(job.name).state == "InProgress"
        sim.clock.advance(2)
        assert sim.engine.job_status(job.name).state == "Succeeded"
        assert (job.end - job.start).total_seconds() == pytest.approx(600)


def test_remote_routes_serve_clock_and_onprem_state(sim):
    import requests

    auth = {"Authorization": f"Bearer {sim.token}"}
    clock = requests.get(
        f"{sim.endpoint}/drplan-sim/clock", headers=auth, verify=sim.ca_file, timeout=10
    ).json()
    assert clock["speed"] == sim.clock.speed
    state = requests.post(
        f"{sim.endpoint}/drplan-sim/onprem/read_state",
        json={"vms": ["WEB01"]},
        headers=auth,
        verify=sim.ca_file,
        timeout=10,
    ).json()
    assert state["connected"] and state["vms"]["WEB01"]["present"]
    assert requests.get(f"{sim.endpoint}/drplan-sim/clock", verify=sim.ca_file, timeout=10).status_code == 401
