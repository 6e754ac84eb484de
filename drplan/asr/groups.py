"""Replication groups: fail back together, either item by item to the common point or by an ASR recovery plan.

The mode comes from the plan (``failback.group_failback_mode``, per group ``failback_mode``). Per item, every
member gets ``Custom`` with its own id of the group's common point, all issued before any is awaited. By
recovery plan, drplan creates (or reuses) an ASR plan holding just the members and fails it over; ASR takes
no point ids there, so the policy becomes ``LatestTag`` (app-consistent) or ``LatestTime`` (latest).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from drplan.asr.base import AsrBase
from drplan.errors import AsrError, JobTimeout, PreconditionError, TransientError
from drplan.observed import ItemRef, Job, JobStatus, Phase, RecoveryPoint
from drplan.plan.schema import GroupFailbackMode, RecoveryPointPolicy
from drplan.recovery.phase import phase_of


def recovery_plan_name(group: str) -> str:
    """The ASR recovery plan drplan owns for a replication group."""
    return f"drplan-{group}"


def plan_point_type(policy: RecoveryPointPolicy | str | None) -> str:
    return "LatestTime" if policy in (RecoveryPointPolicy.latest, "latest") else "LatestTag"


class GroupsMixin(AsrBase):
    def _all_members(
        self,
        group: str,
        refs: Sequence[ItemRef],
        operation: str,
        start: Callable[[ItemRef], Job],
        *,
        wait: bool,
        timeout: float | None,
        accept_suspended: bool = False,
    ) -> dict[str, Job]:
        """Start the operation on every member, then await them all; one error names each failed member."""
        jobs: dict[str, Job] = {}
        failures: list[AsrError] = []
        for ref in refs:
            try:
                jobs[ref.vm] = start(ref)
            except AsrError as err:
                failures.append(err)
        if wait:
            started = self.clock.monotonic()
            deadline = started + (self.job_timeout if timeout is None else timeout)
            for ref in refs:
                job = jobs.get(ref.vm)
                if job is None or job.done or not job.name or job.state is JobStatus.suspended:
                    continue
                since = self.clock.monotonic() - started
                try:
                    done = self.wait_job(
                        job.name,
                        deadline,
                        vm=ref.vm,
                        operation=operation,
                        first_delay=max(0.0, job.poll_after - since) if job.poll_after else None,
                        check=True,
                        accept_suspended=accept_suspended,
                    )
                    jobs[ref.vm] = replace(done, reused=job.reused)
                except AsrError as err:
                    failures.append(err)
        if failures:
            raise _combine(
                failures,
                f"{operation} of replication group {group} failed for {len(failures)} of {len(refs)} VMs",
                operation,
            )
        return jobs

    def failback_group(
        self,
        group: str,
        refs: Sequence[ItemRef],
        *,
        mode: GroupFailbackMode | str = GroupFailbackMode.per_item,
        points: Mapping[str, RecoveryPoint] | None = None,
        point_type: str = "LatestTag",
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Job]:
        """Fail a replication group back together.

        Per item: each member to its point in ``points`` (a :class:`~drplan.recovery.points.PointDecision`'s
        choices), required unless ``point_type`` is ``LatestTime``. By recovery plan ASR takes no point ids,
        only ``point_type`` (``LatestTag``: the group's newest common multi-VM sync point; ``LatestTime``)."""
        if GroupFailbackMode(mode) is GroupFailbackMode.recovery_plan:
            name = recovery_plan_name(group)
            family = self._family(group, refs)
            self.ensure_recovery_plan(name, refs)
            if family == "modernized":
                job = self._plan_planned_failback(name, refs, point_type, wait=wait, timeout=timeout)
            else:
                job = self.plan_failback(name, refs, point_type=point_type, wait=wait, timeout=timeout)
            return {r.vm: job for r in refs}
        points = dict(points or {})
        lacking = [r.vm for r in refs if r.vm not in points]
        if lacking and point_type != "LatestTime":
            raise AsrError(
                f"failback of VM {', '.join(lacking)} (replication group {group}): no recovery point chosen; "
                "choose the group's common point with drplan.recovery.points first",
                vm=", ".join(lacking),
                operation="failback",
            )
        return self._all_members(
            group,
            refs,
            "failback",
            lambda r: self.failback(r, points.get(r.vm), point_type="LatestTime", wait=False),
            wait=wait,
            timeout=timeout,
        )

    def _family(self, group: str, refs: Sequence[ItemRef]) -> str:
        """``modernized`` or ``classic``: the provider family every member replicates with (one batched read);
        a group mixing both is refused (one recovery plan cannot fail back both)."""
        states = self.item_states(refs)
        families = {vm: s.family for vm, s in states.items()}
        kinds = set(families.values())
        if len(kinds) > 1:
            listing = ", ".join(f"{vm}: {states[vm].provider}" for vm in sorted(families))
            raise PreconditionError(
                f"failback of VM {', '.join(r.vm for r in refs)} (replication group {group}) refused: its "
                f"members replicate with different providers ({listing}); migrate them all to the modernized "
                "experience first",
                vm=", ".join(r.vm for r in refs),
                operation="failback",
                rule="a replication group's members replicate with one provider",
            )
        return kinds.pop() if kinds else "classic"

    def _plan_planned_failback(
        self, name: str, refs: Sequence[ItemRef], point_type: str, *, wait: bool, timeout: float | None
    ) -> Job:
        """The modernized group's planned failover (multi-VM sync on); a failed job is rolled back (ASR does,
        or drplan cancels the members it left failed back) before the error is raised."""
        from drplan.asr.rcm_operations import rcm_point_type, rolled_back

        op = "failback (planned failover)"
        label = f"{', '.join(r.vm for r in refs)} (recovery plan {name})"
        try:
            rp_type = rcm_point_type(point_type)
        except ValueError as exc:
            raise PreconditionError(f"{op} of VM {label}: {exc}", vm=label, operation=op) from None
        job = self.plan_planned_failback(name, refs, point_type=rp_type, wait=False)
        if not wait or not job.name or job.done and job.state is JobStatus.succeeded:
            return job
        try:
            done = self.wait_job(
                job.name, timeout=timeout, vm=label, operation=op, first_delay=job.poll_after, check=True
            )
        except (JobTimeout, TransientError):  # still running, or not known: a retry awaits it again
            raise
        except AsrError as err:
            phases = {vm: phase_of(s) for vm, s in self.item_states(refs).items()}
            if not any(p is Phase.failed_back for p in phases.values()):
                what = "ASR rolled it back: the on-prem VMs are off and the Azure VMs run again"
            else:
                cancel = self.plan_cancel(name, refs, timeout=timeout)
                what = f"ASR did not roll it back, so drplan cancelled it (job {cancel.name or '(done)'})"
            raise rolled_back(err, what) from None
        return replace(done, reused=job.reused)

    def _by_mode(
        self,
        group: str,
        refs: Sequence[ItemRef],
        mode: GroupFailbackMode | str,
        operation: str,
        *,
        by_plan: Callable[[str], Job],
        by_item: Callable[[ItemRef], Job],
        wait: bool,
        timeout: float | None,
    ) -> dict[str, Job]:
        """One job for every member through the group's recovery plan (``by_plan(plan name)``), or
        ``by_item`` on every member (:meth:`_all_members`)."""
        if GroupFailbackMode(mode) is GroupFailbackMode.recovery_plan:
            job = by_plan(recovery_plan_name(group))
            return {r.vm: job for r in refs}
        return self._all_members(group, refs, operation, by_item, wait=wait, timeout=timeout)

    def commit_group(
        self,
        group: str,
        refs: Sequence[ItemRef],
        *,
        mode: GroupFailbackMode | str = GroupFailbackMode.per_item,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Job]:
        return self._by_mode(
            group,
            refs,
            mode,
            "commit",
            by_plan=lambda name: self.plan_commit(name, refs, wait=wait, timeout=timeout),
            by_item=lambda r: self.commit(r, wait=False),
            wait=wait,
            timeout=timeout,
        )

    def test_failover_group(
        self,
        group: str,
        refs: Sequence[ItemRef],
        *,
        mode: GroupFailbackMode | str = GroupFailbackMode.per_item,
        points: Mapping[str, RecoveryPoint] | None = None,
        policy: RecoveryPointPolicy | str = RecoveryPointPolicy.common_app_consistent,
        network_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Job]:
        if GroupFailbackMode(mode) is GroupFailbackMode.recovery_plan:
            name = recovery_plan_name(group)
            self.ensure_recovery_plan(name, refs)
            job = self.plan_test_failover(
                name,
                refs,
                point_type=plan_point_type(policy),
                network_id=network_id,
                wait=wait,
                timeout=timeout,
            )
            return {r.vm: job for r in refs}
        points = dict(points or {})
        return self._all_members(
            group,
            refs,
            "test failover",
            lambda r: self.test_failover(r, points.get(r.vm), network_id=network_id, wait=False),
            wait=wait,
            timeout=timeout,
            accept_suspended=True,
        )

    def test_failover_cleanup_group(
        self,
        group: str,
        refs: Sequence[ItemRef],
        *,
        mode: GroupFailbackMode | str = GroupFailbackMode.per_item,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Job]:
        return self._by_mode(
            group,
            refs,
            mode,
            "test failover cleanup",
            by_plan=lambda name: self.plan_test_failover_cleanup(name, refs, wait=wait, timeout=timeout),
            by_item=lambda r: self.test_failover_cleanup(r, wait=False),
            wait=wait,
            timeout=timeout,
        )


def _combine(failures: list[AsrError], headline: str, operation: str) -> AsrError:
    """One error of the first failure's type whose message lists every member's failure."""
    first = failures[0]
    kw: dict = {"vm": ", ".join(f.vm for f in failures), "operation": operation, "code": first.code}
    if isinstance(first, PreconditionError):
        kw["rule"] = first.rule
    if isinstance(first, TransientError):
        kw["retry_after"] = first.retry_after
    if isinstance(first, JobTimeout):
        kw["job"] = first.job
    return type(first)(headline + ":\n  " + "\n  ".join(str(f) for f in failures), **kw)
