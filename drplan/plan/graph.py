"""Compile a Plan into a frozen RecoveryGraph: units and hooks as nodes, ``depends_on`` as edges.

A *unit* is what fails back as one: a standalone VM (kind ``vm``) or a replication group (kind
``group``, its members together). Hooks (kind ``hook``) are nodes too. An edge ``a -> b`` means
``b`` depends on ``a``. A member VM's ``depends_on`` belongs to its group's unit, and a reference to a
member resolves to its group. networkx does every graph algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from types import MappingProxyType
from typing import Literal

import networkx as nx

from drplan.plan.loader import gc_paused, load_plan
from drplan.plan.schema import (
    DEFAULT_DURATIONS,
    ApprovalHook,
    GroupFailbackMode,
    Hook,
    Plan,
    RecoveryPointPolicy,
    ShellHook,
    Vm,
    WaitHook,
)
from drplan.plan.validate import validate_plan

SHELL_HOOK_ESTIMATE = 60.0  # seconds; capped at the hook's timeout
_START = ""  # virtual source for the node-weighted longest path (never a valid plan name)

UnitKind = Literal["vm", "group", "hook"]


@dataclass(frozen=True)
class Unit:
    """One node of the recovery graph."""

    name: str
    kind: UnitKind
    vms: tuple[Vm, ...] = ()  # one for a vm, the members for a group, none for a hook
    hook: Hook | None = None
    policy: RecoveryPointPolicy | None = None  # None for hooks
    max_data_loss: float | None = None  # seconds
    depends_on: tuple[str, ...] = ()  # node names, sorted
    estimate: float = 0.0  # seconds: failback + boot + verify (a group: its slowest member)
    verify_timeouts: Mapping[str, float] = field(default_factory=dict, hash=False)  # VM name -> seconds
    failback_mode: GroupFailbackMode | None = None  # groups only

    @property
    def vm_names(self) -> tuple[str, ...]:
        return tuple(vm.name for vm in self.vms)

    @property
    def verify_timeout(self) -> float | None:
        """How long to wait for the unit's VMs to come up (the longest member timeout); None for hooks."""
        return max(self.verify_timeouts.values()) if self.verify_timeouts else None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "kind": self.kind,
            "vms": list(self.vm_names),
            "depends_on": list(self.depends_on),
            "estimate": self.estimate,
        }
        if self.kind == "hook":
            assert self.hook is not None  # a hook unit carries its hook
            out["hook"] = self.hook.kind
        else:
            out["policy"] = str(self.policy)
            out["max_data_loss"] = self.max_data_loss
            out["verify_timeout"] = self.verify_timeout
        if self.failback_mode is not None:
            out["failback_mode"] = str(self.failback_mode)
        return out


@dataclass(frozen=True, eq=False)
class RecoveryGraph:
    """The compiled, read-only plan. Build it with :func:`compile_plan`."""

    plan_name: str
    units: Mapping[str, Unit]  # in topological order
    order: tuple[str, ...]
    generations: tuple[tuple[str, ...], ...]
    digraph: nx.DiGraph  # frozen; node attrs kind, estimate; edge a -> b: b depends on a
    _critical: tuple[tuple[str, ...], float]

    @property
    def critical_path(self) -> tuple[tuple[str, ...], float]:
        """The chain of units with the longest summed estimate, and that sum: the estimated RTO."""
        return self._critical

    @property
    def estimated_rto(self) -> float:
        return self._critical[1]

    def predecessors(self, name: str) -> tuple[str, ...]:
        """The nodes ``name`` depends on directly."""
        return self.units[name].depends_on

    def successors(self, name: str) -> tuple[str, ...]:
        """The nodes that depend on ``name`` directly."""
        return tuple(sorted(self.digraph.successors(name)))

    def descendants(self, name: str) -> frozenset[str]:
        """Every node that depends on ``name``, directly or not (what a failure of ``name`` skips)."""
        return frozenset(nx.descendants(self.digraph, name))

    def unit_of(self, vm_name: str) -> Unit:
        """The unit a VM fails back in."""
        for unit in self.units.values():
            if vm_name in unit.vm_names:
                return unit
        raise KeyError(vm_name)

    def to_dict(self) -> dict[str, object]:
        path, seconds = self._critical
        return {
            "plan": self.plan_name,
            "order": list(self.order),
            "generations": [list(g) for g in self.generations],
            "critical_path": {"units": list(path), "seconds": seconds},
            "estimated_rto": seconds,
            "units": [unit.to_dict() for unit in self.units.values()],
        }


