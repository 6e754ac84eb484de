"""Batched reads: every named VM, port group and datastore in ONE property-collector round trip.

A container view over the root folder selects the objects, one ``RetrievePropertiesEx`` collects their
properties (plus ``ContinueRetrievePropertiesEx`` only if the server pages a very large result), and the
view is destroyed in ``finally``. The number of SOAP calls does not depend on the number of VMs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyVmomi import vim, vmodl

from drplan.observed import SiteState, VmState

log = logging.getLogger(__name__)

#: What one VM read collects (vSphere property paths).
VM_PROPERTIES = (
    "name",
    "runtime.powerState",
    "guest.toolsRunningStatus",
    "guest.toolsVersionStatus2",
    "guestHeartbeatStatus",
    "guest.ipAddress",
    "config.instanceUuid",
    "snapshot",
)
NETWORK_PROPERTIES = ("name",)
DATASTORE_PROPERTIES = ("name", "summary.freeSpace")

PC = vmodl.query.PropertyCollector


def retrieve(content: Any, properties: Mapping[type, Sequence[str]]) -> list[tuple[Any, dict[str, Any]]]:
    """Collect ``properties`` of every object of the given types in the inventory, in one round trip.

    Returns ``(managed object, {path: value})`` pairs; unset properties are absent from the dict.
    """
    view = content.viewManager.CreateContainerView(content.rootFolder, list(properties), True)
    try:
        spec = PC.FilterSpec(
            objectSet=[
                PC.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[
                        PC.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)
                    ],
                )
            ],
            propSet=[
                PC.PropertySpec(type=t, all=False, pathSet=list(paths)) for t, paths in properties.items()
            ],
        )
        collector = content.propertyCollector
        result = collector.RetrievePropertiesEx([spec], PC.RetrieveOptions())
        objects = list(result.objects) if result else []
        while result is not None and result.token:  # only when the server pages (very large inventories)
            result = collector.ContinueRetrievePropertiesEx(result.token)
            objects.extend(result.objects)
    finally:
        view.DestroyView()
    return [(o.obj, {p.name: p.val for p in (o.propSet or ())}) for o in objects]


def vm_state(name: str, props: Mapping[str, Any] | None) -> VmState:
    """Turn one VM's collected properties into a :class:`VmState` (``present=False`` when not found)."""
    if props is None:
        return VmState(name=name, present=False)
    snapshot = props.get("snapshot")
    return VmState(
        name=name,
        present=True,
        power_state=str(props.get("runtime.powerState") or "unknown"),
        tools_running_status=str(props.get("guest.toolsRunningStatus") or "guestToolsNotRunning"),
        tools_version_status=str(props.get("guest.toolsVersionStatus2") or ""),
        heartbeat=str(props.get("guestHeartbeatStatus") or ""),
        guest_ip=props.get("guest.ipAddress") or None,
        instance_uuid=props.get("config.instanceUuid") or None,
        has_snapshots=bool(snapshot is not None and snapshot.rootSnapshotList),
    )


def index_by_name(objects: Iterable[tuple[Any, dict[str, Any]]], kind: str) -> dict[str, tuple[Any, dict]]:
    """Map name -> (object, props). Names are unique per folder only: the first wins, with a warning."""
    out: dict[str, tuple[Any, dict]] = {}
    for obj, props in objects:
        name = props.get("name")
        if not name:
            continue
        if name in out:
            log.warning(
                "two %s objects are named %r in vCenter (%s, %s): using the first",
                kind,
                name,
                out[name][0]._moId,
                obj._moId,
            )
            continue
        out[name] = (obj, props)
    return out


def read_site(
    content: Any, vms: Sequence[str], *, port_groups: Sequence[str] = (), datastores: Sequence[str] = ()
) -> tuple[SiteState, dict[str, Any]]:
    """One batched read. Returns the :class:`SiteState` and the managed objects of the VMs found.

    ``port_groups`` holds the port groups found among those asked for (every network when none are
    asked for); ``datastore_free_bytes`` the free space of the datastores found among those asked for.
    """
    wanted: dict[type, Sequence[str]] = {vim.VirtualMachine: VM_PROPERTIES, vim.Network: NETWORK_PROPERTIES}
    if datastores:
        wanted[vim.Datastore] = DATASTORE_PROPERTIES
    objects = retrieve(content, wanted)
    by_type: dict[str, list] = {"vm": [], "net": [], "ds": []}
    for obj, props in objects:
        if isinstance(obj, vim.VirtualMachine):
            key = "vm"
        else:
            key = "ds" if isinstance(obj, vim.Datastore) else "net"
        by_type[key].append((obj, props))
    found = index_by_name(by_type["vm"], "VirtualMachine")
    nets = {props["name"] for _, props in by_type["net"] if props.get("name")}
    dss = index_by_name(by_type["ds"], "Datastore")
    state = SiteState(
        connected=True,
        vms={n: vm_state(n, found[n][1] if n in found else None) for n in vms},
        port_groups=frozenset(n for n in port_groups if n in nets) if port_groups else frozenset(nets),
        datastore_free_bytes={
            n: int(dss[n][1].get("summary.freeSpace") or 0) for n in datastores if n in dss
        },
    )
    return state, {n: found[n][0] for n in vms if n in found}
