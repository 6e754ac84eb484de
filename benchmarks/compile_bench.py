"""Validate+compile time for synthetic plans of 1,000 and 10,000 VMs.

    python -m benchmarks.compile_bench [--sizes 1000 10000] [--repeat 3] [--json]

For each size: the plan YAML is generated (benchmarks.synth), parsed once with ruamel.yaml's
round-trip loader (the baseline: what merely reading the file costs, as ``load_plan`` does it),
then "validate+compile" is timed on the parsed document: the pydantic schema, the cross-reference
rules (drplan.validate) and the compiler (drplan.graph). Best of ``--repeat`` runs. Target:
10,000 VMs validate+compile in under 2 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from ruamel.yaml import YAML

from benchmarks.synth import Spec, synth_plan_yaml
from drplan.graph import compile_plan
from drplan.plan import Plan
from drplan.validate import check_plan


def _best(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def measure(n: int, *, repeat: int = 3, seed: int = 1) -> dict:
    text = synth_plan_yaml(Spec(vms=n, hooks=max(4, n // 500), seed=seed))
    parse_s, data = _best(lambda: YAML(typ="rt").load(text), 1)

    def validate_and_compile():
        plan = Plan.model_validate(data)
        problems = check_plan(plan)
        assert not problems, problems[:3]
        return compile_plan(plan)

    total_s, graph = _best(validate_and_compile, repeat)
    schema_s, plan = _best(lambda: Plan.model_validate(data), repeat)
    return {
        "vms": n,
        "units": sum(1 for u in graph.units.values() if u.kind != "hook"),
        "edges": graph.digraph.number_of_edges(),
        "yaml_lines": text.count("\n"),
        "parse_s": round(parse_s, 3),
        "validate_compile_s": round(total_s, 3),
        "schema_s": round(schema_s, 3),
        "ratio_to_parse": round(total_s / parse_s, 3),
        "generations": len(graph.generations),
        "estimated_rto_s": graph.estimated_rto,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [measure(n, repeat=args.repeat) for n in args.sizes]
    if args.json:
        meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "repeat": args.repeat}
        print(json.dumps({**meta, "results": rows}, indent=2))
        return
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, best of {args.repeat}")
    print(f"{'VMs':>7} {'units':>6} {'edges':>6} {'YAML lines':>10} {'parse (baseline)':>17} "
          f"{'validate+compile':>17} {'of which schema':>16} {'ratio':>6}")
    for r in rows:
        print(f"{r['vms']:>7} {r['units']:>6} {r['edges']:>6} {r['yaml_lines']:>10} {r['parse_s']:>16.3f}s "
              f"{r['validate_compile_s']:>16.3f}s {r['schema_s']:>15.3f}s {r['ratio_to_parse']:>6.2f}")


if __name__ == "__main__":
    main()