def load_and_compile(path: str | FsPath) -> tuple[Plan, RecoveryGraph]:
    """Load, validate and compile a plan file. Raises PlanError listing every problem."""
    with gc_paused():  # 10^5 long-lived objects: see drplan.plan.loader.gc_paused
        plan = load_plan(path)
        return plan, compile_plan(plan)


def compile_plan(plan: Plan) -> RecoveryGraph:
    """Compile a valid plan (it is validated first if it was not loaded by :func:`load_plan`)."""
    analysis = validate_plan(plan)
    defaults = plan.defaults
    group_mode = plan.failback.group_failback_mode
    units: dict[str, Unit] = {}
    deps: dict[str, list[str]] = {}
    for u, v in analysis.graph.edges:
        deps.setdefault(v, []).append(u)

    def durations_of(vm: Vm) -> float:
        total = 0.0
        for op in ("failback", "boot", "verify"):
            value = getattr(vm.durations, op)
            if value is None:
                value = getattr(defaults.durations, op)
            total += DEFAULT_DURATIONS[op] if value is None else value
        return total

    def timeout_of(vm: Vm) -> float:
        return vm.verify.timeout if vm.verify.timeout is not None else defaults.boot_timeout

    def mdl(value: float | None) -> float | None:
        return value if value is not None else defaults.max_data_loss

    for vm in plan.vms:
        if vm.name in analysis.group_of:
            continue
        units[vm.name] = Unit(
            name=vm.name,
            kind="vm",
            vms=(vm,),
            policy=vm.recovery_point or defaults.recovery_point,
            max_data_loss=mdl(vm.max_data_loss),
            depends_on=tuple(sorted(deps.get(vm.name, ()))),
            estimate=durations_of(vm),
            verify_timeouts=MappingProxyType({vm.name: timeout_of(vm)}),
        )
    for group in plan.replication_groups:
        members = tuple(analysis.members[group.name])
        units[group.name] = Unit(
            name=group.name,
            kind="group",
            vms=members,
            policy=group.recovery_point or defaults.group_recovery_point,
            max_data_loss=mdl(group.max_data_loss),
            depends_on=tuple(sorted(deps.get(group.name, ()))),
            estimate=max(durations_of(vm) for vm in members),
            verify_timeouts=MappingProxyType({vm.name: timeout_of(vm) for vm in members}),
            failback_mode=group.failback_mode or group_mode,
        )
    for hook in plan.hooks:
        units[hook.name] = Unit(
            name=hook.name,
            kind="hook",
            hook=hook,
            depends_on=tuple(sorted(deps.get(hook.name, ()))),
            estimate=_hook_estimate(hook),
        )

    g = analysis.graph  # nodes and edges sorted by name; frozen once compiled
    if not nx.is_frozen(g):
        g.graph["plan"] = plan.name
        for name, unit in units.items():
            g.nodes[name].update(kind=unit.kind, estimate=unit.estimate)
        nx.freeze(g)
    order = tuple(nx.lexicographical_topological_sort(g))
    generations = tuple(tuple(sorted(gen)) for gen in nx.topological_generations(g))
    critical = _critical_path(g, order)
    return RecoveryGraph(
        plan_name=plan.name,
        units=MappingProxyType({name: units[name] for name in order}),
        order=order,
        generations=generations,
        digraph=g,
        _critical=critical,
    )


def _hook_estimate(hook: Hook) -> float:
    if isinstance(hook, WaitHook):
        return hook.duration
    if isinstance(hook, ShellHook):
        return min(SHELL_HOOK_ESTIMATE, hook.timeout)
    assert isinstance(hook, ApprovalHook)
    return 0.0  # people are not estimated


def _critical_path(g: nx.DiGraph, order: tuple[str, ...]) -> tuple[tuple[str, ...], float]:
    """Node-weighted longest path: weight each edge by its head's estimate, from a virtual start."""
    if not order:
        return (), 0.0
    est = nx.get_node_attributes(g, "estimate")
    h = nx.DiGraph()
    h.add_weighted_edges_from((_START, n, est[n]) for n in order)
    h.add_weighted_edges_from((u, v, est[v]) for u, v in g.edges)
    path = nx.dag_longest_path(h, topo_order=(_START, *order))
    names = tuple(n for n in path if n != _START)
    return names, float(sum(est[n] for n in names))
