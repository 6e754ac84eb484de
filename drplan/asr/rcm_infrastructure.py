"""The vault's modernized side: replication appliances (InMageRcm fabrics), the vCenters they discovered,
replication policies, and the Azure VMs ASR made (through ``azure-mgmt-compute``, same endpoint).

A plan names appliances, policies and storage accounts the way a DR engineer knows them; the writes send the
ids ASR lists. :meth:`ModernizedInfrastructureMixin.modernized_infrastructure` reads everything in one
fabric listing, one provider listing, one vCenter listing per InMageRcm fabric and one policy listing.
"""

from __future__ import annotations

import threading
from typing import Any

from azure.core.exceptions import AzureError

from drplan.asr import convert
from drplan.asr.base import AsrBase, log
from drplan.asr.errors import map_error
from drplan.asr.transport import client_options
from drplan.clock import REAL_CLOCK, Clock
from drplan.errors import NotFoundError, PreconditionError
from drplan.observed import ApplianceInfo, AzureVmState, ModernizedInfrastructure

_LOCK = threading.Lock()
#: the compute api-version drplan reads Azure VMs with (azure-mgmt-compute 39.0.0's default)
COMPUTE_API_VERSION = "2026-04-01"


def build_compute_client(
    subscription_id: str,
    *,
    endpoint: str | None = None,
    ca_file: str | None = None,
    credential: Any = None,
    clock: Clock = REAL_CLOCK,
    retry_total: int = 6,
    pool_maxsize: int | None = None,
    **kwargs: Any,
) -> Any:
    """``azure.mgmt.compute.ComputeManagementClient`` on the same endpoint, credential, TLS and retry policy
    as the Site Recovery client (:func:`drplan.asr.transport.build_sdk_client`)."""
    from azure.mgmt.compute import ComputeManagementClient

    kwargs.pop("polling_interval", None)
    credential, kwargs = client_options(
        endpoint, ca_file, credential, clock, retry_total=retry_total, pool_maxsize=pool_maxsize, **kwargs
    )
    return ComputeManagementClient(credential, subscription_id, **kwargs)


