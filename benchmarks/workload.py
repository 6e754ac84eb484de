"""A benchmark workload: a seeded synthetic plan whose steps take REAL seconds, and the estate that serves it.

The plan comes from :mod:`benchmarks.synth`; this module makes it runnable unattended on the simulated
estate at sim speed 1.0 (so orchestration overhead is part of what is measured):

* every VM gets seeded per-VM durations in real seconds (failback, boot, commit, reprotect to Azure), drawn
  uniformly from :class:`Timing` ranges; the same numbers go into the plan (``vms[].durations``, the plan's
  own estimate) and into the estate (``vms[].durations``, what the simulator does);
* hooks become unattended: shell hooks run ``true``, wait hooks wait ``Timing.wait_hook`` seconds, approval
  hooks become shell hooks (nobody answers a benchmark);
* verification polls every second (``defaults.boot_timeout`` ≤ 50 s gives the 1 s poll step of
  ``RemoteSite.wait_for_boot``), and the agent registers at once (no "agent isn't installed" retries);
* recovery points are kept ``Timing.point_retention`` (2 h: one page per VM; see the README for 24 h);
* data-loss guards are dropped (generated recovery points are hourly; a guard would abort the run).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.synth import Spec, synth_plan_data, to_yaml

STEPS = ("failback", "boot", "commit", "reprotect")


@dataclass(frozen=True)
class Timing:
    """Per-VM step durations in real seconds: uniform in ``(low, high)``."""

    failback: tuple[float, float] = (2.0, 4.0)
    boot: tuple[float, float] = (0.5, 1.5)
    commit: tuple[float, float] = (0.5, 1.5)
    reprotect: tuple[float, float] = (1.0, 2.0)
    wait_hook: float = 1.0
    boot_timeout: float = 50.0  # → 1 s boot-poll step (max(1, timeout / 50))
    point_retention: float = 7200.0  # simulated recovery-point retention: 2 h = one page of points per VM

    def scaled(self, factor: float) -> Timing:
        """Every duration times ``factor`` (the smoke test runs a compressed workload)."""

        def s(r: tuple[float, float]) -> tuple[float, float]:
            return (r[0] * factor, r[1] * factor)

        return Timing(
            failback=s(self.failback),
            boot=s(self.boot),
            commit=s(self.commit),
            reprotect=s(self.reprotect),
            wait_hook=self.wait_hook * factor,
            boot_timeout=self.boot_timeout,
            point_retention=self.point_retention,
        )


@dataclass
class Workload:
    """Plan data (plain dicts) plus the per-VM real-second durations the estate uses."""

    vms: int
    seed: int
    data: dict
    durations: dict[str, dict[str, float]]  # vm -> step -> seconds
    hook_waits: dict[str, float] = field(default_factory=dict)  # wait hook -> seconds
    point_retention: float = 7200.0

    def write_plan(self, path: Path, data: dict | None = None) -> Path:
        path.write_text(to_yaml(self.data if data is None else data) + "\n", encoding="utf-8")
        return path

    def to_json(self) -> dict:
        return {
            "vms": self.vms,
            "seed": self.seed,
            "durations": self.durations,
            "hook_waits": self.hook_waits,
            "point_retention": self.point_retention,
        }


def spec_for(vms: int, seed: int) -> Spec:
    """The standard seeded plan shape for ``vms`` VMs (the one the README's table uses)."""
    return Spec(vms=vms, seed=seed, hooks=4)


def build_workload(vms: int, seed: int = 1, timing: Timing | None = None) -> Workload:
    timing = timing or Timing()
    data = synth_plan_data(spec_for(vms, seed))
    rnd = random.Random(f"durations-{seed}-{vms}")
    durations: dict[str, dict[str, float]] = {}
    for vm in data["vms"]:
        d = {step: round(rnd.uniform(*getattr(timing, step)), 3) for step in STEPS}
        durations[vm["name"]] = d
        vm["durations"] = {
            "failback": d["failback"],
            "boot": d["boot"],
            "verify": 0,
            "commit": d["commit"],
            "reprotect": d["reprotect"],
        }
        vm.pop("max_data_loss", None)
    for group in data["replication_groups"]:
        group.pop("max_data_loss", None)
    hook_waits: dict[str, float] = {}
    hooks = []
    for hook in data["hooks"]:
        kept = {k: v for k, v in hook.items() if k in ("name", "depends_on")}
        if hook["kind"] == "wait":
            kept.update(kind="wait", duration=timing.wait_hook)
            hook_waits[hook["name"]] = timing.wait_hook
        else:
            kept.update(kind="shell", command="true", timeout=30)
        hooks.append(kept)
    data["hooks"] = hooks
    data["defaults"] = {"boot_timeout": timing.boot_timeout}
    data["failback"] = {"commit": "after-verification"}
    return Workload(
        vms=vms,
        seed=seed,
        data=data,
        durations=durations,
        hook_waits=hook_waits,
        point_retention=timing.point_retention,
    )


def estate_for(
    plan,
    durations: dict[str, dict[str, float]],
    *,
    point_retention: float = 7200.0,
    provider: str = "classic",
    throttling: bool = False,
):
    """The simulated estate for ``plan`` with the workload's per-VM durations (agent registers at once), on
    the ``provider``'s ASR stack; ``throttling``: ARM's per-subscription token buckets (ARM's figures)."""
    from drplan.sim.estate import Durations, Estate, PointGenerator, VmDurations

    estate = Estate.from_plan(plan, provider="modernized" if provider == "modernized" else "classic")
    estate.throttling.enabled = throttling
    estate.durations = Durations(agent_registration=0.0)
    estate.recovery_points = PointGenerator(retention=point_retention)
    for vm in estate.vms:
        d = durations.get(vm.name)
        if d:
            vm.durations = VmDurations(
                failback=d["failback"], boot=d["boot"], commit=d["commit"], reprotect_to_azure=d["reprotect"]
            )
    return estate


def timing_dict(timing: Timing) -> dict:
    return asdict(timing)
