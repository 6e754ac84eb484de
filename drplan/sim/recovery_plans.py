"""Simulated ASR recovery plans: create, read, allowed operations, and plan-level actions (every item
validated by the same rules, one job for all)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drplan.sim.engine_base import EngineBase
from drplan.sim.records import Job, RecoveryPlan
from drplan.sim.recovery_points import SimPoint, common_app_point, latest
from drplan.sim.rules import FRIENDLY, OP_ALLOWED, SimError, phase_view

if TYPE_CHECKING:
    from drplan.sim.items import Item


class RecoveryPlans(EngineBase):
    """Recovery-plan requests (a mixin of :class:`drplan.sim.lifecycle.Engine`)."""

    def create_plan(self, name: str, body: dict) -> RecoveryPlan:
        with self.lock:
            props = (body or {}).get("properties") or {}
            groups = props.get("groups")
            if (
                not props.get("primaryFabricId")
                or not props.get("recoveryFabricId")
                or not isinstance(groups, list)
            ):
                raise SimError(
                    400,
                    "InvalidRequest",
                    f"recovery plan {name!r}: primaryFabricId, recoveryFabricId and groups are required",
                )
            vms: list[str] = []
            problems = []
            for g in groups:
                for rpi in g.get("replicationProtectedItems") or []:
                    ref = (rpi.get("id") or rpi.get("virtualMachineId") or "").rstrip("/").rsplit("/", 1)[-1]
                    item = self.item_by_name(ref)
                    if item is None:
                        problems.append(
                            (
                                "ProtectedItemNotFound",
                                f"recovery plan {name!r}: protected item {ref!r} not found",
                            )
                        )
                    elif item.vm not in vms:
                        vms.append(item.vm)
            if len(vms) > 100:
                problems.append(
                    ("TooManyItems", f"recovery plan {name!r}: {len(vms)} VMs, at most 100 are allowed")
                )
            if problems:
                raise SimError(400, problems[0][0], problems[0][1], problems)
            existing = self.plans.get(name)
            if existing and existing.current_job:
                raise SimError(409, "OperationInProgress", f"recovery plan {name!r} has a job running")
            plan = RecoveryPlan(
                name=name,
                groups=groups,
                items=vms,
                primary_fabric_id=props["primaryFabricId"],
                recovery_fabric_id=props["recoveryFabricId"],
                deployment_model=props.get("failoverDeploymentModel") or "ResourceManager",
            )
            self.plans[name] = plan
            return plan

    def plan(self, name: str) -> RecoveryPlan:
        plan = self.plans.get(name)
        if plan is None:
            raise SimError(404, "NotFound", f"recovery plan {name!r} not found")
        return plan

    def plan_allowed_ops(self, plan: RecoveryPlan) -> list[str]:
        if plan.current_job and self.jobs[plan.current_job].running:
            return []
        sets = [set(self.allowed_ops(self.items[vm])) for vm in plan.items if vm in self.items]
        if not sets:
            return []
        common = set.intersection(*sets) - {"DisableProtection"}
        if self._modernized_in(plan):  # plan-level reprotect does not exist on the modernized stack
            common.discard(OP_ALLOWED["reProtect"])
        return [op for op in OP_ALLOWED.values() if op in common]

    def _modernized_in(self, plan: RecoveryPlan) -> list[str]:
        return [vm for vm in plan.items if self.estate.vm(vm).provider == "modernized"]

    def plan_action(self, op: str, plan: RecoveryPlan, body: dict) -> Job:
        with self.lock:
            self.tick()
            if plan.current_job and self.jobs[plan.current_job].running:
                raise SimError(
                    409,
                    "OperationInProgress",
                    f"{FRIENDLY[op]} of recovery plan '{plan.name}' refused: job {plan.current_job} "
                    "is still running",
                )
            modern = self._modernized_in(plan)
            if op == "reProtect" and modern:
                raise SimError(
                    400,
                    "OperationNotSupported",
                    f"Reprotect of recovery plan '{plan.name}' refused: recovery-plan reprotect is for "
                    "deprecated scenarios and does not exist for InMageRcm / InMageRcmFailback items "
                    f"({', '.join(modern)}); reprotect each protected item",
                )
            fault = self._match_fault(op, plan.name, "request")
            if fault:
                raise SimError(
                    fault.status,
                    fault.code,
                    f"{FRIENDLY[op]} of recovery plan '{plan.name}': {fault.message}",
                )
            items = [self.items[vm] for vm in plan.items]
            props = (body or {}).get("properties") or {}
            psds = props.get("providerSpecificDetails") or []
            plan_points = self._plan_points(op, items, psds)
            kinds: dict[str, str] = {}
            ctxs: dict[str, dict] = {}
            problems: list[tuple[str, str]] = []
            for it in items:
                try:
                    kind, ctx = self._validate(op, it, body, plan_level=True, plan_points=plan_points)
                except SimError as exc:
                    problems.extend(exc.details or [(exc.code, exc.message)])
                    continue
                if kind == "reprotect-onprem":
                    vm = self.vm_of(it)
                    ctx["master_target"], ctx["process_server"] = vm.master_target, vm.process_server
                kinds[it.vm], ctxs[it.vm] = kind, ctx
            if not problems and len(set(kinds.values())) > 1:
                problems.append(
                    (
                        "OperationNotAllowed",
                        f"{FRIENDLY[op]} of recovery plan '{plan.name}' refused: "
                        "its VMs are in different phases",
                    )
                )
            if problems:
                raise SimError(
                    400,
                    problems[0][0],
                    f"{FRIENDLY[op]} of recovery plan '{plan.name}' refused: "
                    f"{problems[0][1]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                    problems,
                )
            if not items:
                raise SimError(400, "InvalidRequest", f"recovery plan '{plan.name}' has no protected items")
            kind = next(iter(kinds.values()))
            return self._start_job(op, kind, items, {}, body, resource=("plan", plan.name), ctxs=ctxs)

    def _plan_points(self, op: str, items: list[Item], psds: list[dict]) -> dict[str, SimPoint]:
        if op not in ("unplannedFailover", "testFailover"):
            return {}
        out: dict[str, SimPoint] = {}
        by_type = {p.get("instanceType"): p for p in psds if isinstance(p, dict)}
        groups: dict[str, dict[str, list[SimPoint]]] = {}
        for it in items:
            vm = self.vm_of(it)
            provider = phase_view(vm)[0]
            spec = by_type.get(provider, {})
            rp_type = spec.get("recoveryPointType") or ("LatestTime" if provider == "InMage" else "Latest")
            pts = self.points(it)
            app = rp_type in ("LatestTag", "LatestApplicationConsistent")
            multi = app and (provider == "InMage" or spec.get("useMultiVmSyncPoint") in ("True", "Enable"))
            if multi and vm.replication_group:
                groups.setdefault(vm.replication_group, {})[vm.name] = pts
                continue
            p = latest(pts, app=app)
            if p:
                out[vm.name] = p
        for members in groups.values():
            common = common_app_point(members)
            if common:
                out.update(common)
        return out
