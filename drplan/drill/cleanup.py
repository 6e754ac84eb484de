"""Drill cleanup: per-unit test-failover cleanup, and :func:`finish`, the safety net the flow calls in
``finally`` (cleans up every test failover this run or an earlier, killed one left, runs the after-cleanup
hooks that did not run, lists test VMs still present)."""

from __future__ import annotations

import logging
import os

from drplan.drill.hooks import after_cleanup_hook, after_cleanup_hooks
from drplan.drill.report import report_of
from drplan.drill.state import state, test_vm_name, vm_of
from drplan.errors import DrplanError
from drplan.run import outcomes
from drplan.run.budgets import budget
from drplan.run.context import Runtime
from drplan.run.fanout import concurrently

log = logging.getLogger(__name__)

STOP_WAIT = float(os.environ.get("DRPLAN_DRILL_STOP_WAIT", "3600"))  # wall seconds, a bound only


def cleanup_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Clean up every member's test failover (removes the test VM). Runs whatever happened before."""
    if rt.dry_run:
        return {}
    results = dict(concurrently(lambda vm: _cleanup_vm(rt, unit, vm), list(rt.graph.units[unit].vms)))
    rt.emit(unit, "cleaned-up", ", ".join(f"{k}: {v}" for k, v in results.items()))
    return results


def _cleanup_vm(rt: Runtime, unit: str, vm) -> tuple[str, str]:
    ds, report = state(rt), report_of(rt)
    ref = rt.refs.get(vm.name)
    if ref is None:
        return vm.name, "not in the vault: nothing to clean up"
    item = rt.asr.item_state(ref)
    pending = any(a.lower() == "testfailovercleanup" for a in item.allowed_operations)
    with ds.lock:
        started = vm.name in ds.started
    if not started and not pending and not item.current_job:
        return vm.name, "no test failover"
    try:
        if item.current_job:  # a test failover still running (a cancelled drill): let it end, then clean up
            job = rt.asr.get_job(item.current_job, vm=vm.name, operation="drill cleanup")
            if not job.done:
                rt.asr.wait_job(
                    job.name,
                    timeout=budget(rt, vm, "failback"),
                    vm=vm.name,
                    operation="drill cleanup: wait for the test failover",
                    accept_suspended=True,
                )
        job = rt.asr.test_failover_cleanup(
            ref, comments=f"drplan drill of plan {rt.plan.name}", timeout=budget(rt, vm, "commit")
        )
    except DrplanError as exc:
        with ds.lock:
            ds.cleanup_errors[vm.name] = str(exc)
        if report is not None:
            report.measure(unit, vm.name, cleanup=f"✗ {str(exc).splitlines()[0][:200]}")
        raise
    what = "nothing to clean up" if job.reused and not job.name else "test VM removed"
    with ds.lock:
        ds.cleaned.add(vm.name)
        ds.cleanup_errors.pop(vm.name, None)
    if report is not None:
        report.measure(unit, vm.name, cleanup=f"✓ {what}" if started or pending else "")
    return vm.name, what


def leftovers(rt: Runtime) -> list[str]:
    """Test VMs of this run's test failovers still present on-prem (read in one batch)."""
    ds = state(rt)
    with ds.lock:
        names = [test_vm_name(vm_of(rt, vm)) for vm in ds.started]
    if not names:
        return []
    try:
        site = rt.onprem.read_state(names)
    except DrplanError as exc:
        log.warning("could not read the test VMs after cleanup: %s", exc)
        return sorted(names) if ds.cleanup_errors else []
    return sorted(n for n in names if (v := site.vms.get(n)) is not None and v.present)


def finish(rt: Runtime, *, hooks: bool = True) -> list[str]:
    """The safety net, run in the flow's ``finally``: stop new test failovers, clean up what is left, run the
    after-cleanup hooks that did not run (``hooks``: the drill got past preflight), and return (and report)
    the test VMs still present."""
    ds, report = state(rt), report_of(rt)
    with ds.lock:
        ds.stopping = True  # from here on no test failover starts; wait for calls already under way
        if not ds.lock.wait_for(lambda: not ds.issuing, timeout=STOP_WAIT):
            log.error(
                "test failovers of %s still under way after %ss; cleaning up anyway",
                sorted(ds.issuing),
                STOP_WAIT,
            )
    if rt.dry_run:
        return []
    units = {vm.name: u.name for u in rt.graph.units.values() for vm in u.vms}
    for vm in rt.plan.vms:
        with ds.lock:
            done = vm.name in ds.cleaned and vm.name not in ds.cleanup_errors
        if done or vm.name not in rt.refs:
            continue
        try:
            _cleanup_vm(rt, units.get(vm.name, vm.name), vm)
        except DrplanError as exc:
            log.error("drill cleanup of VM %s failed: %s", vm.name, exc)
    for node in after_cleanup_hooks(rt) if hooks else ():
        with ds.lock:
            if node in ds.hooks_done:
                continue
        try:
            after_cleanup_hook(rt, node)
        except DrplanError as exc:
            outcomes.fail(rt, "hook", node, exc)
            log.error("after-cleanup hook %s failed: %s", node, exc)
    left = leftovers(rt)
    with ds.lock:
        ds.leftovers = left
    if report is not None:
        report.leftovers = left
    return left
