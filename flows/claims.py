"""One run per plan: a host-local lock and a claim on the Prefect API, taken before anything is written."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.runtime import flow_run as current_flow_run
from prefect.settings import PREFECT_HOME
from prefect.states import Crashed

from drplan.run.host_lock import PlanBusy, PlanLock, lock_dir
from drplan.settings import Settings

ACTIVE = [StateType.RUNNING, StateType.PAUSED, StateType.PENDING, StateType.CANCELLING]


def plan_tag(plan_name: str) -> str:
    return f"drplan-plan:{plan_name}"


@contextlib.contextmanager
def exclusive_run(
    plan_name: str, flow_kind: str, settings: Settings, *, enabled: bool = True
) -> Iterator[PlanLock | None]:
    """Refuse to start while another run of the same plan is active; tag this flow run with the plan.

    Two guards: a host-local ``flock`` (dropped by the kernel when its process dies) and the API: an active
    flow run tagged with the plan. An active run that the lock file names as the previous, now dead, holder
    is a leftover of a killed process: it is marked Crashed and this run continues from ASR's state.
    """
    if not enabled:  # a dry run writes nothing: it neither takes nor waits for the plan
        yield None
        return
    run_id = str(current_flow_run.id or "")
    lock = PlanLock(plan_name, lock_dir(settings.lock_dir, PREFECT_HOME.value()))
    previous = lock.acquire(flow_run=run_id, flow=flow_kind)
    try:
        if run_id:
            _claim_in_api(plan_name, flow_kind, run_id, previous)
        yield lock
    finally:
        lock.release()


def _claim_in_api(plan_name: str, flow_kind: str, run_id: str, previous: dict) -> None:
    tag = plan_tag(plan_name)
    with get_client(sync_client=True) as client:
        me = client.read_flow_run(run_id)
        client.update_flow_run(me.id, tags=sorted({*me.tags, "drplan", tag, f"drplan-flow:{flow_kind}"}))
        active = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[tag]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE)),
            )
        )
        for other in active:
            if str(other.id) == run_id:
                continue
            stale = previous.get("flow_run") == str(other.id) and previous.get("host") == socket.gethostname()
            if stale:
                client.set_flow_run_state(
                    other.id,
                    Crashed(message=f"its process (pid {previous.get('pid')}) died; superseded by {run_id}"),
                    force=True,
                )
                get_run_logger().warning(
                    "flow run %s (%s) of plan %s was left running by a killed process: "
                    "marked Crashed; continuing from ASR's state",
                    other.name,
                    other.id,
                    plan_name,
                )
                continue
            raise PlanBusy(
                f"plan {plan_name} already has an active run: flow run {other.name} ({other.id}) is "
                f"{other.state_name or other.state_type}; wait for it to finish or cancel it "
                f"(prefect flow-run cancel {other.id})"
            )
