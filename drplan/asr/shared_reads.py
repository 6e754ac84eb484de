"""Shared fresh reads of protected items: every thread that needs an item's state *now* is answered by a read
round that starts after it asked, and one round answers everyone waiting for it.

A round reads the items its waiters want the cheapest way it knows: one GET per item, one listing per
container, or one listing of the vault, by the pages each listing took the last time. Rounds follow one
another, each at least a gap after the one before (longer after a costly round), so at scale a few listings
answer what would otherwise be thousands of GETs: the request count per VM stops growing with the number of
reads, and ARM's read budget goes to the writes' polls instead. Freshness is kept: no answer comes from a
read that started before the question.
"""

from __future__ import annotations

import copy
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from drplan.clock import Clock
from drplan.errors import NotFoundError
from drplan.observed import ItemRef, ItemState

Container = tuple[str, str]  # (fabric, protection container)
#: a listing: the items it returned (SDK models, converted only when wanted) and its pages (requests)
Listing = tuple[list[Any], int]


def _key(ref: ItemRef) -> str:
    return ref.item.lower()


@dataclass
class ReadCosts:
    """What each way of reading costs, learned from the listings done so far (pages = requests)."""

    page_size: int = 100  # the largest page seen (ASR's page size is not documented)
    container_pages: dict[Container, int] = field(default_factory=dict)
    vault_pages: int | None = None
    vault_items: int | None = None  # every item of the vault, counted by a full discovery

    def learn_container(self, container: Container, items: int, pages: int) -> None:
        self.container_pages[container] = max(pages, 1)
        if pages:
            self.page_size = max(self.page_size, math.ceil(items / pages))

    def learn_vault(self, items: int, pages: int) -> None:
        self.vault_pages, self.vault_items = max(pages, 1), items

    def vault_cost(self) -> int | None:
        if self.vault_pages is not None:
            return self.vault_pages
        if self.vault_items is not None:
            return max(1, math.ceil(self.vault_items / self.page_size))
        return None

    def plan(self, want: Sequence[ItemRef]) -> tuple[bool, list[Container], list[ItemRef], int]:
        """(list the whole vault?, containers to list, items to GET, requests): the cheapest known way."""
        by_container: dict[Container, list[ItemRef]] = defaultdict(list)
        for ref in want:
            by_container[(ref.fabric, ref.container)].append(ref)
        listed: list[Container] = []
        gets: list[ItemRef] = []
        cost = 0
        for container, refs in by_container.items():
            pages = self.container_pages.get(container)
            if pages is not None and pages < len(refs):
                listed.append(container)
                cost += pages
            else:
                gets.extend(refs)
                cost += len(refs)
        vault = self.vault_cost()
        if vault is not None and vault < cost:
            return True, [], [], vault
        return False, listed, gets, cost


@dataclass
class _Round:
    want: dict[str, ItemRef] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    states: dict[str, ItemState] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    gets: set[str] = field(default_factory=set)  # items each waiter reads by its own GET, after the round


class SharedReads:
    """Fresh item states for many threads from few requests (see the module docstring).

    ``get(ref, operation)`` reads one item, ``list_container(fabric, container, operation, vms)`` one
    container and ``list_vault(operation, vms)`` the whole vault (each listing returns the SDK's items and
    its pages; ``vms`` names the VMs waiting, for error messages; ``to_state`` converts a listed item, done
    only for the items waited for; the listings record their pages in :attr:`costs`). ``min_gap`` seconds
    at least between the starts of two rounds, ``gap_per_request`` more per request the last round took, at
    most ``max_gap``; all on ``clock``.
    """

    def __init__(
        self,
        *,
        get: Callable[[ItemRef, str], ItemState],
        list_container: Callable[[str, str, str, str], Listing],
        list_vault: Callable[[str, str], Listing],
        to_state: Callable[[Any], ItemState],
        clock: Clock,
        min_gap: float = 1.0,
        gap_per_request: float = 0.5,
        max_gap: float = 10.0,
    ):
        self._get, self._list_container, self._list_vault = get, list_container, list_vault
        self._to_state = to_state
        self.clock = clock
        self.costs = ReadCosts()
        self.min_gap, self.gap_per_request, self.max_gap = min_gap, gap_per_request, max_gap
        self.rounds = 0
        self._lock = threading.Lock()
        self._pending: _Round | None = None
        self._inflight: _Round | None = None
        self._next_at = -math.inf

    def states(self, refs: Sequence[ItemRef], operation: str) -> dict[str, ItemState]:
        """The state of every item in ``refs`` (by VM name), each read after this call began."""
        with self._lock:
            lead = self._pending is None
            if self._pending is None:
                self._pending = _Round()
            rnd = self._pending
            for ref in refs:
                rnd.want.setdefault(_key(ref), ref)
        if lead:
            self._lead(rnd, operation)
        rnd.done.wait()
        out: dict[str, ItemState] = {}
        for ref in refs:
            if _key(ref) in rnd.gets:  # cheaper by GET: read now, in this thread (after the round began)
                out[ref.vm] = self._get(ref, operation)
                continue
            err = rnd.errors.get(_key(ref))
            if err is not None:
                raise copy.copy(err)
            out[ref.vm] = replace(rnd.states[_key(ref)], ref=ref)
        return out

    def _lead(self, rnd: _Round, operation: str) -> None:
        """Wait for the round before to end and the gap after its start, then close this round and read for
        it: the listings here; the GETs, if cheaper, by each waiter in its own thread (no thread waits on
        another's retries). Whatever happens here (an interrupt in a wait, a failed listing) ends the round:
        its waiters get the error, later readers a new round."""
        started, cost = self.clock.monotonic(), 0
        try:
            with self._lock:
                before = self._inflight
            if before is not None:  # one round at a time: those asking meanwhile share the next
                before.done.wait()
            wait = self._next_at - self.clock.monotonic()
            if wait > 0:
                self.clock.sleep(wait)
            with self._lock:
                self._pending, self._inflight = None, rnd
                want = list(rnd.want.values())
            started = self.clock.monotonic()
            cost = self._read(rnd, want, operation)
        except BaseException as exc:  # every item of the round fails with it
            with self._lock:
                if self._pending is rnd:
                    self._pending = None
                want = list(rnd.want.values())
            for ref in want:
                rnd.errors.setdefault(_key(ref), exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            gap = min(self.max_gap, max(self.min_gap, cost * self.gap_per_request))
            self._next_at = started + gap
            self.rounds += 1
            rnd.done.set()

    def _read(self, rnd: _Round, want: list[ItemRef], operation: str) -> int:
        whole_vault, containers, gets, cost = self.costs.plan(want)
        names = [ref.vm for ref in want]
        label = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        listings: list[Listing] = []
        if whole_vault:  # (the listing functions teach ``self.costs`` what they took)
            listings.append(self._list_vault(operation, label))
        for fabric, container in containers:
            listings.append(self._list_container(fabric, container, operation, label))
        for models, _pages in listings:
            for model in models:
                key = (getattr(model, "name", None) or "").lower()
                if key in rnd.want and key not in rnd.states:
                    rnd.states[key] = self._to_state(model)
        by_get = {_key(ref) for ref in gets}
        for ref in want:
            if _key(ref) in by_get or _key(ref) in rnd.states:
                continue
            rnd.errors[_key(ref)] = NotFoundError(
                f"{operation} of VM {ref.vm} failed: protected item {ref.item} is no longer in container "
                f"{ref.container} (protection disabled or VM moved?)",
                vm=ref.vm,
                operation=operation,
            )
        rnd.gets = by_get  # each waiter GETs these itself, concurrently, once the round is marked done
        return cost
