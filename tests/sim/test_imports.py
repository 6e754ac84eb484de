"""``drplan.sim`` has no import cycle: every import between its modules (top level, ``TYPE_CHECKING`` and
function-level alike) forms a DAG."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SIM = Path(__file__).resolve().parents[2] / "drplan" / "sim"


def _edges() -> dict[str, set[str]]:
    modules = {p.stem for p in SIM.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m in modules:
        for node in ast.walk(ast.parse((SIM / f"{m}.py").read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "drplan.sim":
                    targets = [a.name for a in node.names if a.name in modules]
                elif node.module.startswith("drplan.sim."):
                    targets = [node.module.split(".")[2]]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[2] for a in node.names if a.name.startswith("drplan.sim.")]
            graph[m].update(t for t in targets if t in modules and t != m)
    return graph


def test_no_import_cycle_between_simulator_modules():
    try:
        order = list(TopologicalSorter(_edges()).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle in drplan.sim: {' -> '.join(exc.args[1])}") from None
    assert "estate" in order
