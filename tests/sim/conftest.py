"""Fixtures: a small estate, a running simulator, the real SDK client on it, and the spec validator."""

from __future__ import annotations

import time

import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.recoveryservicessiterecovery import models as m

from drplan.sim import Estate, start_simulator
from drplan.sim.estate import Appliance, MasterTarget, ProcessServer, Vm

from .specval import SpecValidator, compute_validator


class StaticToken:
    """The simulator's bearer token (it refuses any other with 401)."""

    def __init__(self, token: str):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self.token, int(time.time()) + 3600)


def small_estate(**settings) -> Estate:
    """Two Windows VMs in replication group 'db', one standalone Linux VM, one Windows master target."""
    return Estate(
        master_targets=[
            MasterTarget(name="mt-win-01", os="windows", ip="10.0.1.10"),
            MasterTarget(name="mt-lin-01", os="linux", ip="10.0.1.11"),
        ],
        process_servers=[ProcessServer(name="ps-azure-01", ip="10.1.0.4")],
        vms=[
            Vm(
                name="db-01",
                os="windows",
                replication_group="db",
                master_target="mt-win-01",
                process_server="ps-azure-01",
                ip="10.20.0.11",
            ),
            Vm(
                name="db-02",
                os="windows",
                replication_group="db",
                master_target="mt-win-01",
                process_server="ps-azure-01",
                ip="10.20.0.12",
            ),
            Vm(
                name="web-01",
                vcenter_name="WEB01",
                os="linux",
                master_target="mt-lin-01",
                process_server="ps-azure-01",
                ip="10.20.0.21",
            ),
        ],
        **settings,
    )


@pytest.fixture(scope="session")
def spec() -> SpecValidator:
    return SpecValidator()


@pytest.fixture(scope="session")
def compute_spec() -> SpecValidator:
    return compute_validator()


@pytest.fixture
def estate() -> Estate:
    return small_estate()


@pytest.fixture
def sim(estate):
    with start_simulator(estate, speed=6000) as s:
        yield s


class Asr:
    """Thin test helper over the real SDK client: look items up by friendly name and run actions."""

    def __init__(self, sim, **client_kw):
        self.sim = sim
        self.rg, self.vault = sim.resource_group, sim.vault
        self.client = SiteRecoveryManagementClient(
            StaticToken(sim.token),
            sim.subscription_id,
            base_url=sim.endpoint,
            connection_verify=sim.ca_file,
            polling_interval=0.01,
            **client_kw,
        )

    def items(self):
        return list(self.client.replication_protected_items.list(self.rg, self.vault))

    def ref(self, vm: str) -> tuple[str, str, str]:
        item = next(i for i in self.items() if i.properties.friendly_name == vm)
        parts = item.id.split("/")
        return parts[10], parts[12], item.name

    def get(self, vm: str):
        return self.client.replication_protected_items.get(self.rg, self.vault, *self.ref(vm))

    def points(self, vm: str):
        return list(
            self.client.recovery_points.list_by_replication_protected_items(
                self.rg, self.vault, *self.ref(vm)
            )
        )

    def failback(
        self,
        vm: str,
        rp_type: str = "LatestTime",
        point_id: str | None = None,
        direction: str = "PrimaryToRecovery",
    ):
        body = m.UnplannedFailoverInput(
            properties=m.UnplannedFailoverInputProperties(
                failover_direction=direction,
                source_site_operations="NotRequired",
                provider_specific_details=m.InMageUnplannedFailoverInput(
                    recovery_point_type=rp_type, recovery_point_id=point_id
                ),
            )
        )
        return self.client.replication_protected_items.begin_unplanned_failover(
            self.rg, self.vault, *self.ref(vm), body
        ).result()

    def commit(self, vm: str):
        return self.client.replication_protected_items.begin_failover_commit(
            self.rg, self.vault, *self.ref(vm)
        ).result()

    def cancel(self, vm: str):
        return self.client.replication_protected_items.begin_failover_cancel(
            self.rg, self.vault, *self.ref(vm)
        ).result()

    def reprotect_to_onprem(self, vm: str, master_target: str = "mt-win-01"):
        e = self.sim.engine
        body = m.ReverseReplicationInput(
            properties=m.ReverseReplicationInputProperties(
                failover_direction="RecoveryToPrimary",
                provider_specific_details=m.InMageReprotectInput(
                    master_target_id=e.mt_id(master_target),
                    process_server_id=e.ps_id("ps-azure-01"),
                    retention_drive="F:",
                    profile_id=f"{e.vault_id}/replicationPolicies/policy-failback",
                    datastore_name="datastore1",
                ),
            )
        )
        return self.client.replication_protected_items.begin_reprotect(
            self.rg, self.vault, *self.ref(vm), body
        ).result()

    def reprotect_to_azure(self, vm: str):
        body = m.ReverseReplicationInput(
            properties=m.ReverseReplicationInputProperties(
                failover_direction="RecoveryToPrimary",
                provider_specific_details=m.InMageAzureV2ReprotectInput(
                    process_server_id=self.sim.engine.ps_id("ps-azure-01")
                ),
            )
        )
        return self.client.replication_protected_items.begin_reprotect(
            self.rg, self.vault, *self.ref(vm), body
        ).result()

    def test_failover(self, vm: str):
        body = m.TestFailoverInput(
            properties=m.TestFailoverInputProperties(
                failover_direction="PrimaryToRecovery",
                network_type="VmNetworkAsInput",
                network_id="drill-network",
                provider_specific_details=m.InMageTestFailoverInput(recovery_point_type="LatestTime"),
            )
        )
        return self.client.replication_protected_items.begin_test_failover(
            self.rg, self.vault, *self.ref(vm), body
        ).result()

    def test_cleanup(self, vm: str):
        body = m.TestFailoverCleanupInput(
            properties=m.TestFailoverCleanupInputProperties(comments="drill done")
        )
        return self.client.replication_protected_items.begin_test_failover_cleanup(
            self.rg, self.vault, *self.ref(vm), body
        ).result()

    def job(self, name: str):
        return self.client.replication_jobs.get(self.rg, self.vault, name)


