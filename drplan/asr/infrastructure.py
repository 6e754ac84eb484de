"""The vault's VMware infrastructure: configuration servers, master targets, process servers.

Read from the VMware fabrics' ``customDetails`` (``VMwareDetails``: ``masterTargetServers``,
``processServers``, ``lastHeartbeat``, ``csServiceStatus``) and the recovery services providers'
``connectionStatus``: one fabric listing and one provider listing for the whole vault. Reprotect inputs name
servers as the plan does; :meth:`InfrastructureMixin.server_id` turns a name into the id ASR lists.
"""

from __future__ import annotations

import threading

from drplan.asr import convert
from drplan.asr.base import AsrBase, log
from drplan.errors import PreconditionError
from drplan.observed import CheckResult, Infrastructure
from drplan.recovery import preconditions

_CACHE_LOCK = threading.Lock()


class InfrastructureMixin(AsrBase):
    def infrastructure(self, *, vm: str = "(configuration server)") -> Infrastructure:
        """Configuration servers, master targets (name, id, OS) and process servers (name, id), read now."""
        op = "read configuration server"
        started = self.clock.now()  # heartbeats are judged against the time the read started
        fabrics = self._list(vm, f"{op} (list fabrics)", self._sdk.replication_fabrics.list)
        providers = self._list(
            vm, f"{op} (list providers)", self._sdk.replication_recovery_services_providers.list
        )
        infra = convert.infrastructure(fabrics, providers, read_at=started)
        with _CACHE_LOCK:
            self.__dict__["_infrastructure"] = infra
        log.info(
            "infrastructure: %d configuration server(s), %d master target(s), %d process server(s)",
            len(infra.configuration_servers),
            len(infra.master_targets),
            len(infra.process_servers),
        )
        return infra

    def configuration_server_checks(self) -> list[CheckResult]:
        """Each configuration server connected to the vault, with a recent heartbeat."""
        return preconditions.configuration_server_checks(self.infrastructure())

    def _known_infrastructure(self, vm: str) -> Infrastructure:
        with _CACHE_LOCK:
            cached = self.__dict__.get("_infrastructure")
        return cached if cached is not None else self.infrastructure(vm=vm)

    def server_id(self, kind: str, name_or_id: str | None, *, vm: str, operation: str) -> str | None:
        """The id ASR lists for the master target / process server (``kind``) named or identified so.

        ``None`` stays ``None``. Unknown → :class:`PreconditionError` naming the VM, the operation and the
        registered servers (read again once, in case one was registered since the last read).
        """
        if not name_or_id:
            return None
        for attempt in (0, 1):
            infra = self._known_infrastructure(vm) if attempt == 0 else self.infrastructure(vm=vm)
            found = (
                infra.master_target(name_or_id)
                if kind == "master target"
                else infra.process_server(name_or_id)
            )
            if found is not None:
                return found.id
        servers = infra.master_targets if kind == "master target" else infra.process_servers
        known = ", ".join(sorted(s.name for s in servers)) or "none"
        raise PreconditionError(
            f"{operation} of VM {vm} refused: {kind} {name_or_id!r} is not registered with the "
            f"configuration server (registered: {known})",
            vm=vm,
            operation=operation,
            rule=f"the {kind} is registered with the configuration server",
        )
