"""Batched read of 1,000 VMs against vcsim, against a baseline measured in the same run.

    .venv/bin/python -m benchmarks.vcenter_bench [--vms 1000] [--repeat 15]

Baseline: one ``RetrieveContents`` of one property (``name``) of one VM: the cost of a bare round
trip. Also timed once: reading the same VMs one round trip each (what batching avoids). Results are
printed and written to ``benchmarks/results/vcenter.json``; the ratios matter, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyVmomi import vim, vmodl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the vcsim harness lives with the tests

from vcenter.vcsim_server import running_vcsim  # noqa: E402

PC = vmodl.query.PropertyCollector


def _time(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _one_property(content, vm) -> None:
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=vm, skip=False)],
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, all=False, pathSet=["name"])],
    )
    content.propertyCollector.RetrieveContents([spec])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vcenter.json")
    args = ap.parse_args(argv)

    with (
        tempfile.TemporaryDirectory(prefix="drplan-vcsim-bench-") as tmp,
        running_vcsim(Path(tmp), vms=args.vms) as sim,
        sim.site() as site,
    ):
        names = sim.vms[: args.vms]
        site.read_state(names)  # warm up (TLS session, pooled connection)
        before = site.calls.copy()
        batched = _time(lambda: site.read_state(names), args.repeat)
        calls_per_read = sum((site.calls - before).values()) / args.repeat

        content = site.connection.content
        vm = site.find_vm(names[0])
        baseline = _time(lambda: _one_property(content, vm), args.repeat)

        refs = [site.find_vm(n) for n in names]  # cached by the batched read: no extra round trips
        one_by_one = _time(lambda: [_one_property(content, r) for r in refs], 1)[0]

    result = {
        "vms": len(names),
        "repeat": args.repeat,
        "batched_read_median_s": statistics.median(batched),
        "soap_calls_per_batched_read": calls_per_read,
        "baseline_one_property_median_s": statistics.median(baseline),
        "ratio_batched_to_baseline": statistics.median(batched) / statistics.median(baseline),
        "one_round_trip_per_vm_s": one_by_one,
        "ratio_one_by_one_to_batched": one_by_one / statistics.median(batched),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"vCenter (vcsim): batched read of {result['vms']} VMs: "
        f"{result['batched_read_median_s'] * 1e3:.1f} ms "
        f"median ({result['soap_calls_per_batched_read']:.0f} SOAP calls) = "
        f"{result['ratio_batched_to_baseline']:.1f}x one single-property RetrieveContents "
        f"({result['baseline_one_property_median_s'] * 1e3:.2f} ms); one round trip per VM: "
        f"{result['one_round_trip_per_vm_s'] * 1e3:.0f} ms "
        f"({result['ratio_one_by_one_to_batched']:.1f}x the batched read)"
    )
    return result


if __name__ == "__main__":
    main()
