"""The simulated estate in its own process, so it neither shares the orchestrator's GIL nor its memory.

    python -m benchmarks.simproc PLAN.yaml WORKLOAD.json [--speed 1.0]

Prints one JSON line with the simulator's environment (``DRPLAN_SIM_ENDPOINT``, ``DRPLAN_SIM_CA_FILE``...),
then answers commands read from stdin, one per line, each with one JSON line:

* ``counts``: ``{"counts": [[method, operation, n], ...]}``, the ARM requests served since the last reset
  (the simulator's own ``/drplan-sim/`` routes, the remote vCenter and clock, are not ARM: not counted;
  requests refused by ARM's throttling, ``estate.throttling``, as operation ``Throttled``);
* ``reset``: zero the counts;
* ``quit``: stop (also on end of input).
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.workload import estate_for
from drplan.plan.loader import load_plan
from drplan.sim import start_simulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan")
    parser.add_argument("workload", help="JSON with per-VM durations (benchmarks.workload.Workload.to_json)")
    parser.add_argument("--speed", type=float, default=1.0)
    args = parser.parse_args(argv)
    with open(args.workload, encoding="utf-8") as fh:
        workload = json.load(fh)
    estate = estate_for(
        load_plan(args.plan),
        workload["durations"],
        point_retention=workload.get("point_retention", 7200.0),
        provider=workload.get("provider", "classic"),
        throttling=bool(workload.get("throttling", False)),
    )
    with start_simulator(estate, speed=args.speed) as sim:
        print(json.dumps(sim.env()), flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "counts":
                counts = [[m, op, n] for (m, op), n in sorted(sim.request_counts.items())]
                print(json.dumps({"counts": counts}), flush=True)
            elif cmd == "reset":
                sim.reset_counts()
                print(json.dumps({"ok": True}), flush=True)
            elif cmd == "quit":
                break
            else:
                print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)


if __name__ == "__main__":
    main()
