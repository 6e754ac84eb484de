"""The project's seams: what may import what, and that every deployment entrypoint and plan loads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "drplan"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _library_files() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


@pytest.mark.parametrize(
    ("prefix", "allowed"),
    [
        ("prefect", ()),
        ("azure.mgmt", ("drplan/asr",)),
        ("azure.identity", ("drplan/asr",)),
        ("pyVmomi", ("drplan/vcenter",)),
        ("pyVim", ("drplan/vcenter",)),
    ],
)
def test_library_seams(prefix: str, allowed: tuple[str, ...]) -> None:
    offenders = []
    for path in _library_files():
        rel = path.relative_to(ROOT).as_posix()
        if any(rel.startswith(a) for a in allowed):
            continue
        if any(name == prefix or name.startswith(prefix + ".") for name in _imports(path)):
            offenders.append(rel)
    assert offenders == [], f"{prefix} imported outside {allowed or 'nowhere allowed'}: {offenders}"


def test_every_prefect_yaml_entrypoint_loads() -> None:
    from prefect.flows import load_flow_from_entrypoint
    from ruamel.yaml import YAML

    config = YAML(typ="safe").load((ROOT / "prefect.yaml").read_text())
    entrypoints = {d["entrypoint"] for d in config["deployments"]}
    assert entrypoints, "prefect.yaml declares no deployments"
    for entrypoint in sorted(entrypoints):
        path, _, name = entrypoint.partition(":")
        flow = load_flow_from_entrypoint(str(ROOT / path) + ":" + name)
        assert flow.name == name, entrypoint


def test_every_plan_loads_and_compiles() -> None:
    from drplan.plan.graph import load_and_compile

    plans = sorted((ROOT / "plans").rglob("*.yaml"))
    assert plans, "no example plans"
    for path in plans:
        plan, graph = load_and_compile(path)
        assert graph.order, path
