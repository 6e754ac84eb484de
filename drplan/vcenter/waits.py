"""Waiting on vCenter without fixed sleeps: property-collector ``WaitForUpdatesEx`` on a private collector.

The server holds each call until a watched property changes (or ``maxWaitSeconds`` passes), so a wait
costs a few round trips however long it lasts, and reacts as soon as the VM or task changes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

from pyVmomi import vim, vmodl

from drplan.clock import Clock
from drplan.errors import VCenterError
from drplan.vcenter.connect import MAX_SERVER_WAIT, map_error

PC = vmodl.query.PropertyCollector


class WaitExpired(Exception):
    """Internal: the deadline passed; ``props`` holds the last values seen."""

    def __init__(self, props: dict[str, Any]):
        super().__init__("deadline passed")
        self.props = props


def watch(
    content: Any,
    obj: Any,
    paths: Sequence[str],
    done: Callable[[dict[str, Any]], bool],
    *,
    timeout: float,
    clock: Clock,
) -> dict[str, Any]:
    """Watch ``paths`` of ``obj`` until ``done(props)``; return the props or raise :class:`WaitExpired`.

    The first call returns the current values at once (``timeout=0`` means "check once"). A private
    property collector is created for the wait and always destroyed.
    """
    deadline = clock.monotonic() + max(timeout, 0.0)
    collector = content.propertyCollector.CreatePropertyCollector()
    try:
        collector.CreateFilter(
            PC.FilterSpec(
                objectSet=[PC.ObjectSpec(obj=obj, skip=False)],
                propSet=[PC.PropertySpec(type=type(obj), all=False, pathSet=list(paths))],
            ),
            partialUpdates=False,
        )
        props: dict[str, Any] = {}  # vSphere property values: any managed type
        version, gone = "", False
        while True:
            remaining = deadline - clock.monotonic()
            wait = 0 if not version else max(1, min(MAX_SERVER_WAIT, math.ceil(remaining)))
            update = collector.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=wait))
            if update is not None:
                version = update.version
                for filter_update in update.filterSet or ():
                    for object_update in filter_update.objectSet or ():
                        if object_update.kind == "leave":
                            gone = True
                        for change in object_update.changeSet or ():
                            if change.op in ("remove", "indirectRemove"):
                                props.pop(change.name, None)
                            else:
                                props[change.name] = change.val
            if gone:
                raise VCenterError(f"{obj._moId} was deleted while waiting for it")
            if done(props):
                return props
            if clock.monotonic() >= deadline:
                raise WaitExpired(props)
    finally:
        with contextlib.suppress(Exception):  # the connection may be gone; collectors die with the session
            collector.DestroyPropertyCollector()


def wait_task(content: Any, task: Any, *, what: str, timeout: float, clock: Clock) -> Any:
    """Wait for a vSphere task; return its result, or raise a :class:`VCenterError` with the task's error."""
    try:
        props = watch(
            content,
            task,
            ("info.state", "info.error", "info.result"),
            lambda p: p.get("info.state") in ("success", "error"),
            timeout=timeout,
            clock=clock,
        )
    except WaitExpired as exp:
        raise VCenterError(
            f"{what}: task {task._moId} did not finish within {timeout:g}s "
            f"(state {exp.props.get('info.state', 'unknown')})"
        ) from None
    if props.get("info.state") == "error":
        fault = props.get("info.error")
        raise task_error(fault, what)
    return props.get("info.result")


def task_error(fault: Any, what: str) -> VCenterError:
    """The error a failed task reports, as a drplan error whose message names ``what`` and the fault."""
    if isinstance(fault, vim.fault.NoPermission):
        return map_error(fault, what)
    name = type(fault).__name__.rsplit(".", 1)[-1] if fault is not None else "unknown fault"
    msg = (getattr(fault, "msg", "") or "") if fault is not None else ""
    err = VCenterError(f"{what} failed: {name}" + (f": {msg}" if msg else ""))
    err.fault = fault  # type: ignore[attr-defined]
    return err
