"""The run plan: the compiled plan graph turned into the steps one run executes, orchestrator-neutral.

A pure function of the graph and a :class:`RunShape` (which step kinds a unit and a hook become, the stages
after the graph, the hooks after the stages). Prefect renders a run plan into task runs with ``wait_for``
edges (``flows/``); :mod:`drplan.run.executor` runs the same plan on threads, for tests and for reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drplan.plan.graph import RecoveryGraph
from drplan.plan.schema import Hook

StepKey = tuple[str, str]  # (step kind, node)


@dataclass(frozen=True)
class Stage:
    """A stage after the graph: a step kind run per unit, or once for the whole plan (a gate) as ``node``."""

    kind: str
    per_unit: bool = True
    node: str = ""


@dataclass(frozen=True)
class RunShape:
    """How a kind of run lays the plan graph out as steps."""

    name: str  # failback | drill | reprotect: which hooks run (``hook.runs_in``)
    unit_steps: tuple[str, ...]  # a unit becomes this chain, e.g. failback → verify
    hook_step: str  # a hook becomes one step of this kind
    stages: tuple[Stage, ...] = ()  # after the graph: gates and per-unit stages
    final_hook_step: str | None = None  # hooks marked ``after_cleanup`` run after every stage, in graph order


@dataclass(frozen=True)
class PlannedStep:
    """One step of a run: its kind, its graph node and the steps it waits for."""

    kind: str
    node: str
    upstream: tuple[StepKey, ...]

    @property
    def key(self) -> StepKey:
        return (self.kind, self.node)


@dataclass(frozen=True)
class RunPlan:
    """Every step of a run in submission order; ``capped`` kinds run a bounded number at once."""

    steps: tuple[PlannedStep, ...]
    capped: frozenset[str]

    def __len__(self) -> int:
        return len(self.steps)

    def keys(self) -> list[StepKey]:
        return [s.key for s in self.steps]


def hook_of(graph: RecoveryGraph, node: str) -> Hook:
    """The hook behind a hook node."""
    hook = graph.units[node].hook
    if hook is None:
        raise KeyError(f"{node} is not a hook")
    return hook


def runs_in(graph: RecoveryGraph, node: str, run: str) -> bool:
    """Whether ``node`` is a step of a ``run`` run's graph phase (units always; hooks that run in it)."""
    if graph.units[node].kind != "hook":
        return True
    hook = hook_of(graph, node)
    return run in hook.runs_in and not hook.after_cleanup


def effective_predecessors(graph: RecoveryGraph, node: str, run: str) -> list[str]:
    """The node's graph predecessors, looking through hooks that do not run in this kind of run."""
    out: list[str] = []
    for p in graph.predecessors(node):
        if runs_in(graph, p, run):
            out.append(p)
        else:
            out += [q for q in effective_predecessors(graph, p, run) if q not in out]
    return out


def final_hooks(graph: RecoveryGraph, run: str) -> list[str]:
    """Hooks marked ``after_cleanup`` that run in ``run``, in graph order."""
    hooks = [n for n in graph.order if graph.units[n].kind == "hook"]
    return [n for n in hooks if hook_of(graph, n).after_cleanup and run in hook_of(graph, n).runs_in]


def build_run_plan(graph: RecoveryGraph, shape: RunShape) -> RunPlan:
    """Every step of the run with the steps it waits for.

    Graph phase, in topological order: a unit becomes a chain of ``unit_steps``, a hook one ``hook_step``; a
    node's first step waits for the last step of each effective predecessor. Then each stage: a gate waits
    for the graph's sinks; a per-unit stage waits for the gate just before it, or else for the unit's
    previous step. Then the final hooks, after every step of the last stage and after each other.
    """
    steps: dict[StepKey, tuple[StepKey, ...]] = {}
    terminal: dict[str, StepKey] = {}
    nodes = [n for n in graph.order if runs_in(graph, n, shape.name)]
    preds = {n: effective_predecessors(graph, n, shape.name) for n in nodes}
    for node in nodes:
        upstream = tuple(terminal[p] for p in preds[node])
        kinds = (shape.hook_step,) if graph.units[node].kind == "hook" else shape.unit_steps
        for kind in kinds:
            steps[(kind, node)] = upstream
            upstream = ((kind, node),)
        terminal[node] = upstream[0]

    has_succ = {p for n in nodes for p in preds[n]}
    sinks = tuple(terminal[n] for n in nodes if n not in has_succ)
    units = [n for n in nodes if graph.units[n].kind != "hook"]
    last: dict[str, tuple[StepKey, ...]] = {n: (terminal[n],) for n in units}
    gate: tuple[StepKey, ...] | None = None
    for stage in shape.stages:
        if not stage.per_unit:
            steps[(stage.kind, stage.node)] = sinks
            gate = ((stage.kind, stage.node),)
            continue
        for n in units:
            steps[(stage.kind, n)] = gate if gate is not None else last[n]
            last[n] = ((stage.kind, n),)
        gate = None

    if shape.final_hook_step is not None:
        before = _last_stage_steps(shape.stages, units, gate)
        done: dict[str, StepKey] = {}
        for node in final_hooks(graph, shape.name):
            own = tuple(done[p] for p in graph.predecessors(node) if p in done)
            done[node] = (shape.final_hook_step, node)
            steps[done[node]] = (*before, *own)

    capped = frozenset(s.kind for s in shape.stages if s.per_unit)
    return RunPlan(tuple(PlannedStep(k, n, ups) for (k, n), ups in steps.items()), capped)


def _last_stage_steps(
    stages: Sequence[Stage], units: Sequence[str], gate: tuple[StepKey, ...] | None
) -> tuple[StepKey, ...]:
    if not stages:
        return ()
    last = stages[-1]
    return tuple((last.kind, n) for n in units) if last.per_unit else (gate or ())
