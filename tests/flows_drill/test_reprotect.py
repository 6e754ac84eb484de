"""The reprotect flow (Azure → on-prem) on the simulated estate and a real Prefect engine."""

from __future__ import annotations

import pytest

from .conftest import SPEED, THREE_TIER

pytestmark = pytest.mark.usefixtures("harness")

#: InMageReprotectInput values: the plan names them (the simulator knows ps-azure-01; policy is free-form)
REPROTECT = """
reprotect:
  process_server: ps-azure-01
  retention_drive: "F:"
  datastore: datastore1
  policy: failback-policy
"""


@pytest.fixture
def plan(tmp_path):
    path = tmp_path / "three-tier-reprotect.yaml"
    path.write_text(THREE_TIER.read_text() + REPROTECT)
    return path


def _estate(**os_by_vm):
    """The three-tier estate failed over to Azure; ``os_by_vm`` overrides what ASR reports as a VM's OS."""
    from drplan.observed import Phase
    from drplan.plan.loader import load_plan
    from drplan.sim.estate import Estate, OsFamily

    estate = Estate.from_plan(load_plan(THREE_TIER), phase=Phase.failed_over_to_azure)
    for vm, os in os_by_vm.items():
        estate.vm(vm).os = OsFamily(os)
    return estate


@pytest.mark.parametrize(
    ("os_by_vm", "expected"),
    [
        # The plan maps app-01 (linux) to mt-lnx-01, but ASR reports a Windows VM.
        (
            {"app-01": "windows"},
            "a windows VM needs a windows master target; VM app-01 is mapped to mt-lnx-01",
        ),
        # One member of the sql group is Linux in ASR: the group would need two OSes on one master target.
        ({"sql-02": "linux"}, "replication group sql must use one master target and one OS"),
    ],
)
def test_reprotect_refuses_a_master_target_mismatch_before_any_write(
    external_sim, plan, os_by_vm, expected
) -> None:
    from drplan.run.outcomes import PreflightFailed
    from flows.reprotect import reprotect

    sim = external_sim(_estate(**os_by_vm))
    with pytest.raises(PreflightFailed) as refused:
        reprotect(str(plan), speed=SPEED)

    assert expected in str(refused.value)
    assert "reprotect-inputs" not in str(refused.value)
    assert "nothing was changed" in str(refused.value)
    assert sim.audit.requests() == [], "a write reached ASR before the master-target rules were checked"


def test_reprotect_waits_until_replication_health_is_ok(external_sim, plan, events) -> None:
    from drplan.run.events import observing
    from flows.reprotect import reprotect

    sim = external_sim(_estate())
    sim.estate.vm("app-01").replication_health = "Warning"
    polls: list[str] = []

    def heal_after_two_reads(event) -> None:
        if event.node == "app-01" and event.transition == "replication-health":
            polls.append(event.message)
            if len(polls) == 2:
                sim.estate.vm("app-01").replication_health = "Normal"

    with observing(heal_after_two_reads):
        result = reprotect(str(plan), speed=SPEED)

    assert polls[:3] == ["app-01: Warning", "app-01: Warning", "app-01: Normal"]
    rows = {row["vm"]: row for row in result["rows"]}
    assert rows["app-01"]["status"] == "protected"
    assert rows["app-01"]["health"].startswith("health Warning → Normal")
    assert all(row["status"] == "protected" for row in rows.values()), rows
    reprotected = {r["vm"] for r in sim.audit.requests("reProtect", outcome="accepted")}
    assert reprotected == set(rows)
    # app-01 was verified only once healthy: its "verified" comes after the Normal read.
    order = [(node, what, msg) for node, what, msg in events if node == "app-01"]
    normal = order.index(("app-01", "replication-health", "app-01: Normal"))
    assert [i for i, (_, what, _) in enumerate(order) if what == "verified"] == [len(order) - 1]
    assert normal < len(order) - 1
