"""Seeded synthetic plans for benchmarks and property tests.

``synth_plan_data(Spec(vms=10_000, seed=1))`` returns plain plan data; ``synth_plan_yaml`` the same
as YAML text (loadable by :func:`drplan.plan.loader.load_plan_text`); ``synth_plan`` a validated Plan.

Shape: units (standalone VMs, and replication groups of 2-8 VMs) are spread over ``layers``
layers; each unit of layer k > 0 depends on 1..``fan_in`` units of earlier layers (mostly the
layer just before), declared on the unit or, for a group, on one of its members. Each group is
uniform in OS and master target. Per-VM durations vary by ``spread`` around the defaults. Hooks
(shell, wait, approval, in turn) sit between layers.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from drplan.plan.schema import DEFAULT_DURATIONS, Plan


@dataclass(frozen=True)
class Spec:
    vms: int = 100
    group_share: float = 0.3  # share of VMs that are members of replication groups
    group_size: tuple[int, int] = (2, 8)
    layers: int = 6  # depth of the dependency graph
    fan_in: int = 3  # at most this many dependencies per unit
    hooks: int = 4
    spread: float = 0.5  # durations vary in [1 - spread, 1 + spread] x default
    master_targets: int = 4  # per OS family
    seed: int = 0


def synth_plan_data(spec: Spec) -> dict:
    """Plain plan data (dicts, lists, strings, numbers) for ``spec``; same spec, same plan."""
    rnd = random.Random(spec.seed)
    width = max(len(str(spec.vms)), 4)
    vms: list[dict] = []
    groups: list[dict] = []
    units: list[tuple[str, list[dict]]] = []  # (unit name, dict that carries its depends_on)

    def new_vm(os: str, mt: str) -> dict:
        vm: dict = {"name": f"vm-{len(vms):0{width}d}", "os": os, "master_target": mt}
        if rnd.random() < 0.5:
            vm["durations"] = {
                op: f"{round(DEFAULT_DURATIONS[op] * rnd.uniform(1 - spec.spread, 1 + spec.spread))}s"
                for op in ("failback", "boot", "verify")
            }
        vms.append(vm)
        return vm

    def pick_os() -> tuple[str, str]:
        os = "windows" if rnd.random() < 0.5 else "linux"
        return os, f"mt-{os[:3]}-{rnd.randrange(spec.master_targets):02d}"

    grouped_target = int(spec.vms * spec.group_share)
    lo, hi = spec.group_size
    while grouped_target - sum(len(g["members"]) for g in groups) >= lo:
        room = grouped_target - sum(len(g["members"]) for g in groups)
        size = min(rnd.randint(lo, hi), room)
        os, mt = pick_os()
        members = [new_vm(os, mt) for _ in range(size)]
        group = {"name": f"rg-{len(groups):0{width}d}", "members": [m["name"] for m in members]}
        if rnd.random() < 0.2:
            group["max_data_loss"] = "1h"
        groups.append(group)
        units.append((group["name"], [group, *members]))
    while len(vms) < spec.vms:
        vm = new_vm(*pick_os())
        if rnd.random() < 0.1:
            vm["recovery_point"] = "latest-app-consistent"
        units.append((vm["name"], [vm]))
    rnd.shuffle(units)

    layers = max(1, spec.layers)
    per_layer = [units[i::layers] for i in range(layers)]
    for k in range(1, layers):
        for _name, holders in per_layer[k]:
            count = rnd.randint(1, spec.fan_in)
            deps = set()
            for _ in range(count):
                src = k - 1 if rnd.random() < 0.7 or k == 1 else rnd.randrange(k)
                if per_layer[src]:
                    deps.add(rnd.choice(per_layer[src])[0])
            if deps:
                holder = rnd.choice(holders)  # a group's dependency may be declared on a member
                holder.setdefault("depends_on", []).extend(sorted(deps))

    hooks: list[dict] = []
    for i in range(spec.hooks):
        k = 1 + i % max(1, layers - 1) if layers > 1 else 0
        before = per_layer[k - 1] if k else []
        hook: dict = {"name": f"hook-{i:03d}"}
        hook.update(
            (
                {"kind": "shell", "command": f"./check.sh {i}", "timeout": "5m"},
                {"kind": "wait", "duration": "2m"},
                {"kind": "approval", "prompt": f"continue after layer {k - 1}?"},
            )[i % 3]
        )
        if before:
            hook["depends_on"] = sorted({rnd.choice(before)[0] for _ in range(2)})
        hooks.append(hook)
        if k < layers and per_layer[k]:
            _name, holders = rnd.choice(per_layer[k])
            holders[0].setdefault("depends_on", []).append(hook["name"])

    master_targets = [
        {"name": f"mt-{os[:3]}-{i:02d}", "os": os}
        for os in ("windows", "linux")
        for i in range(spec.master_targets)
    ]
    return {
        "name": f"synth-{spec.vms}",
        "description": f"synthetic plan, seed {spec.seed}",
        "azure": {
            "subscription_id": "00000000-0000-0000-0000-000000000000",
            "resource_group": "rg-dr",
            "vault": "rsv-dr",
        },
        "vcenter": {
            "host": "vcenter.example.local",
            "username": "drplan@vsphere.local",
            "password": {"env": "DRPLAN_VCENTER_PASSWORD"},
        },
        "master_targets": master_targets,
        "replication_groups": groups,
        "vms": vms,
        "hooks": hooks,
    }


def to_yaml(data: object, indent: int = 0) -> str:
    """A small block-style YAML emitter for plan data (much faster than a general one for big plans).
    Strings are written as JSON strings, which YAML reads as double-quoted scalars."""
    pad = " " * indent
    lines: list[str] = []

    def scalar(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        s = str(v)
        plain = (
            s
            and all(c.isalnum() or c in "-_." for c in s)
            and not s[0].isdigit()
            and s not in ("true", "false", "null", "yes", "no", "on", "off")
        )
        return s if plain else json.dumps(s)

    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, list) and v and all(not isinstance(x, dict | list) for x in v):
                lines.append(f"{pad}{k}: [{', '.join(scalar(x) for x in v)}]")
            elif isinstance(v, list) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict | list):
                lines.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                lines.append(f"{pad}{k}: {scalar(v)}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {body[indent + 2 :]}")
            else:
                lines.append(f"{pad}- {scalar(item)}")
    return "\n".join(lines)


def synth_plan_yaml(spec: Spec) -> str:
    return to_yaml(synth_plan_data(spec)) + "\n"


def synth_plan(spec: Spec) -> Plan:
    """A schema-valid Plan (cross-reference rules run on compile, or via drplan.plan.validate)."""
    return Plan.model_validate(synth_plan_data(spec))
