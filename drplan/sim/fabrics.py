"""The fabrics a simulated vault serves, one per ASR stack: the classic VMware fabric (configuration server)
and the modernized InMageRcm fabric (replication appliances), each with its container, its discovered
vCenter and its recovery services providers. An estate serves the stacks its VMs use (classic when none)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drplan.sim import rcm_shapes, shapes
from drplan.sim.items import Item
from drplan.sim.lifecycle import Engine
from drplan.sim.rules import SimError


@dataclass(frozen=True)
class Stack:
    provider: str  # classic | modernized
    fabric: str  # ARM names
    container: str
    render_fabric: Callable[[Engine], dict]
    render_container: Callable[[Engine], dict]
    render_vcenter: Callable[[Engine], dict]
    render_providers: Callable[[Engine], list[dict]]


def stacks(e: Engine) -> list[Stack]:
    out = []
    if e.serves_classic:
        cs = e.estate.configuration_server
        out.append(
            Stack(
                "classic",
                cs.fabric,
                cs.container,
                shapes.fabric,
                shapes.container,
                shapes.vcenter,
                lambda e_: [shapes.provider(e_)],
            )
        )
    if e.serves_modernized:
        site = e.estate.modernized
        out.append(
            Stack(
                "modernized",
                site.fabric,
                site.container,
                rcm_shapes.fabric,
                rcm_shapes.container,
                rcm_shapes.vcenter,
                rcm_shapes.providers,
            )
        )
    return out


def stack(e: Engine, fabric: str, container: str | None = None) -> Stack:
    """The stack of fabric ``fabric`` (and of its container ``container``); 404 when there is none."""
    s = next((s for s in stacks(e) if s.fabric.lower() == fabric.lower()), None)
    if s is None:
        raise SimError(404, "NotFound", f"fabric {fabric!r} not found")
    if container is not None and container.lower() != s.container.lower():
        raise SimError(404, "NotFound", f"protection container {container!r} not found in fabric {fabric!r}")
    return s


def item_in(e: Engine, fabric: str, container: str, name: str) -> Item:
    """The protected item ``name`` of that fabric and container; 404 when it lives elsewhere."""
    s = stack(e, fabric, container)
    it = e.item_by_name(name)
    if it is None or e.vm_of(it).provider != s.provider:
        raise SimError(404, "NotFound", f"replication protected item {name!r} not found")
    return it
