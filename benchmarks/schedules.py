"""The three schedules as plan-level transforms (so the same flow runs each), and the lower bounds.

* ``graph``: the plan as written; a unit starts when its own dependencies are verified.
* ``wave``: each topological generation waits for the whole previous one (ASR recovery-plan groups, SRM
  priority groups): every node of generation k+1 depends on every node of generation k.
* ``sequential``: one unit after another in the compiled topological order (a hand-written runbook).
  A replication group stays one unit: its members fail back together to their common point.

The bounds are node-weighted longest paths (networkx ``dag_longest_path_length``) over the per-VM durations
the simulator uses: unit weight = failback then verification of every member (a group: its slowest), hooks
their wait; then the commit gate (every unit verified) and, per unit, commit then reprotect to Azure. The
*physical* bound uses exact durations; the *poll-grid* bound rounds each wait up to what a poller can see:
whole-second ``Retry-After`` for ASR jobs, a 1 s boot-poll step for verification.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import networkx as nx

SCHEDULES = ("graph", "wave", "sequential")
_START, _GATE = "\0start", "\0gate"


def dependencies(graph, schedule: str) -> dict[str, list[str]]:
    """node -> the nodes it depends on under ``schedule`` (``graph``: the compiled edges)."""
    if schedule == "graph":
        return {n: sorted(graph.predecessors(n)) for n in graph.order}
    if schedule == "wave":
        gens = graph.generations
        out = {n: [] for n in gens[0]} if gens else {}
        for prev, gen in zip(gens, gens[1:], strict=False):
            for n in gen:
                out[n] = list(prev)
        return out
    if schedule == "sequential":
        order = list(graph.order)
        return {n: ([order[i - 1]] if i else []) for i, n in enumerate(order)}
    raise ValueError(f"unknown schedule {schedule!r} (use one of {', '.join(SCHEDULES)})")


def transform(data: dict, graph, schedule: str) -> dict:
    """Plan data whose dependency edges are ``schedule``'s (a deep copy; ``data`` is not changed)."""
    deps = dependencies(graph, schedule)
    out = copy.deepcopy(data)
    if schedule == "graph":
        return out
    for key in ("vms", "replication_groups", "hooks"):
        for holder in out.get(key, []):
            holder.pop("depends_on", None)
    holders = {h["name"]: h for key in ("vms", "replication_groups", "hooks") for h in out.get(key, [])}
    for node, upstream in deps.items():
        if upstream:
            holders[node]["depends_on"] = list(upstream)
    return out


def _unit_weight(unit, durations: Mapping[str, Mapping[str, float]], hook_waits, grid: bool) -> float:
    if unit.kind == "hook":
        return float(hook_waits.get(unit.name, 0.0))
    ceil = math.ceil if grid else (lambda x: x)
    members = [durations[v.name] for v in unit.vms]
    verify_start = max(ceil(d["failback"]) for d in members)
    done = verify_start
    for d in members:
        booted = d["failback"] + d["boot"]  # the VM powers on at the job's end, boots in ``boot``
        done = max(done, verify_start + ceil(max(0.0, booted - verify_start)))
    return float(done)


def _post_weight(unit, durations, grid: bool) -> float:
    if unit.kind == "hook":
        return 0.0
    ceil = math.ceil if grid else (lambda x: x)
    members = [durations[v.name] for v in unit.vms]
    return float(max(ceil(d["commit"]) for d in members) + max(ceil(d["reprotect"]) for d in members))


def bound(
    graph,
    durations: Mapping[str, Mapping[str, float]],
    hook_waits: Mapping[str, float] | None = None,
    *,
    deps: Mapping[str, list[str]] | None = None,
    post: bool = True,
    grid: bool = False,
) -> float:
    """Longest path through ``deps`` (default: the compiled graph) with the durations as node weights.

    ``post``: add the commit gate and each unit's commit + reprotect after it (the full failback).
    """
    hook_waits = hook_waits or {}
    deps = deps if deps is not None else dependencies(graph, "graph")
    h = nx.DiGraph()
    weight = {n: _unit_weight(graph.units[n], durations, hook_waits, grid) for n in graph.order}
    has_succ = set()
    for n, upstream in deps.items():
        if not upstream:
            h.add_edge(_START, n, weight=weight[n])
        for u in upstream:
            h.add_edge(u, n, weight=weight[n])
            has_succ.add(u)
    if post:
        for n in graph.order:
            if n not in has_succ:
                h.add_edge(n, _GATE, weight=0.0)
        for n in graph.order:
            if graph.units[n].kind != "hook":
                h.add_edge(_GATE, f"\0post {n}", weight=_post_weight(graph.units[n], durations, grid))
    return float(nx.dag_longest_path_length(h, weight="weight"))
