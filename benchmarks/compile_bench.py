"""Load+validate+compile time for synthetic plans of 1,000 and 10,000 VMs.

    python -m benchmarks.compile_bench [--sizes 1000 10000] [--repeat 3] [--json]

For each size the plan YAML is generated (benchmarks.synth) and timed the way ``drplan validate`` /
``drplan plan`` handle it, best of ``--repeat`` runs:

- load: parsing the YAML into positioned dicts and lists (``drplan.plan.loader``, libyaml events);
- validate: the pydantic schema plus the cross-reference rules (drplan.plan.validate);
- compile: the compiler (drplan.plan.graph);
- total: ``load_and_compile`` of the plan file end to end (the three above, as every command and
  flow runs them).

Times are wall-clock; the total is also given as CPU time of this process, which other jobs
sharing the CPUs inflate less. Same-run baselines on the same text: ``yaml.load`` with PyYAML's C
loader (libyaml, no positions, no validation; timed with the garbage collector paused, as
``load_plan_text`` runs) and ``json.loads`` of the same plan as JSON. Targets: validate+compile of
10,000 VMs under 2 s on a 2-core machine, and load+validate+compile too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.synth import Spec, synth_plan_data, synth_plan_yaml
from drplan.plan.graph import compile_plan, load_and_compile
from drplan.plan.loader import _Locator, _parse_yaml, gc_paused
from drplan.plan.schema import Plan
from drplan.plan.validate import Source, check_plan


def _best(fn, repeat: int, cpu: list[float] | None = None) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs (and, into ``cpu``, the best CPU time of this process)."""
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    if cpu is not None:
        cpu.append(best_cpu)
    return best, result


def measure(n: int, *, repeat: int = 3, seed: int = 1) -> dict:
    spec = Spec(vms=n, hooks=max(4, n // 500), seed=seed)
    text = synth_plan_yaml(spec)
    json_text = json.dumps(synth_plan_data(spec))

    def load():
        with gc_paused():
            return _parse_yaml(text, "synth.yaml")

    load_s, data = _best(load, repeat)

    def validate():
        with gc_paused():
            plan = Plan.model_validate(data)
            problems = check_plan(plan, Source("synth.yaml", _Locator(data)))
        assert not problems, problems[:3]
        return plan

    validate_s, plan = _best(validate, repeat)

    def compile_():
        with gc_paused():
            return compile_plan(plan)

    compile_s, graph = _best(compile_, repeat)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synth.yaml"
        path.write_text(text, encoding="utf-8")
        total_cpu: list[float] = []
        total_s, _ = _best(lambda: load_and_compile(path), repeat, total_cpu)

    def yaml_load():
        with gc_paused():
            return yaml.load(text, Loader=yaml.CSafeLoader)

    yaml_s, _ = _best(yaml_load, repeat)
    json_s, _ = _best(lambda: json.loads(json_text), repeat)
    return {
        "vms": n,
        "units": sum(1 for u in graph.units.values() if u.kind != "hook"),
        "edges": graph.digraph.number_of_edges(),
        "yaml_lines": text.count("\n"),
        "load_s": round(load_s, 3),
        "validate_s": round(validate_s, 3),
        "compile_s": round(compile_s, 3),
        "validate_compile_s": round(validate_s + compile_s, 3),
        "total_s": round(total_s, 3),
        "total_cpu_s": round(total_cpu[0], 3),
        "yaml_load_c_s": round(yaml_s, 3),
        "json_loads_s": round(json_s, 3),
        "total_to_yaml_load": round(total_s / yaml_s, 2),
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
    print(
        f"{'VMs':>7} {'units':>6} {'edges':>6} {'lines':>7} {'load':>7} {'validate':>9} {'compile':>8} "
        f"{'val+comp':>9} {'total':>7} {'(CPU)':>7} | {'yaml.load C':>11} {'json.loads':>10} "
        f"{'total/yaml.load':>15}"
    )
    for r in rows:
        print(
            f"{r['vms']:>7} {r['units']:>6} {r['edges']:>6} {r['yaml_lines']:>7} {r['load_s']:>6.3f}s "
            f"{r['validate_s']:>8.3f}s {r['compile_s']:>7.3f}s {r['validate_compile_s']:>8.3f}s "
            f"{r['total_s']:>6.3f}s {r['total_cpu_s']:>6.3f}s | {r['yaml_load_c_s']:>10.3f}s "
            f"{r['json_loads_s']:>9.3f}s {r['total_to_yaml_load']:>15.2f}"
        )


if __name__ == "__main__":
    main()