class ModernizedInfrastructureMixin(AsrBase):
    #: set by :meth:`drplan.asr.AsrClient.for_vault`: builds the compute client on the same endpoint/TLS
    _compute_factory: Any = None

    # -- reads -----------------------------------------------------------------------------------------------
    def modernized_infrastructure(self, *, vm: str = "(replication appliances)") -> ModernizedInfrastructure:
        """Appliances (component ids, health, connection, heartbeat, datastores), discovered vCenters and
        replication policies of the vault, read now. An empty value when the vault has no InMageRcm fabric."""
        op = "read replication appliances"
        started = self.clock.now()
        fabrics = self._list(vm, f"{op} (list fabrics)", self._sdk.replication_fabrics.list)
        rcm = [f for f in fabrics if convert.is_rcm_fabric(f)]
        providers, vcenters, policies = [], [], []
        if rcm:
            providers = self._list(
                vm, f"{op} (list providers)", self._sdk.replication_recovery_services_providers.list
            )
            for fabric in rcm:
                vcenters += self._list(
                    vm,
                    f"{op} (list vCenters)",
                    self._sdk.replicationv_centers.list_by_replication_fabrics,
                    fabric.name,
                )
            policies = self._list(vm, f"{op} (list policies)", self._sdk.replication_policies.list)
        infra = convert.modernized_infrastructure(rcm, providers, vcenters, policies, read_at=started)
        with _LOCK:
            self.__dict__["_rcm_infrastructure"] = infra
        log.info(
            "modernized infrastructure: %d appliance(s), %d vCenter(s), %d policies",
            len(infra.appliances),
            len(infra.vcenters),
            len(infra.policies),
        )
        return infra

    def _known_rcm(self, vm: str, *, fresh: bool = False) -> ModernizedInfrastructure:
        with _LOCK:
            cached = None if fresh else self.__dict__.get("_rcm_infrastructure")
        return cached if cached is not None else self.modernized_infrastructure(vm=vm)

    # -- names → ids -----------------------------------------------------------------------------------------
    def appliance_info(self, name_or_id: str, *, vm: str, operation: str) -> ApplianceInfo:
        """The appliance named so (or owning the component with this id); read again once if unknown, then
        :class:`PreconditionError` listing the registered appliances."""
        for fresh in (False, True):
            infra = self._known_rcm(vm, fresh=fresh)
            found = infra.appliance(name_or_id)
            if found is not None:
                return found
        known = ", ".join(sorted(a.name for a in infra.appliances)) or "none"
        raise PreconditionError(
            f"{operation} of VM {vm} refused: replication appliance {name_or_id!r} is not registered "
            f"with the vault (registered: {known})",
            vm=vm,
            operation=operation,
            rule="the replication appliance is registered with the vault",
        )

    def policy_id(self, name_or_id: str | None, provider: str, *, vm: str, operation: str) -> str | None:
        """The id of the ``provider`` policy (``InMageRcm`` / ``InMageRcmFailback``) named so. ``None``: the
        vault's only policy of that provider, or ``None`` when it has several (not sent)."""
        for fresh in (False, True):
            infra = self._known_rcm(vm, fresh=fresh)
            if not name_or_id:
                mine = [p for p in infra.policies if p.provider.lower() == provider.lower()]
                return mine[0].id if len(mine) == 1 else None
            found = infra.policy(name_or_id, provider)
            if found is not None:
                return found.id
        known = ", ".join(sorted(p.name for p in infra.policies if p.provider.lower() == provider.lower()))
        raise PreconditionError(
            f"{operation} of VM {vm} refused: {provider} replication policy {name_or_id!r} does not exist in "
            f"the vault ({provider} policies: {known or 'none'})",
            vm=vm,
            operation=operation,
            rule=f"the {provider} replication policy exists",
        )

    def run_as_account_id(self, name_or_id: str | None, *, vm: str, operation: str) -> str | None:
        """A run-as account's id: an ARM id as given; otherwise (a name, or nothing) the run-as account the
        discovered vCenter uses (ASR lists accounts by id only; their names live in Azure Migrate)."""
        if name_or_id and name_or_id.startswith("/"):
            return name_or_id
        ids = self._known_rcm(vm).run_as_account_ids()
        if len(ids) == 1:
            return ids[0]
        if name_or_id:
            match = [i for i in ids if i.lower().endswith("/" + name_or_id.lower())]
            if match:
                return match[0]
        return ids[0] if ids else None

    def storage_account_id(self, name_or_id: str, *, resource_group: str | None = None) -> str:
        """``name`` → the ARM id of that storage account in ``resource_group`` (default: the vault's)."""
        if name_or_id.startswith("/"):
            return name_or_id
        rg = resource_group or self.resource_group
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Storage/"
            f"storageAccounts/{name_or_id}"
        )

    # -- Azure VMs (compute) ---------------------------------------------------------------------------------
    def _compute(self) -> Any:
        with _LOCK:
            client = self.__dict__.get("_compute_client")
            if client is None:
                if self._compute_factory is None:
                    raise NotFoundError(
                        "read Azure VM failed: this client was built without a compute endpoint",
                        operation="read Azure VM",
                    )
                client = self._compute_factory()
                self.__dict__["_compute_client"] = client
        return client

    def azure_vm(self, name: str, *, resource_group: str | None = None, vm: str = "") -> AzureVmState:
        """One ``virtualMachines.get(..., expand="instanceView")``: power state and VM agent status.

        A VM that does not exist comes back with ``exists=False`` (never an error); ``resource_group``
        defaults to the vault's."""
        op = "read Azure VM"
        try:
            model = self._compute().virtual_machines.get(
                resource_group or self.resource_group, name, expand="instanceView"
            )
        except AzureError as exc:
            err = map_error(exc, vm=vm or name, operation=op)
            if isinstance(err, NotFoundError):
                return AzureVmState(name=name, exists=False)
            raise err from None
        return convert.azure_vm(name, model)

    def azure_vms(self) -> dict[tuple[str, str], AzureVmState]:
        """Every Azure VM of the subscription with its power state, by (resource group, name) in lower case:
        one ``virtualMachines`` listing with ``statusOnly=true`` (pages followed) instead of a GET per VM."""
        op = "list Azure VMs"
        out: dict[tuple[str, str], AzureVmState] = {}
        try:
            for model in self._compute().virtual_machines.list_all(status_only="true"):
                parts = (model.id or "").split("/")
                rg = parts[4].lower() if len(parts) > 4 else ""
                out[(rg, (model.name or "").lower())] = convert.azure_vm(model.name or "", model)
        except AzureError as exc:
            raise map_error(exc, vm="(Azure VMs)", operation=op) from None
        return out

    def close(self) -> None:
        with _LOCK:
            client = self.__dict__.pop("_compute_client", None)
        if client is not None:
            client.close()
        super().close()
