"""The simulated ASR job engine: jobs made of timed steps, run in simulated-time order by :meth:`tick`,
with the faults configured for the ``job`` stage; a failed step skips the rest and undoes what it must."""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import TYPE_CHECKING

from drplan.sim.engine_base import EngineBase
from drplan.sim.estate import OperationFault
from drplan.sim.records import Job
from drplan.sim.records import Step as Step  # re-exported: lifecycle and transitions import it from here
from drplan.sim.rules import FRIENDLY, SCENARIO, SimError

if TYPE_CHECKING:
    from drplan.sim.items import Item


#: job kind -> the Durations field a VM may override (estate ``vms[].durations``)
_DURATION_FIELD = {
    "failback": "failback",
    "failover": "failover",
    "commit-failback": "commit",
    "commit-failover": "commit",
    "cancel-failback": "failover_cancel",
    "cancel-failover": "failover_cancel",
    "reprotect-onprem": "reprotect",
    "reprotect-azure": "reprotect_to_azure",
    "drill-onprem": "test_failover",
    "drill-azure": "test_failover",
    "drill-cleanup": "test_failover_cleanup",
    "rcm-failback": "failback",
    "rcm-reprotect-onprem": "reprotect",
    "rcm-reprotect-alternate": "reprotect_alternate",
    "rcm-reprotect-azure": "reprotect_to_azure",
    "rcm-failover": "failover",
    "rcm-change-pit": "commit",
    "rcm-drill": "test_failover",
    "rcm-drill-cleanup": "test_failover_cleanup",
}