@pytest.fixture
def asr(sim) -> Asr:
    return Asr(sim)


def modern_estate(**settings) -> Estate:
    """The small estate on the modernized stack: db-01/db-02 (group 'db') and web-01 failed over to Azure
    and committed (where a failback starts), app-01 replicating to Azure; two appliances."""
    return Estate(
        appliances=[
            Appliance(name="appliance-01", ip="10.0.2.10", datastores=["datastore1", "datastore2"]),
            Appliance(name="appliance-02", ip="10.0.2.11", datastores=["datastore1"]),
        ],
        vms=[
            Vm(
                name="db-01",
                os="windows",
                replication_group="db",
                provider="modernized",
                appliance="appliance-01",
                phase="failed-over-to-azure",
                ip="10.20.0.11",
                disks=2,
            ),
            Vm(
                name="db-02",
                os="windows",
                replication_group="db",
                provider="modernized",
                appliance="appliance-01",
                phase="failed-over-to-azure",
                ip="10.20.0.12",
            ),
            Vm(
                name="web-01",
                vcenter_name="WEB01",
                os="linux",
                provider="modernized",
                appliance="appliance-01",
                phase="failed-over-to-azure",
                ip="10.20.0.21",
            ),
            Vm(
                name="app-01",
                os="linux",
                provider="modernized",
                appliance="appliance-02",
                phase="replicating-to-azure",
                ip="10.20.0.31",
            ),
        ],
        **settings,
    )


def _done(poller, kw: dict):
    """The LRO's result, or the poller itself when the caller asked for ``polling=False``."""
    return poller if kw.get("polling") is False else poller.result()


