"""`drplan sim start --estate` time-to-ready on a large modernized estate (issue 13: under 2 s at 1,000 VMs).

    .venv/bin/python -m benchmarks.sim_start                  # 1,000 VMs, best of 3
    .venv/bin/python -m benchmarks.sim_start --vms 1000 5000 --repeat 5 --json

The estate comes from a seeded synthetic plan (``benchmarks/synth.py``) through
``Estate.from_plan(..., provider="modernized")`` (appliances filled to 60 disks each), written as YAML.
Each run starts ``drplan sim start --estate FILE`` in a fresh process and measures:

- **ready**: what the command itself prints (``drplan simulator ready in X s``: from reading the estate
  file to the HTTPS endpoint listening);
- **process**: wall clock from spawning the process to the ``Press Ctrl-C`` line (adds interpreter start
  and imports);
- **first list**: then one ``ReplicationProtectedItems_List`` through the real SDK, all pages, as a client
  would right after start.

Baseline in the same run: the same estate generated classic, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.synth import Spec, synth_plan

DRPLAN = [sys.executable, "-c", "from drplan.cli import main; main()"]


def write_estate(vms: int, provider: str, directory: Path) -> Path:
    from drplan.observed import Phase
    from drplan.sim import Estate

    plan = synth_plan(Spec(vms=vms, seed=1))
    estate = Estate.from_plan(plan, provider=provider, phase=Phase.failed_over_to_azure)  # type: ignore[arg-type]
    path = directory / f"estate-{provider}-{vms}.yaml"
    path.write_text(estate.to_yaml(), encoding="utf-8")
    return path


def one_run(path: Path) -> dict[str, float]:
    from azure.core.credentials import AccessToken
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*DRPLAN, "sim", "start", "--estate", str(path), "--speed", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        process = time.perf_counter() - t0
        ready = float(re.search(r"ready in ([0-9.]+)s", "".join(lines)).group(1))  # type: ignore[union-attr]
        env = dict(ln.strip().removeprefix("export ").split("=", 1) for ln in lines if "export " in ln)

        class Token:
            def get_token(self, *scopes, **kw):
                return AccessToken(env["DRPLAN_SIM_TOKEN"], int(time.time()) + 3600)

        client = SiteRecoveryManagementClient(
            Token(),
            env["DRPLAN_SIM_SUBSCRIPTION_ID"],
            base_url=env["DRPLAN_SIM_ENDPOINT"],
            connection_verify=env["DRPLAN_SIM_CA_FILE"],
        )
        t1 = time.perf_counter()
        n = sum(
            1
            for _ in client.replication_protected_items.list(
                env["DRPLAN_SIM_RESOURCE_GROUP"], env["DRPLAN_SIM_VAULT"]
            )
        )
        first_list = time.perf_counter() - t1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    return {"ready": ready, "process": process, "first_list": first_list, "items": n}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, nargs="+", default=[1000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="drplan-sim-bench-") as tmp:
        for vms in args.vms:
            for provider in ("modernized", "classic"):
                path = write_estate(vms, provider, Path(tmp))
                runs = [one_run(path) for _ in range(args.repeat)]
                row = {
                    "vms": vms,
                    "provider": provider,
                    "estate_kb": round(path.stat().st_size / 1024),
                    **{
                        k: {"best": min(r[k] for r in runs), "median": statistics.median(r[k] for r in runs)}
                        for k in ("ready", "process", "first_list")
                    },
                    "items": runs[0]["items"],
                }
                results.append(row)
                if not args.json:
                    print(
                        f"{vms:>6} VMs {provider:<10} estate {row['estate_kb']:>5} KB  "
                        f"ready {row['ready']['best']:.2f}s (median {row['ready']['median']:.2f})  "
                        f"process {row['process']['best']:.2f}s (median {row['process']['median']:.2f})  "
                        f"first list {row['first_list']['best']:.2f}s ({row['items']} items)"
                    )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