class JobEngine(EngineBase):
    """Starting, running and reading jobs (a mixin of :class:`drplan.sim.lifecycle.Engine`)."""

    def tick(self) -> None:
        """Run every job step whose simulated time has come, in time order."""
        with self.lock:
            now = self.clock.now()
            heap: list[tuple[datetime, int, str]] = []
            for job in self.jobs.values():
                self._push(heap, job, now)
            while heap:
                _, _, name = heapq.heappop(heap)
                job = self.jobs[name]
                self._run_step(job)
                self._push(heap, job, now)

    def _push(self, heap: list, job: Job, now: datetime) -> None:
        if not job.running:
            return
        i = self._next_step(job)
        if i is None:
            return
        t = job.step_time(i)
        if t <= now:
            heapq.heappush(heap, (t, job.seq, job.name))

    @staticmethod
    def _next_step(job: Job) -> int | None:
        return next((i for i, s in enumerate(job.steps) if s.state in ("NotStarted", "InProgress")), None)

    def _run_step(self, job: Job) -> None:
        i = self._next_step(job)
        assert i is not None
        step = job.steps[i]
        t = job.step_time(i)
        step.start = step.start or (job.step_time(i - 1) if i else job.start)
        errors = []
        for vm in job.items:
            item = self.items[vm]
            err = step.check(item, t) if step.check else None
            if err is None and i == len(job.steps) - 1:
                err = self._job_fault(job.op, vm)
            if err:
                errors.append(err)
        step.end = t
        if errors:
            step.state = "Failed"
            step.errors = errors
            for s in job.steps[i + 1 :]:
                s.state = "Skipped"
            job.state, job.state_description, job.end = "Failed", "Failed", t
            job.errors = [(c, m, step.task_id) for c, m in errors]
            for vm in job.items:
                item = self.items[vm]
                if job.on_fail:
                    job.on_fail(item, t)
                if item.current_job == job.name:
                    item.current_job = None
            self._finish(job)
            return
        for vm in job.items:
            if step.effect:
                step.effect(self.items[vm], t)
        step.state = "Succeeded"
        if i == len(job.steps) - 1:
            job.state, job.state_description, job.end = "Succeeded", "Completed", t
            for vm in job.items:
                item = self.items[vm]
                if item.current_job == job.name:
                    item.current_job = None
            if job.on_done:
                job.on_done(t)
            self._finish(job)
        else:
            job.steps[i + 1].state = "InProgress"
            job.steps[i + 1].start = t

    def _finish(self, job: Job) -> None:
        if job.resource[0] == "plan":
            plan = self.plans.get(job.resource[1])
            if plan and plan.current_job == job.name:
                plan.current_job = None
        self.audit.record(
            time=job.end,
            event="job",
            operation=job.op,
            job=job.name,
            outcome=job.state.lower(),
            vm=job.items[0] if job.resource[0] == "item" else None,
            plan=job.resource[1] if job.resource[0] == "plan" else None,
            vms=list(job.items),
            code=job.errors[0][0] if job.errors else None,
            message=job.errors[0][1] if job.errors else None,
        )

    def _job_fault(self, op: str, vm: str) -> tuple[str, str] | None:
        f = self._match_fault(op, vm, "job")
        return (f.code, f"{FRIENDLY.get(op, op)} of VM '{vm}' failed: {f.message}") if f else None

    def _match_fault(self, op: str, vm: str | None, stage: str) -> OperationFault | None:
        for f in self.estate.faults.operations:
            if f.stage != stage or f.operation.lower() != op.lower():
                continue
            if f.vm is not None and f.vm != vm:
                continue
            if f.mode == "once" and f.fired:
                continue
            f.fired += 1
            return f
        return None

    def job_status(self, name: str) -> Job:
        with self.lock:
            self.tick()
            job = self.jobs.get(name)
            if job is None:
                raise SimError(404, "NotFound", f"replication job {name!r} not found")
            return job

    def _start_job(
        self,
        op: str,
        kind: str,
        items: list[Item],
        ctx: dict | dict[str, dict],
        body: dict,
        *,
        resource: tuple[str, str],
        ctxs: dict[str, dict] | None = None,
    ) -> Job:
        now = self.clock.now()
        d = self.estate.durations
        ctxs = ctxs or {it.vm: ctx for it in items}
        steps, on_fail = self._steps(kind, ctxs)
        field_name = _DURATION_FIELD[kind]
        duration = getattr(d, field_name)
        own = [
            getattr(v.durations, field_name)
            for v in (self.vm_of(it) for it in items)
            if v.durations is not None and getattr(v.durations, field_name) is not None
        ]
        if own:  # per-VM overrides: a multi-VM job takes as long as its slowest member
            duration = max(own)
        name = self.new_id()
        for s in steps:
            s.task_id = self.new_id()
        steps[0].state, steps[0].start = "InProgress", now
        self._seq += 1
        if resource[0] == "item":
            target_type, target_name, target_id = "ProtectionEntity", items[0].vm, items[0].name
        else:
            target_type, target_name, target_id = "RecoveryPlan", resource[1], self.plan_id(resource[1])
        job = Job(
            name=name,
            op=op,
            scenario=SCENARIO[op],
            friendly=FRIENDLY[op],
            target_type=target_type,
            target_name=target_name,
            target_id=target_id,
            items=[it.vm for it in items],
            resource=resource,
            start=now,
            duration=duration,
            steps=steps,
            on_fail=on_fail,
            seq=self._seq,
            points={vm: c["point"] for vm, c in ctxs.items() if c.get("point")},
            direction=next((c.get("direction") for c in ctxs.values()), None),
        )
        self.jobs[name] = job
        for it in items:
            it.current_job = name
            self._on_start(kind, it, ctxs[it.vm], now, job)
        if resource[0] == "plan":
            plan = self.plans[resource[1]]
            plan.current_job = plan.last_job = name
            if kind in ("failback", "failover", "rcm-failover"):
                plan.last_unplanned_failover_time = now
            if kind == "rcm-failback":
                plan.last_planned_failover_time = now
            if kind in ("drill-onprem", "drill-azure", "rcm-drill"):
                plan.last_test_failover_time = now
                job.on_done = lambda t, p=plan: setattr(p, "test_waiting", True)
            if kind in ("drill-cleanup", "rcm-drill-cleanup"):
                job.on_done = lambda t, p=plan: setattr(p, "test_waiting", False)
        self.tick()
        return job
