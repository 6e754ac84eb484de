"""Both implementations of :class:`drplan.run.ports.OnPremSite` over the same plan: vcsim (pyVmomi) and the
simulated estate's on-prem side. Each test gets one, through the parametrized ``impl`` fixture."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from vcenter.vcsim_server import VcsimUnavailable, build_vcsim, running_vcsim

from drplan.plan.loader import load_plan
from drplan.plan.schema import Plan

PLAN = Path(__file__).resolve().parents[2] / "plans" / "three-tier.yaml"
DRILL_PORT_GROUP = "drill-network"  # the simulated estate's default drill port group


@dataclass
class Impl:
    """One implementation under contract, with its timeouts in its own clock's seconds."""

    kind: str
    site: Any  # OnPremSite + control verbs
    fail_timeout: float  # long enough that a VM with working tools would have booted


@pytest.fixture(scope="session")
def plan() -> Plan:
    return load_plan(PLAN)


def vm_names(plan: Plan) -> list[str]:
    return [v.vcenter_name or v.name for v in plan.vms]


@pytest.fixture(scope="module", params=[pytest.param("vcsim", marks=pytest.mark.vcsim), "simulated"])
def impl(request, plan, tmp_path_factory):
    if request.param == "vcsim":
        try:
            binary = build_vcsim()
        except VcsimUnavailable as exc:
            if os.environ.get("CI"):
                pytest.fail(f"vcsim is required in CI: {exc}")
            pytest.skip(f"vcsim unavailable: {exc}")
        names = vm_names(plan) + [m.name for m in plan.master_targets]
        with running_vcsim(
            tmp_path_factory.mktemp("vcsim-contract"),
            vms=len(names) + 2,
            names=names,
            portgroups=[DRILL_PORT_GROUP],
            binary=binary,
        ) as sim:
            site = sim.site()
            yield Impl("vcsim", site, fail_timeout=1)
            site.close()
    else:
        from drplan.sim import Estate, start_simulator

        with start_simulator(Estate.from_plan(plan), speed=60000) as sim:
            yield Impl("simulated", sim.onprem, fail_timeout=600)
            sim.onprem.close()
