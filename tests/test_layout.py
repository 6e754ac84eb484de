"""The project's seams, enforced: what may import what, where the environment is read, and that every
deployment entrypoint and plan loads. Each rule names the offending module when it breaks."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "drplan"


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Absolute module names ``path`` imports (``from a import b`` gives ``a`` and ``a.b``); TYPE_CHECKING
    blocks are ignored; ``top_level_only`` ignores imports inside functions."""
    names: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import) and not (top_level_only and in_function):
                names.update(alias.name for alias in child.names)
            elif (
                isinstance(child, ast.ImportFrom)
                and child.module
                and child.level == 0
                and not (top_level_only and in_function)
            ):
                names.add(child.module)
                names.update(f"{child.module}.{alias.name}" for alias in child.names)
            visit(child, nested)

    visit(_tree(path), False)
    return names


def _library_files() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _uses(names: set[str], prefix: str) -> bool:
    return any(n == prefix or n.startswith(prefix + ".") for n in names)


@cache
def _import_graph(top_level_only: bool = True) -> nx.DiGraph:
    """drplan's modules and the drplan modules each imports (``from pkg import x`` counts ``pkg``)."""
    modules = {_module(p): p for p in _library_files()}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for imported in _imports(path, top_level_only=top_level_only):
            # a module's own parent packages are always imported before it: not an edge of a cycle
            if imported in modules and imported != name and not name.startswith(imported + "."):
                graph.add_edge(name, imported)
    return graph


@pytest.mark.parametrize(
    ("prefix", "allowed"),
    [
        ("prefect", ()),
        ("azure.mgmt", ("drplan/asr",)),
        ("azure.identity", ("drplan/asr",)),
        ("azure.core", ("drplan/asr",)),
        ("pyVmomi", ("drplan/vcenter",)),
        ("pyVim", ("drplan/vcenter",)),
    ],
)
def test_library_seams(prefix: str, allowed: tuple[str, ...]) -> None:
    offenders = [
        _rel(p)
        for p in _library_files()
        if not any(_rel(p).startswith(a) for a in allowed) and _uses(_imports(p), prefix)
    ]
    assert offenders == [], f"{prefix} imported outside {allowed or 'nowhere allowed'}: {offenders}"


def test_the_library_imports_the_prefect_layer_only_lazily_inside_cli_commands() -> None:
    offenders = []
    for path in _library_files():
        for layer in ("flows", "tasks"):
            if _uses(_imports(path, top_level_only=True), layer):
                offenders.append(f"{_rel(path)} imports {layer} at module level")
            elif _uses(_imports(path), layer) and not _rel(path).startswith("drplan/cli/"):
                offenders.append(f"{_rel(path)} imports {layer}")
    assert offenders == []


def test_importing_the_whole_library_and_the_cli_does_not_import_prefect() -> None:
    modules = sorted(_module(p) for p in _library_files())
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "layer = ('prefect.', 'flows', 'tasks')\n"
        "bad = sorted(m for m in sys.modules if m == 'prefect' or m.startswith(layer))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


PURE = ("drplan.plan", "drplan.recovery.points", "drplan.recovery.preconditions", "drplan.run.run_plan")
ADAPTERS = ("drplan.asr", "drplan.vcenter", "drplan.sim")


def test_pure_modules_import_no_adapter_even_indirectly() -> None:
    graph = _import_graph(top_level_only=False)
    offenders = []
    for module in graph:
        if not any(module == p or module.startswith(p + ".") for p in PURE):
            continue
        reached = nx.descendants(graph, module)
        bad = sorted(m for m in reached if any(m == a or m.startswith(a + ".") for a in ADAPTERS))
        if bad:
            offenders.append(f"{module} -> {bad}")
    assert offenders == []


def test_run_kinds_build_no_simulated_estate() -> None:
    """Estates are made in drplan.sim; a run reaches the simulator only through drplan.run.targets."""
    allowed = ("drplan/sim/", "drplan/cli/sim_cmds.py", "drplan/cli/run_cmds.py", "drplan/run/targets.py")
    offenders = [
        _rel(p)
        for p in _library_files()
        if not _rel(p).startswith(allowed) and _uses(_imports(p), "drplan.sim")
    ]
    assert offenders == []


def test_the_lifecycle_phase_is_judged_outside_the_azure_adapter() -> None:
    defined = {
        _rel(p)
        for p in _library_files()
        for node in ast.walk(_tree(p))
        if isinstance(node, ast.FunctionDef) and node.name == "phase_of"
    }
    assert defined == {"drplan/recovery/phase.py"}


def test_the_simulator_has_no_import_cycle() -> None:
    graph = _import_graph(top_level_only=True)
    sim = graph.subgraph(n for n in graph if n.startswith("drplan.sim"))
    cycles = list(nx.simple_cycles(sim))
    assert cycles == [], f"import cycles in drplan.sim: {cycles}"


def test_the_environment_is_read_only_by_the_settings_model_and_never_at_import_time() -> None:
    """``DRPLAN_*`` knobs are read once (drplan.settings); other reads are named exceptions, in functions."""
    allowed = {
        "drplan/settings.py",  # the model itself
        "drplan/vcenter/connect.py",  # a plan's `password: {env: NAME}` reference, resolved at connect
        "drplan/cli/run_cmds.py",  # Prefect's own console settings, set before Prefect is imported
        "drplan/run/hooks.py",  # the environment a shell hook runs in
    }
    offenders = []
    for path in _library_files():
        tree = _tree(path)
        for node in ast.walk(tree):
            read = isinstance(node, ast.Attribute) and ast.unparse(node) in ("os.environ", "os.getenv")
            if read and _rel(path) not in allowed:
                offenders.append(f"{_rel(path)}:{node.lineno}")
        for stmt in tree.body:  # module-level statements run at import
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if "os.environ" in ast.unparse(stmt) or "os.getenv" in ast.unparse(stmt):
                offenders.append(f"{_rel(path)}:{stmt.lineno} (at import time)")
    assert offenders == []


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


def test_every_module_the_architecture_page_names_exists() -> None:
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"\b((?:drplan|flows|tasks|tests)/[\w/]+\.py)\b", text))
    assert len(named) > 20, "the architecture page should walk through the modules"
    assert sorted(n for n in named if not (ROOT / n).exists()) == []


def test_the_readme_settings_table_is_the_settings_model() -> None:
    from drplan.settings import settings_table

    assert settings_table() in (ROOT / "README.md").read_text(), "regenerate the README's settings table"
