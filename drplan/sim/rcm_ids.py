"""ARM ids of the modernized (InMageRcm) side of the simulated vault: its fabric and container, the
appliances' components (process server, reprotect agent, ...), policies, run-as accounts and the log
storage account, as :class:`drplan.sim.lifecycle.Engine` serves them (a mixin)."""

from __future__ import annotations

import uuid

from drplan.sim.engine_base import EngineBase

_NS = uuid.UUID("5d0c8a52-8f5e-4b0e-9d55-3f0c7a1b2e64")
#: the components of one replication appliance, as ``InMageRcmFabricSpecificDetails`` lists them
COMPONENTS = (
    "processServers",
    "rcmProxies",
    "pushInstallers",
    "replicationAgents",
    "reprotectAgents",
    "marsAgents",
    "dras",
)


class RcmIds(EngineBase):
    """Identity of modernized resources (a mixin of :class:`drplan.sim.lifecycle.Engine`)."""

    @property
    def rcm_fabric_id(self) -> str:
        return f"{self.vault_id}/replicationFabrics/{self.estate.modernized.fabric}"

    @property
    def rcm_container_id(self) -> str:
        return f"{self.rcm_fabric_id}/replicationProtectionContainers/{self.estate.modernized.container}"

    def _rg_id(self) -> str:
        v = self.estate.vault
        return f"/subscriptions/{v.subscription_id}/resourceGroups/{v.resource_group}"

    def component_id(self, appliance: str, component: str) -> str:
        """Id of one component of ``appliance`` (what ``reprotectAgentId`` / ``processServerId`` carry)."""
        return str(uuid.uuid5(_NS, f"{component}|{appliance}"))

    def appliance_of_component(self, component: str, ref: str | None) -> str | None:
        """The appliance whose ``component`` has the id ``ref`` (ids compare case-insensitively)."""
        if not ref:
            return None
        return next(
            (a.name for a in self.estate.appliances if self.component_id(a.name, component) == ref.lower()),
            None,
        )

    def policy_id(self, name: str) -> str:
        return f"{self.vault_id}/replicationPolicies/{name}"

    @property
    def log_storage_id(self) -> str:
        name = self.estate.modernized.log_storage_account
        return f"{self._rg_id()}/providers/Microsoft.Storage/storageAccounts/{name}"

    @property
    def vmware_site_id(self) -> str:
        return (
            f"{self._rg_id()}/providers/Microsoft.OffAzure/VMwareSites/{self.estate.modernized.vmware_site}"
        )

    def run_as_id(self, account: str) -> str:
        return f"{self.vmware_site_id}/runasaccounts/{uuid.uuid5(_NS, f'runas|{account}')}"

    def rcm_vcenter_id(self) -> str:
        return f"{self.rcm_fabric_id}/replicationvCenters/{self.estate.vcenter.name}"

    def azure_vm_id(self, name: str) -> str:
        return f"{self._rg_id()}/providers/Microsoft.Compute/virtualMachines/{name}"
