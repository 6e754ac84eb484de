"""One run at a time per plan and per VM, decided before anything is written.

Two layers, both taken before the targets are opened:

* **the plan** (as before): a host ``flock`` per plan name and a ``drplan-plan:<name>`` tag on the flow run,
  checked against the API's active runs; a run left Running by a killed process on this host is marked
  Crashed and superseded.
* **its VMs**, whatever the plan file is called and whichever ``PREFECT_HOME`` the run uses: every VM of the
  plan, named by its vault (subscription, resource group, vault) and by the target reached (Azure, or an
  external simulator's endpoint), is claimed

  - on this host, in a registry of claims (``DRPLAN_LOCK_DIR``, default ``~/.drplan/drplan-locks``: one for
    every Prefect home) whose entries live only as long as the ``flock`` their run holds;
  - on the Prefect server the run reports to: one global concurrency limit of one slot per VM, all taken in
    one atomic request with a lease held by the flow run and renewed while it lives. The flow run carries
    ``drplan-claim:NN`` tags (its VMs' keys hashed into :data:`CLAIM_BUCKETS` buckets: a few dozen tags at
    most, as Prefect relates one resource per tag to every state change and refuses more than 100) and
    ``drplan-lease:<id>``, so a refused run finds and names the holder (the VMs held are read from the
    limits), and a holder whose flow run ended (Crashed, Failed, Cancelled, Completed) has its lease released
    by the next run. A killed process's lease also expires by itself (:data:`LEASE_SECONDS` after its last
    renewal).

A run against the embedded simulator (``--simulate``) claims no VMs: its estate is its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder, StateType
from prefect.exceptions import ObjectAlreadyExists
from prefect.runtime import flow_run as current_flow_run
from prefect.settings import PREFECT_HOME
from prefect.states import Crashed

from drplan.plan.schema import Plan
from drplan.run.host_lock import PlanBusy, PlanLock, lock_dir
from drplan.settings import Settings

log = logging.getLogger(__name__)

ACTIVE = [StateType.RUNNING, StateType.PAUSED, StateType.PENDING, StateType.CANCELLING]
FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
#: a server-side claim outlives its run's last renewal by at most this long (Prefect's minimum is 60 s)
LEASE_SECONDS = 120.0
#: the lease a claim is first taken with (Prefect's shortest), until the flow run carries its tag (then
#: renewed to LEASE_SECONDS): a process killed in between leaves a lease no run names, which lapses this soon
FIRST_LEASE_SECONDS = 60.0
#: how long a claim waits for such an unnamed lease to lapse: FIRST_LEASE_SECONDS plus the Prefect server's
#: lease repossessor loop (15 s by default) and a margin
UNNAMED_WAIT_SECONDS = 90.0
CLAIM_TAG = "drplan-claim:"
CLAIM_BUCKETS = 32
LEASE_TAG = "drplan-lease:"
_BANNED = re.compile(r"[/%&<>\s]")


def plan_tag(plan_name: str) -> str:
    return f"drplan-plan:{plan_name}"


@dataclass(frozen=True)
class VmClaim:
    """One VM as a claim: ``key`` names it on every host and server (target, vault, VM; lower case)."""

    key: str
    vm: str

    @property
    def limit(self) -> str:
        return f"drplan-vm:{self.key}"

    @property
    def tag(self) -> str:
        """The flow run's tag for this claim: one of :data:`CLAIM_BUCKETS` (a hash of the key), so that a
        run of a thousand VMs carries a few dozen tags: Prefect refuses a flow run's state change (HTTP 500)
        whose event relates more than 100 resources, one per tag."""
        bucket = int(hashlib.sha256(self.key.encode()).hexdigest(), 16) % CLAIM_BUCKETS
        return f"{CLAIM_TAG}{bucket:02d}"


def vm_claims(plan: Plan, target: str) -> list[VmClaim]:
    """The claims a run of ``plan`` takes against ``target`` (``azure`` or ``sim@host:port``)."""
    az = plan.azure
    vault = ":".join((target, az.subscription_id, az.resource_group, az.vault)).lower()
    return [VmClaim(_BANNED.sub("_", f"{vault}:{vm.name.lower()}"), vm.name) for vm in plan.vms]


def claim_target(settings: Settings, simulated: bool) -> str | None:
    """What the run's VMs are reached on: ``azure``, ``sim@host:port`` (an external simulator), or None for
    the embedded simulator (nothing shared to claim)."""
    if simulated:
        return None
    if settings.sim_endpoint:
        return "sim@" + (urlsplit(settings.sim_endpoint).netloc or settings.sim_endpoint)
    return "azure"


@contextlib.contextmanager
def exclusive_run(
    plan: Plan | str,
    flow_kind: str,
    settings: Settings,
    *,
    enabled: bool = True,
    simulated: bool = False,
) -> Iterator[PlanLock | None]:
    """Refuse to start while another run holds the plan or any of its VMs (see the module); tag this flow
    run with the plan and its claims. ``plan``: the plan (its name alone takes only the plan lock)."""
    if not enabled:  # a dry run writes nothing: it neither takes nor waits for the plan
        yield None
        return
    plan_name = plan if isinstance(plan, str) else plan.name
    run_id = str(current_flow_run.id or "")
    lock = PlanLock(plan_name, lock_dir(settings.lock_dir, PREFECT_HOME.value()))
    previous = lock.acquire(flow_run=run_id, flow=flow_kind)
    with contextlib.ExitStack() as stack:
        stack.callback(lock.release)
        if run_id:
            _claim_in_api(plan_name, flow_kind, run_id, previous)
        target = None if isinstance(plan, str) else claim_target(settings, simulated)
        if target is not None and not isinstance(plan, str):
            claims = vm_claims(plan, target)
            record = {
                "flow_run": run_id,
                "flow_run_name": str(current_flow_run.name or ""),
                "plan": plan_name,
                "flow": flow_kind,
            }
            host = HostClaims(lock_dir(settings.lock_dir, Path.home() / ".drplan"))
            dead = host.claim(claims, record)
            stack.callback(host.release)
            if run_id:
                server = ServerClaims(run_id, claims)
                server.claim(superseded=dead)
                stack.callback(server.release)
        yield lock


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
                _supersede(client, other, f"its process (pid {previous.get('pid')}) died", run_id)
                continue
            raise PlanBusy(
                f"plan {plan_name} already has an active run: flow run {other.name} ({other.id}) is "
                f"{other.state_name or other.state_type}; wait for it to finish or cancel it "
                f"(prefect flow-run cancel {other.id})"
            )


def _supersede(client, other, why: str, run_id: str) -> None:
    client.set_flow_run_state(other.id, Crashed(message=f"{why}; superseded by {run_id}"), force=True)
    get_run_logger().warning(
        "flow run %s (%s) was left running by a killed process: marked Crashed; continuing from ASR's state",
        other.name,
        other.id,
    )


def _vm_list(vms: Iterable[str], most: int = 5) -> str:
    vms = sorted(vms)
    shown = ", ".join(vms[:most])
    return shown + (f" and {len(vms) - most} more" if len(vms) > most else "")


def _held_on_host(vms: list[str], plan: object, h: dict, where: Path) -> str:
    who = f"flow run {h.get('flow_run_name') or '?'} ({h.get('flow_run') or 'no flow run'})"
    return (
        f"VM {_vm_list(vms)} of plan {plan} is already claimed on this host by {who} of plan {h.get('plan')} "
        f"(pid {h.get('pid')}, since {h.get('started')}); wait for that run to finish or cancel it "
        f"(claims in {where})"
    )


# -- on this host ----------------------------------------------------------------------------------------
class HostClaims:
    """This host's registry of VM claims, for runs that share no Prefect server (or another home).

    ``claims.json`` maps each claim key to its holder's record; a holder is alive while it holds the
    ``flock`` of its file under ``runs/`` (the kernel drops it when the process dies, so a killed run's claims
    lapse at once). The registry itself is read and written under ``claims.lock``.
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._run_fh = None
        self._keys: list[str] = []

    def claim(self, claims: list[VmClaim], record: dict) -> set[str]:
        """Claim every VM or raise :class:`PlanBusy` naming a live holder; returns the flow run ids of dead
        holders whose claims were taken over (their runs may still show as Running in the API)."""
        runs = self.dir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        me = {
            **record,
            "run": self.token,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        fh = open(runs / f"{self.token}.lock", "w", encoding="utf-8")  # noqa: SIM115 - held until release()
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.write(json.dumps(me))
        fh.flush()
        self._run_fh = fh
        dead: set[str] = set()
        try:
            with self._registry() as registry:
                alive: dict[str, bool] = {}
                busy: dict[str, list[str]] = {}
                holders: dict[str, dict] = {}
                for c in claims:
                    held = registry.get(c.key)
                    if not held or held.get("run") == self.token:
                        continue
                    run = held.get("run", "")
                    if run not in alive:
                        alive[run] = self._alive(run)
                    if alive[run]:
                        busy.setdefault(run, []).append(c.vm)
                        holders[run] = held
                    elif held.get("flow_run"):
                        dead.add(str(held["flow_run"]))
                if busy:
                    run, vms = max(busy.items(), key=lambda kv: len(kv[1]))
                    raise PlanBusy(_held_on_host(vms, record.get("plan"), holders[run], self.dir))
                entry = {k: me.get(k) for k in ("run", "flow_run", "flow_run_name", "plan", "pid", "started")}
                for c in claims:
                    registry[c.key] = entry
                self._keys = [c.key for c in claims]
        except BaseException:
            self._drop_run_file()
            raise
        return dead

    def release(self) -> None:
        if self._keys:
            with self._registry() as registry:
                for key in self._keys:
                    if registry.get(key, {}).get("run") == self.token:
                        del registry[key]
            self._keys = []
        self._drop_run_file()

    def _alive(self, run: str) -> bool:
        path = self.dir / "runs" / f"{run}.lock"
        try:
            fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError:
            return False
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            fh.close()  # drops the flock taken just above, if any
        with contextlib.suppress(OSError):
            path.unlink()
        return False

    def _drop_run_file(self) -> None:
        if self._run_fh is not None:
            with contextlib.suppress(OSError):
                (self.dir / "runs" / f"{self.token}.lock").unlink()
            self._run_fh.close()
            self._run_fh = None

    @contextlib.contextmanager
    def _registry(self) -> Iterator[dict]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "claims.lock", "a", encoding="utf-8") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            path = self.dir / "claims.json"
            try:
                registry = json.loads(path.read_text(encoding="utf-8") or "{}")
            except (OSError, ValueError):
                registry = {}
            if not isinstance(registry, dict):
                registry = {}
            yield registry
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(registry), encoding="utf-8")
            tmp.replace(path)


