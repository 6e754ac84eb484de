"""Small plan builders for tests/plan."""

from __future__ import annotations

import copy

BASE = {
    "name": "t",
    "azure": {"subscription_id": "s", "resource_group": "r", "vault": "v"},
    "vcenter": {"host": "h", "username": "u", "password": {"env": "PW"}},
    "master_targets": [{"name": "mt-win", "os": "windows"}, {"name": "mt-lnx", "os": "linux"}],
}


def vm(name: str, *deps: str, os: str = "linux", **extra) -> dict:
    out = {"name": name, "os": os, "master_target": "mt-win" if os == "windows" else "mt-lnx", **extra}
    if deps:
        out["depends_on"] = list(deps)
    return out


def plan_data(vms=(), groups=(), hooks=(), **extra) -> dict:
    data = copy.deepcopy(BASE)
    data.update(vms=list(vms), replication_groups=list(groups), hooks=list(hooks), **extra)
    return data
