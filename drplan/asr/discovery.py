"""Discovery and reads: VM names → protected items with one listing per container; states; recovery points."""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from drplan.asr import convert
from drplan.asr.base import AsrBase, log
from drplan.errors import NotFoundError, PreconditionError
from drplan.observed import ItemRef, ItemState, RecoveryPoint


class DiscoveryMixin(AsrBase):
    def containers(self, *, vm: str = "(all)") -> list[tuple[str, str]]:
        """Every (fabric, protection container) of the vault: one fabric listing + one listing per fabric.

        ``vm`` names the VMs being looked up, for error messages."""
        out: list[tuple[str, str]] = []
        for fabric in self._list(vm, "discover (list fabrics)", self._sdk.replication_fabrics.list):
            listing = self._list(
                vm,
                "discover (list protection containers)",
                self._sdk.replication_protection_containers.list_by_replication_fabrics,
                fabric.name,
            )
            out.extend((fabric.name, c.name) for c in listing)
        return out

    def _container_items(self, fabric: str, container: str, *, vm: str, operation: str) -> list[ItemState]:
        """One listing of a container's protected items (pages followed), as states."""
        return [
            convert.item_state(m) for m in self._list_container_pages(fabric, container, operation, vm)[0]
        ]

    def _list_container_pages(
        self, fabric: str, container: str, operation: str, vm: str
    ) -> tuple[list[Any], int]:
        """One listing of a container's protected items: the SDK's items and the pages it took."""
        models, pages = self._list_pages(
            vm,
            operation,
            self._sdk.replication_protected_items.list_by_replication_protection_containers,
            fabric,
            container,
        )
        self._reads.costs.learn_container((fabric, container), len(models), pages)
        return models, pages

    def _list_vault_pages(self, operation: str, vm: str) -> tuple[list[Any], int]:
        """One listing of every protected item of the vault: the SDK's items and the pages it took."""
        models, pages = self._list_pages(vm, operation, self._sdk.replication_protected_items.list)
        self._reads.costs.learn_vault(len(models), pages)
        return models, pages

    def list_items(self, *, vm: str = "(all)") -> list[ItemState]:
        """Every protected item of the vault, one listing per container."""
        op = "discover (list protected items)"
        items = [
            s
            for fabric, container in self.containers(vm=vm)
            for s in self._container_items(fabric, container, vm=vm, operation=op)
        ]
        self._reads.costs.vault_items = len(items)
        return items

    def discover(self, vm_names: Iterable[str]) -> dict[str, ItemRef]:
        """Resolve the plan's VM names (ASR friendly names) to protected items.

        Lists each container once, never one call per VM. Raises one :class:`NotFoundError` naming every
        unknown VM with close matches, or one :class:`PreconditionError` naming every VM found more than once.
        """
        wanted = list(dict.fromkeys(vm_names))
        found: dict[str, list[ItemRef]] = defaultdict(list)
        label = ", ".join(wanted[:5]) + (f" and {len(wanted) - 5} more" if len(wanted) > 5 else "")
        for state in self.list_items(vm=label):
            found[state.friendly_name].append(state.ref)
        missing = [n for n in wanted if n not in found]
        dupes = {n: found[n] for n in wanted if len(found.get(n, ())) > 1}
        problems = []
        for name in missing:
            close = difflib.get_close_matches(name, list(found), n=3, cutoff=0.6)
            folded = [k for k in found if k.lower() == name.lower() and k not in close]
            close = folded + close
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            problems.append(f"VM {name!r} is not a protected item in vault {self.vault}{hint}")
        for name, refs in dupes.items():
            where = ", ".join(f"{r.fabric}/{r.container}/{r.item}" for r in refs)
            problems.append(
                f"VM {name!r} matches {len(refs)} protected items ({where}); names must be unique"
            )
        if missing:
            raise NotFoundError(
                f"discovery failed for {len(missing) + len(dupes)} VM(s):\n  " + "\n  ".join(problems),
                vm=", ".join(missing + list(dupes)),
                operation="discover",
            )
        if dupes:
            raise PreconditionError(
                "discovery failed:\n  " + "\n  ".join(problems),
                vm=", ".join(dupes),
                operation="discover",
                rule="VM names are unique in the vault",
            )
        log.info("discovered %d VMs in vault %s", len(wanted), self.vault)
        return {n: found[n][0] for n in wanted}

    def item_state(self, ref: ItemRef, *, operation: str = "read item state") -> ItemState:
        """The item's state, read after this call began: a shared read round (:mod:`~drplan.asr.shared_reads`)
        answers every thread waiting at once, by one GET each or a listing, whichever costs fewer requests."""
        return self._reads.states([ref], operation)[ref.vm]

    def item_states(
        self, refs: Sequence[ItemRef], *, operation: str = "read item states"
    ) -> dict[str, ItemState]:
        """The states of many items (by VM name), read after this call began, in the same shared rounds."""
        return self._reads.states(refs, operation) if refs else {}

    def _get_item(self, ref: ItemRef, operation: str) -> ItemState:
        """One GET of the protected item."""
        model = self._call(
            ref.vm, operation, self._sdk.replication_protected_items.get, ref.fabric, ref.container, ref.item
        )
        return convert.item_state(model, ref)

    def recovery_points(self, ref: ItemRef) -> list[RecoveryPoint]:
        """The item's recovery points, oldest first."""
        models = self._list(
            ref.vm,
            "list recovery points",
            self._sdk.recovery_points.list_by_replication_protected_items,
            ref.fabric,
            ref.container,
            ref.item,
        )
        return sorted((convert.recovery_point(m) for m in models), key=lambda p: (p.time, p.id))

    def recovery_point(self, ref: ItemRef, point_id: str) -> RecoveryPoint:
        """One recovery point of the item by its id or name (the point a failover applied, say)."""
        model = self._call(
            ref.vm,
            "read recovery point",
            self._sdk.recovery_points.get,
            ref.fabric,
            ref.container,
            ref.item,
            point_id.rstrip("/").rsplit("/", 1)[-1],
        )
        return convert.recovery_point(model)

    def recovery_points_for(self, refs: Iterable[ItemRef]) -> dict[str, list[RecoveryPoint]]:
        """Recovery points of many items (ASR has no batched call: one listing per item)."""
        return {ref.vm: self.recovery_points(ref) for ref in refs}
