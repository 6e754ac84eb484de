"""`VCenterSite`: the pyVmomi implementation of :class:`drplan.run.ports.OnPremSite`, plus control verbs."""

from __future__ import annotations

import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pyVmomi import vim, vmodl

from drplan.clock import REAL_CLOCK, Clock
from drplan.errors import BootTimeout, VCenterError, VCenterLoginError, VCenterUnreachable
from drplan.observed import SiteState, VmState
from drplan.plan.schema import VCenterTarget
from drplan.recovery.site_checks import boot_missing, boot_timeout_message
from drplan.vcenter.connect import Connection, connect, map_error, resolve_password
from drplan.vcenter.reads import VM_PROPERTIES, index_by_name, read_site, retrieve, vm_state
from drplan.vcenter.waits import WaitExpired, wait_task, watch

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Backoff while waiting for a VM to appear in the inventory (seconds: first, cap), with +-50% jitter.
APPEAR_BACKOFF = (1.0, 30.0)


class VmNotFound(VCenterError):
    """No VM of that name in vCenter's inventory."""


#: How long a control verb (power, snapshot, reconfigure) may take before we give up on its task.
TASK_TIMEOUT = 600.0


class VCenterSite:
    """One logged-in vCenter session. Use :meth:`from_plan`; call :meth:`close` (or use ``with``).

    ``round_trips`` / ``calls`` count the SOAP calls made since login, so tests and benchmarks can check
    that a read of N VMs costs a constant number of calls.
    """

    def __init__(
        self,
        host: str,
        *,
        user: str,
        password: str,
        port: int = 443,
        ca_file: str | None = None,
        insecure: bool = False,
        clock: Clock = REAL_CLOCK,
        task_timeout: float = TASK_TIMEOUT,
    ):
        self.clock = clock
        self.task_timeout = task_timeout
        self._conn: Connection = connect(host, port, user, password, ca_file=ca_file, insecure=insecure)

        def login_again() -> Connection:  # keeps the password out of attributes and reprs
            return connect(
                host, port, user, password, ca_file=ca_file, insecure=insecure, counter=self._conn.counter
            )

        self._login_again = login_again
        self._refs: dict[str, Any] = {}
        self._is_simulator: bool | None = None
        self.last_error: VCenterError | None = None

    @classmethod
    def from_plan(
        cls,
        target: VCenterTarget,
        *,
        password: str | None = None,
        secret_loader: Callable[[str], str] | None = None,
        clock: Clock = REAL_CLOCK,
        **kw: Any,
    ) -> VCenterSite:
        """Connect as the plan's ``vcenter:`` section says (see :func:`resolve_password` for the password:
        ``password`` overrides the plan's reference; ``secret_loader`` resolves a Prefect Secret block)."""
        secret = resolve_password(target.password, password=password, secret_loader=secret_loader)
        return cls(
            target.host,
            port=target.port,
            user=target.username,
            password=secret,
            ca_file=target.ca_file,
            insecure=target.insecure,
            clock=clock,
            **kw,
        )

    # -- bookkeeping -------------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return self._conn.where

    @property
    def calls(self) -> Counter[str]:
        """SOAP calls since login, per method name."""
        return self._conn.counter.calls

    @property
    def round_trips(self) -> int:
        """Total SOAP calls since login."""
        return self._conn.counter.total

    @property
    def connection(self) -> Connection:
        """The underlying session (pyVmomi service instance and cached ServiceContent), for advanced use."""
        return self._conn

    def find_vm(self, vm: str) -> Any:
        """The ``vim.VirtualMachine`` named ``vm`` (one lookup round trip unless already known)."""
        return self._guard(f"finding VM {vm} in {self.where}", lambda: self._refs.get(vm) or self._lookup(vm))

    def close(self) -> None:
        self._conn.disconnect()

    def __enter__(self) -> VCenterSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        if self._conn.closed:
            raise VCenterError(f"{what}: the session to {self.where} is closed")
        try:
            try:
                return fn()
            except vim.fault.NotAuthenticated:
                # vCenter ends idle sessions (30 min by default) and forgets them on restart: log in once more
                log.info("session to %s is no longer valid: logging in again", self.where)
                self._relogin()
                return fn()
        except (VCenterError, WaitExpired):
            raise
        except Exception as exc:
            raise map_error(exc, what, user=self._conn.user) from exc

    def _relogin(self) -> None:
        old = self._conn
        old.closed = True  # its session is gone: no logout, just drop the sockets
        with contextlib.suppress(Exception):
            old.si._stub.DropConnections()
        self._conn = self._login_again()
        self._refs.clear()  # managed objects are bound to the old connection

    # -- OnPremSite ----------------------------------------------------------------------------------------

    def read_state(
        self, vms: Sequence[str], *, port_groups: Sequence[str] = (), datastores: Sequence[str] = ()
    ) -> SiteState:
        """All named VMs, port groups and datastores in one property-collector round trip.

        A lost connection or session gives ``connected=False`` (see :attr:`last_error` for why).
        """
        try:
            state, refs = self._guard(
                f"reading {len(vms)} VMs from {self.where}",
                lambda: read_site(self._conn.content, vms, port_groups=port_groups, datastores=datastores),
            )
        except (VCenterUnreachable, VCenterLoginError) as exc:
            log.warning("%s", exc)
            self.last_error = exc
            return SiteState(connected=False)
        self.last_error = None
        self._refs.update(refs)
        return state

    def wait_for_boot(
        self, vm: str, *, timeout: float, require_tools: bool = True, require_ip: bool = True
    ) -> VmState:
        """Wait (property-collector updates, no polling sleeps) until ``vm`` is on, tools run, IP is set."""
        what = f"waiting for {vm} to boot on {self.where}"
        deadline = self.clock.monotonic() + max(timeout, 0.0)

        def up(props: dict) -> bool:
            return not boot_missing(vm_state(vm, props), require_tools=require_tools, require_ip=require_ip)

        if not self._await_vm(vm, deadline):
            missing = boot_missing(VmState(name=vm, present=False))
            raise BootTimeout(boot_timeout_message(VmState(name=vm, present=False), timeout, missing))
        try:
            props = self._on_vm(
                vm,
                what,
                lambda ref: watch(
                    self._conn.content,
                    ref,
                    VM_PROPERTIES,
                    up,
                    timeout=max(0.0, deadline - self.clock.monotonic()),
                    clock=self.clock,
                ),
            )
        except WaitExpired as exp:
            state = vm_state(vm, exp.props)
            missing = boot_missing(state, require_tools=require_tools, require_ip=require_ip)
            raise BootTimeout(boot_timeout_message(state, timeout, missing)) from None
        return vm_state(vm, props)

    # -- control verbs (drills and tests; same names as the simulated site) -----------------------------

    def power_on(self, vm: str) -> None:
        self._power(vm, "poweredOn", lambda ref: ref.PowerOnVM_Task())

    def power_off(self, vm: str) -> None:
        self._power(vm, "poweredOff", lambda ref: ref.PowerOffVM_Task())

    def add_snapshot(self, vm: str, name: str = "drplan") -> None:
        self._task(
            vm,
            f"creating snapshot {name!r} of {vm}",
            lambda ref: ref.CreateSnapshot_Task(
                name=name, description="created by drplan", memory=False, quiesce=False
            ),
        )

    def remove_snapshots(self, vm: str) -> None:
        self._task(vm, f"removing all snapshots of {vm}", lambda ref: ref.RemoveAllSnapshots_Task())

    def set_tools_running(self, vm: str, running: bool) -> None:
        """Simulator aid (vcsim only): mark VMware Tools running or not, via ``SET.guest.*`` extraConfig.

        vcsim applies ``ReconfigVM_Task`` extraConfig keys prefixed ``SET.`` as property changes (and
        property-collector waits see them). A real vCenter would store them as VMX options, so this
        refuses to run anywhere but vcsim.
        """
        values = {
            "guest.toolsRunningStatus": "guestToolsRunning" if running else "guestToolsNotRunning",
            "guest.toolsStatus": "toolsOk" if running else "toolsNotRunning",
            "guestHeartbeatStatus": "green" if running else "gray",
        }
        if running:
            values["guest.toolsVersionStatus2"] = "guestToolsCurrent"
        self._set_guest(vm, values)

    def set_guest_ip(self, vm: str, ip: str | None) -> None:
        """Simulator aid (vcsim only): set the guest IP reported by VMware Tools (``None`` clears it)."""
        self._set_guest(vm, {"guest.ipAddress": ip or ""})

    def set_connected(self, connected: bool) -> None:
        """Not applicable to vCenter: to simulate an outage, stop the vcsim process."""
        raise NotImplementedError("VCenterSite cannot disconnect vCenter: stop the vcsim process instead")

    # -- helpers ---------------------------------------------------------------------------------------------

    def _lookup(self, vm: str) -> Any:
        objects = retrieve(self._conn.content, {vim.VirtualMachine: ("name",)})
        found = index_by_name(objects, "VirtualMachine")
        self._refs.update({name: obj for name, (obj, _) in found.items()})
        if vm not in found:
            raise VmNotFound(f"VM {vm} not found in {self.where}")
        return found[vm][0]

    def _await_vm(self, vm: str, deadline: float) -> bool:
        """Until ``deadline``, look ``vm`` up with exponential backoff and jitter (it may still be being
        registered); False if it never appeared."""
        delay, cap = APPEAR_BACKOFF
        while True:
            try:
                self.find_vm(vm)
                return True
            except VmNotFound:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    return False
                self.clock.sleep(min(left, delay * random.uniform(0.5, 1.5)))
                delay = min(delay * 2, cap)

    def _on_vm(self, vm: str, what: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(vm's managed object)``; a cached reference that went stale is looked up again once."""

        def run() -> T:
            ref = self._refs.get(vm) or self._lookup(vm)
            try:
                return fn(ref)
            except vmodl.fault.ManagedObjectNotFound:
                self._refs.pop(vm, None)
                return fn(self._lookup(vm))

        return self._guard(what, run)

    def _task(self, vm: str, what: str, start: Callable[[Any], Any]) -> Any:
        what = f"{what} on {self.where}"
        return self._on_vm(
            vm,
            what,
            lambda ref: wait_task(
                self._conn.content, start(ref), what=what, timeout=self.task_timeout, clock=self.clock
            ),
        )

    def _power(self, vm: str, target: str, start: Callable[[Any], Any]) -> None:
        verb = "powering on" if target == "poweredOn" else "powering off"
        try:
            self._task(vm, f"{verb} {vm}", start)
        except VCenterError as exc:
            fault = getattr(exc, "fault", None)
            if isinstance(fault, vim.fault.InvalidPowerState) and fault.existingState == target:
                return  # already there: power verbs are idempotent
            raise

    def _require_simulator(self, what: str) -> None:
        if self._is_simulator is None:

            def probe() -> bool:
                try:
                    self._conn.content.setting.QueryOptions("vcsim.server.url")
                    return True
                except vim.fault.InvalidName:
                    return False

            self._is_simulator = self._guard(what, probe)
        if not self._is_simulator:
            raise VCenterError(f"{what}: only supported on VMware's vcsim simulator, not on {self.where}")

    def _set_guest(self, vm: str, values: dict[str, str]) -> None:
        what = f"setting {', '.join(values)} of {vm}"
        self._require_simulator(what)
        spec = vim.vm.ConfigSpec(
            extraConfig=[vim.option.OptionValue(key=f"SET.{k}", value=v) for k, v in values.items()]
        )
        self._task(vm, what, lambda ref: ref.ReconfigVM_Task(spec=spec))


__all__ = ["VCenterSite", "VmNotFound"]
