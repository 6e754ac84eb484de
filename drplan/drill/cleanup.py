"""Drill cleanup: per-unit test-failover cleanup, and :func:`finish`, the safety net the flow calls in
``finally`` (cleans up every test failover this run or an earlier, killed one left, runs the after-cleanup
hooks that did not run, lists test VMs still present)."""

from __future__ import annotations

import logging

from drplan.drill import forward
from drplan.drill.hooks import after_cleanup_hook, after_cleanup_hooks
from drplan.drill.report import report_of
from drplan.drill.state import state, test_vm_name, vm_of
from drplan.errors import DrplanError
from drplan.run import outcomes
from drplan.run.budgets import budget
from drplan.run.context import RunContext
from drplan.run.fanout import concurrently

log = logging.getLogger(__name__)


def cleanup_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Clean up every member's test failover (removes the test VM). Runs whatever happened before."""
    if ctx.dry_run:
        return {}
    results = dict(concurrently(lambda vm: _cleanup_vm(ctx, unit, vm), list(ctx.graph.units[unit].vms)))
    ctx.emit(unit, "cleaned-up", ", ".join(f"{k}: {v}" for k, v in results.items()))
    return results


def _cleanup_vm(ctx: RunContext, unit: str, vm) -> tuple[str, str]:
    ds, report = state(ctx), report_of(ctx)
    ref = ctx.state.refs.get(vm.name)
    if ref is None:
        return vm.name, "not in the vault: nothing to clean up"
    item = ctx.asr.item_state(ref)
    pending = any(a.lower() == "testfailovercleanup" for a in item.allowed_operations)
    with ds.lock:
        started = vm.name in ds.started
    if not started and not pending and not item.current_job:
        return vm.name, "no test failover"
    try:
        if item.current_job:  # a test failover still running (a cancelled drill): let it end, then clean up
            job = ctx.asr.get_job(item.current_job, vm=vm.name, operation="drill cleanup")
            if not job.done:
                ctx.asr.wait_job(
                    job.name,
                    timeout=budget(ctx, vm, "failback"),
                    vm=vm.name,
                    operation="drill cleanup: wait for the test failover",
                    accept_suspended=True,
                )
        job = ctx.asr.test_failover_cleanup(
            ref, comments=f"drplan drill of plan {ctx.plan.name}", timeout=budget(ctx, vm, "commit")
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


def leftovers(ctx: RunContext) -> list[str]:
    """Test VMs of this run's test failovers still present: on-prem (read in one batch), and in Azure for
    modernized VMs (read through the compute API)."""
    ds = state(ctx)
    with ds.lock:
        vms = [vm_of(ctx, vm) for vm in ds.started]
    azure = [vm for vm in vms if forward.is_forward(ctx, vm.name)]
    left: list[str] = []
    if azure:
        try:
            left = forward.leftovers(ctx, azure)
        except DrplanError as exc:
            log.warning("could not read the Azure test VMs after cleanup: %s", exc)
            left = [forward.test_vm(ctx, vm)[0] for vm in azure] if ds.cleanup_errors else []
    names = [test_vm_name(vm) for vm in vms if vm not in azure]
    return sorted(left + _onprem_leftovers(ctx, names))


def _onprem_leftovers(ctx: RunContext, names: list[str]) -> list[str]:
    ds = state(ctx)
    if not names:
        return []
    try:
        site = ctx.onprem.read_state(names)
    except DrplanError as exc:
        log.warning("could not read the test VMs after cleanup: %s", exc)
        return sorted(names) if ds.cleanup_errors else []
    return sorted(n for n in names if (v := site.vms.get(n)) is not None and v.present)


def finish(ctx: RunContext, hooks: bool = True) -> list[str]:
    """The safety net, run in the flow's ``finally``: stop new test failovers, clean up what is left, run the
    after-cleanup hooks that did not run (``hooks``: the drill got past preflight), and return (and report)
    the test VMs still present."""
    ds, report = state(ctx), report_of(ctx)
    with ds.lock:
        ds.stopping = True  # from here on no test failover starts; wait for calls already under way
        if not ds.lock.wait_for(lambda: not ds.issuing, timeout=ctx.inputs.settings.drill_stop_wait):
            log.error(
                "test failovers of %s still under way after %ss; cleaning up anyway",
                sorted(ds.issuing),
                ctx.inputs.settings.drill_stop_wait,
            )
    if ctx.dry_run:
        return []
    units = {vm.name: u.name for u in ctx.graph.units.values() for vm in u.vms}
    for vm in ctx.plan.vms:
        with ds.lock:
            done = vm.name in ds.cleaned and vm.name not in ds.cleanup_errors
        if done or vm.name not in ctx.state.refs:
            continue
        try:
            _cleanup_vm(ctx, units.get(vm.name, vm.name), vm)
        except DrplanError as exc:
            log.error("drill cleanup of VM %s failed: %s", vm.name, exc)
    for node in after_cleanup_hooks(ctx) if hooks else ():
        with ds.lock:
            if node in ds.hooks_done:
                continue
        try:
            after_cleanup_hook(ctx, node)
        except DrplanError as exc:
            outcomes.fail(ctx, "hook", node, exc)
            log.error("after-cleanup hook %s failed: %s", node, exc)
    left = leftovers(ctx)
    with ds.lock:
        ds.leftovers = left
    if report is not None:
        report.leftovers = left
    return left