class Rcm(Asr):
    """The modernized cycle through the real SDK: InMageRcm forward, InMageRcmFailback back."""

    def reprotect_back(
        self,
        vm: str,
        appliance: str = "appliance-01",
        datastore: str = "datastore1",
        *,
        log_storage: str | None = None,
        direction: str = "RecoveryToPrimary",
        **kw,
    ):
        e = self.sim.engine
        body = m.ReverseReplicationInput(
            properties=m.ReverseReplicationInputProperties(
                failover_direction=direction,
                provider_specific_details=m.InMageRcmReprotectInput(
                    reprotect_agent_id=e.component_id(appliance, "reprotectAgents"),
                    datastore_name=datastore,
                    log_storage_account_id=log_storage or e.log_storage_id,
                    policy_id=e.policy_id(self.sim.estate.modernized.policy_failback),
                ),
            )
        )
        poller = self.client.replication_protected_items.begin_reprotect(
            self.rg, self.vault, *self.ref(vm), body, **kw
        )
        return _done(poller, kw)

    def planned_failback(self, vm: str, rp_type: str = "CrashConsistent", **kw):
        body = m.PlannedFailoverInput(
            properties=m.PlannedFailoverInputProperties(
                provider_specific_details=m.InMageRcmFailbackPlannedFailoverProviderInput(
                    recovery_point_type=rp_type
                )
            )
        )
        poller = self.client.replication_protected_items.begin_planned_failover(
            self.rg, self.vault, *self.ref(vm), body, **kw
        )
        return _done(poller, kw)

    def reprotect_forward(self, vm: str, appliance: str = "appliance-01", *, policy: str | None = None, **kw):
        e = self.sim.engine
        site = self.sim.estate.modernized
        body = m.ReverseReplicationInput(
            properties=m.ReverseReplicationInputProperties(
                failover_direction="PrimaryToRecovery",
                provider_specific_details=m.InMageRcmFailbackReprotectInput(
                    process_server_id=e.component_id(appliance, "processServers"),
                    policy_id=policy or e.policy_id(site.policy_to_azure),
                    run_as_account_id=e.run_as_id(site.run_as_accounts[0]),
                ),
            )
        )
        poller = self.client.replication_protected_items.begin_reprotect(
            self.rg, self.vault, *self.ref(vm), body, **kw
        )
        return _done(poller, kw)

    def failover(self, vm: str, point_id: str | None = None):
        body = m.UnplannedFailoverInput(
            properties=m.UnplannedFailoverInputProperties(
                failover_direction="PrimaryToRecovery",
                source_site_operations="Required",
                provider_specific_details=m.InMageRcmUnplannedFailoverInput(
                    perform_shutdown="true", recovery_point_id=point_id
                ),
            )
        )
        return self.client.replication_protected_items.begin_unplanned_failover(
            self.rg, self.vault, *self.ref(vm), body
        ).result()

    def test_network(self) -> str:
        return (
            f"/subscriptions/{self.sim.subscription_id}/resourceGroups/{self.rg}"
            "/providers/Microsoft.Network/virtualNetworks/vnet-drill"
        )

    def drill(self, vm: str, point_id: str | None = None, **kw):
        body = m.TestFailoverInput(
            properties=m.TestFailoverInputProperties(
                failover_direction="PrimaryToRecovery",
                network_type="VmNetworkAsInput",
                network_id=self.test_network(),
                provider_specific_details=m.InMageRcmTestFailoverInput(
                    network_id=self.test_network(), recovery_point_id=point_id
                ),
            )
        )
        poller = self.client.replication_protected_items.begin_test_failover(
            self.rg, self.vault, *self.ref(vm), body, **kw
        )
        return _done(poller, kw)

    def apply_point(self, vm: str, point_id: str):
        body = m.ApplyRecoveryPointInput(
            properties=m.ApplyRecoveryPointInputProperties(
                recovery_point_id=point_id,
                provider_specific_details=m.InMageRcmApplyRecoveryPointInput(recovery_point_id=point_id),
            )
        )
        return self.client.replication_protected_items.begin_apply_recovery_point(
            self.rg, self.vault, *self.ref(vm), body
        ).result()


@pytest.fixture
def modern_sim():
    with start_simulator(modern_estate(), speed=6000) as s:
        yield s


@pytest.fixture
def rcm(modern_sim) -> Rcm:
    return Rcm(modern_sim)


@pytest.fixture
def exchanged(modern_sim):
    """Responses the modernized simulator sent: (method, route, status, body)."""
    responses: list = []
    modern_sim.response_hook = lambda method, route, status, body: responses.append(
        (method, route, status, body)
    )
    return responses


def compute_client(sim, **kw):
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(
        StaticToken(sim.token),
        sim.subscription_id,
        base_url=sim.endpoint,
        connection_verify=sim.ca_file,
        **kw,
    )