class UnnamedHolder(PlanBusy):
    """A VM's claim is held by a lease no flow run names (its process died while claiming)."""


# -- on the Prefect server -------------------------------------------------------------------------------
class ServerClaims:
    """One global concurrency limit (one slot) per VM on the Prefect server, taken atomically with a lease
    that this flow run holds and renews until :meth:`release`."""

    def __init__(self, run_id: str, claims: list[VmClaim], *, lease_seconds: float = LEASE_SECONDS):
        self.run_id = run_id
        self.claims = claims
        self.lease_seconds = lease_seconds
        self.lease_id: uuid.UUID | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def claim(self, *, superseded: Iterable[str] = ()) -> None:
        names = [c.limit for c in self.claims]
        unnamed_until = time.monotonic() + UNNAMED_WAIT_SECONDS
        with get_client(sync_client=True) as client:
            attempts = 0
            while True:
                lease = self._increment(client, names)
                if lease is not None:  # tagged only once held: the tags say who holds what
                    self.lease_id = lease
                    me = client.read_flow_run(self.run_id)
                    tags = {*me.tags, *(c.tag for c in self.claims), f"{LEASE_TAG}{lease}"}
                    client.update_flow_run(me.id, tags=sorted(tags))
                    client.renew_concurrency_lease(lease, self.lease_seconds)
                    break
                try:
                    self._take_over_or_refuse(client, superseded)
                except UnnamedHolder:
                    if time.monotonic() > unnamed_until:
                        raise
                    log.info("claim on the Prefect server held by no run it names: waiting for it to lapse")
                    time.sleep(5.0)
                    continue
                attempts += 1
                if attempts == 4:
                    raise PlanBusy(
                        f"VM {_vm_list(c.vm for c in self.claims)}: the Prefect server kept refusing the "
                        "claim; try again in a minute"
                    )
        self._renewer = threading.Thread(target=self._renew, name="drplan-claims-lease", daemon=True)
        self._renewer.start()

    def _increment(self, client, names: list[str]) -> uuid.UUID | None:
        """The lease over every limit, or None when one is held (423). Missing limits are created first."""
        from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

        try:
            resp = client.increment_concurrency_slots_with_lease(
                names=names,
                slots=1,
                mode="concurrency",
                lease_duration=FIRST_LEASE_SECONDS,
                holder=ConcurrencyLeaseHolder(type="flow_run", id=uuid.UUID(self.run_id)),
            )
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) == 423:
                return None
            raise
        body = resp.json()
        got = {lim["name"] for lim in body["limits"]}
        lease = uuid.UUID(body["lease_id"])
        missing = [n for n in names if n not in got]
        if not missing:
            return lease
        client.release_concurrency_slots_with_lease(lease)  # a limit did not exist yet: create, then again
        for name in missing:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        return self._increment(client, names)

    def _take_over_or_refuse(self, client, superseded: Iterable[str]) -> None:
        """Release the leases of holders whose flow runs ended (or whose process on this host died); raise
        :class:`PlanBusy` naming a holder that is still running."""
        mine = {c.tag for c in self.claims}
        superseded = set(superseded)
        holders = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(any_=sorted(mine)))
        )
        released = False
        blocking = []
        for other in holders:
            if str(other.id) == self.run_id:
                continue
            leases = [t[len(LEASE_TAG) :] for t in other.tags if t.startswith(LEASE_TAG)]
            if not leases:  # never held, or released at its end
                continue
            if other.state_type in ACTIVE and str(other.id) in superseded:
                _supersede(client, other, "its process on this host died", self.run_id)
            elif other.state_type in ACTIVE:
                blocking.append(other)
                continue
            for lease in leases:
                with contextlib.suppress(Exception):
                    client.release_concurrency_slots_with_lease(uuid.UUID(lease))
                    released = True
            _drop_lease_tags(client, other)
        if blocking:
            held = _held(client, self.claims) or [c.vm for c in self.claims]

            def who(run) -> str:
                plan = next((t.split(":", 1)[1] for t in run.tags if t.startswith("drplan-plan:")), "?")
                state = run.state_name or run.state_type
                return f"flow run {run.name} ({run.id}) of plan {plan}, which is {state}"

            other = blocking[0]
            holder = who(other) if len(blocking) == 1 else "one of " + "; ".join(who(r) for r in blocking)
            raise PlanBusy(
                f"VM {_vm_list(held)} is already claimed on the Prefect server by {holder}; wait for it to "
                f"finish or cancel it (prefect flow-run cancel {other.id})"
            )
        if not released:
            raise UnnamedHolder(
                f"VM {_vm_list(c.vm for c in self.claims)}: a claim on the Prefect server is held by a run "
                f"that could not be identified (a run killed while claiming?); it lapses within two minutes: "
                "run again then"
            )

    def _renew(self) -> None:
        every = self.lease_seconds / 4
        while not self._stop.wait(every):
            try:
                with get_client(sync_client=True) as client:
                    client.renew_concurrency_lease(self.lease_id, self.lease_seconds)
            except Exception as exc:  # the server may be back at the next renewal, before the lease lapses
                with contextlib.suppress(Exception):
                    get_run_logger().warning("could not renew this run's VM claims: %s", exc)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self.lease_id is not None:
            try:
                with get_client(sync_client=True) as client:
                    client.release_concurrency_slots_with_lease(self.lease_id)
                    _drop_lease_tags(client, client.read_flow_run(self.run_id))
            except Exception as exc:  # the lease lapses by itself
                with contextlib.suppress(Exception):
                    get_run_logger().warning("could not release this run's VM claims (they lapse): %s", exc)
            self.lease_id = None


def _held(client, claims: list[VmClaim]) -> list[str]:
    """The VMs among ``claims`` whose limit has its slot taken (the server's list of limits, page by page)."""
    by_name = {c.limit: c.vm for c in claims}
    held: list[str] = []
    with contextlib.suppress(Exception):  # only the message loses its precision
        offset = 0
        while True:
            page = client.read_global_concurrency_limits(limit=200, offset=offset)
            held += [by_name[lim.name] for lim in page if lim.name in by_name and lim.active_slots > 0]
            if len(page) < 200:
                break
            offset += 200
    return held


def _drop_lease_tags(client, run) -> None:
    with contextlib.suppress(Exception):
        client.update_flow_run(run.id, tags=[t for t in run.tags if not t.startswith(LEASE_TAG)])
