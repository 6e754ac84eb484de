"""Makespan benchmark: drplan's graph schedule against wave barriers and a sequential script.

    python -m benchmarks run [--scales 10,100,1000] [--seed 1] [--schedules graph,wave,sequential]
                             [--sequential-max 100] [--out DIR] [--time-scale 1.0]
    DRPLAN_BENCH_PG=1 python -m benchmarks run ...    # also 1,000 VMs on a Prefect server on PostgreSQL

For each scale: one seeded synthetic plan (:mod:`benchmarks.workload`), transformed per schedule
(:mod:`benchmarks.schedules`), each run once by the real ``failback`` flow (failback → verify → commit gate →
commit → reprotect) in a fresh orchestrator process (:mod:`benchmarks.orchestrate`) against a fresh simulator
process (:mod:`benchmarks.simproc`) serving the same estate at speed 1.0. Prints a table and writes
``results.json`` and ``table.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.schedules import SCHEDULES, bound, dependencies, transform
from benchmarks.servers import REPO, PrefectServer, SimProcess, child_env, postgres
from benchmarks.workload import Timing, build_workload, timing_dict

POLL_OPS = ("ReplicationJobs_Get",)


SIM_REMOTE = "DrplanSim"  # the simulator's own /drplan-sim/ routes (remote vCenter and clock): not ARM
THROTTLED = "Throttled"  # requests ARM's token buckets refused with 429 (estate.throttling)
PROVIDERS = ("modernized", "classic")


def classify(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    """ARM requests split into reads (GET), writes (POST/PUT/DELETE/PATCH; ``deletes`` of them apart) and
    polls (job/LRO status GETs, part of the reads); requests answered 429 by ARM's throttling are counted
    apart (``throttled_429``, and per kind), as are the simulator's remote vCenter/clock calls
    (``sim_remote``)."""
    arm = {k: n for k, n in counts.items() if k[1] not in (SIM_REMOTE, THROTTLED)}
    reads = sum(n for (m, _op), n in arm.items() if m == "GET")
    writes = sum(n for (m, _op), n in arm.items() if m != "GET")
    deletes = sum(n for (m, _op), n in arm.items() if m == "DELETE")
    polls = sum(
        n for (m, op), n in arm.items() if m == "GET" and (op in POLL_OPS or op.endswith("_OperationResults"))
    )
    remote = sum(n for k, n in counts.items() if k[1] == SIM_REMOTE)
    refused = {m: n for (m, op), n in counts.items() if op == THROTTLED}
    return {
        "requests": reads + writes,
        "reads": reads,
        "writes": writes,
        "deletes": deletes,
        "polls": polls,
        "throttled_429": sum(refused.values()),
        "throttled_reads": refused.get("GET", 0),
        "throttled_writes": sum(n for m, n in refused.items() if m not in ("GET", "DELETE")),
        "throttled_deletes": refused.get("DELETE", 0),
        "sim_remote": remote,
    }


def budget_bound(arm: dict[str, int]) -> dict[str, float]:
    """The request-budget bound: for each of ARM's per-subscription buckets (ARM's figures, as the estate
    enforces them), the time its refill needs to serve the run's requests of that kind beyond its burst,
    ``max(0, requests - burst) / per_second``; the bound is the largest (the buckets refill in parallel)."""
    from drplan.sim.estate import Throttling

    limits = Throttling()
    need = {
        "reads": arm["reads"],
        "writes": arm["writes"] - arm.get("deletes", 0),
        "deletes": arm.get("deletes", 0),
    }
    out = {
        f"{kind}_s": round(max(0, n - getattr(limits, kind).burst) / getattr(limits, kind).per_second, 2)
        for kind, n in need.items()
    }
    out["budget_s"] = max(out.values())
    return out


def run_one(
    plan: Path, workload_json: Path, *, workdir: Path, label: str, env_extra: dict[str, str], timeout: float
) -> dict:
    """One flow run: a fresh simulator process, a fresh orchestrator process; the measured figures."""
    sim = SimProcess(plan, workload_json, log=workdir / f"{label}.sim.log")
    try:
        sim.reset()
        out = workdir / f"{label}.json"
        env = child_env(**sim.env, **env_extra)
        with open(workdir / f"{label}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.orchestrate", str(plan), str(out)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # the orchestrator and its ephemeral API server are one process group: stop them together
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                counts = sim.counts()
                return {
                    "error": f"did not finish within {timeout:.0f} s (makespan > {timeout:.0f} s)",
                    "timeout_s": timeout,
                    "arm": classify(counts),
                }
        counts = sim.counts()
    finally:
        sim.stop()
    if returncode != 0 or not out.exists():
        return {"error": f"orchestrator exited {returncode}; see {workdir / (label + '.log')}"}
    result = json.loads(out.read_text())
    result["arm"] = classify(counts)
    result["arm_by_operation"] = {f"{m} {op}": n for (m, op), n in sorted(counts.items())}
    return result


Engine = tuple[str, dict[str, str], tuple[str, ...]]  # name, environment, schedules


def bench_scale(n: int, args, workdir: Path, engines: list[Engine]) -> dict:
    from drplan.plan.graph import load_and_compile

    timing = Timing().scaled(args.time_scale)
    wl = build_workload(n, args.seed, timing)
    scale_dir = workdir / f"vms-{n}"
    scale_dir.mkdir(parents=True, exist_ok=True)
    base = wl.write_plan(scale_dir / "plan-graph.yaml")
    workload_json = scale_dir / "workload.json"
    workload_json.write_text(json.dumps(wl.to_json()), encoding="utf-8")
    _plan, graph = load_and_compile(base)
    units = sum(1 for u in graph.units.values() if u.kind != "hook")
    physical = bound(graph, wl.durations, wl.hook_waits)
    row: dict = {
        "vms": n,
        "units": units,
        "hooks": len(graph.units) - units,
        "generations": len(graph.generations),
        "edges": graph.digraph.number_of_edges(),
        "bound_s": round(physical, 2),
        "grid_bound_s": round(bound(graph, wl.durations, wl.hook_waits, grid=True), 2),
        "runs": [],
    }
    plans = {}
    for schedule in SCHEDULES:
        deps = dependencies(graph, schedule)
        data = transform(wl.data, graph, schedule)
        plans[schedule] = wl.write_plan(scale_dir / f"plan-{schedule}.yaml", data)
        row[f"{schedule}_bound_s"] = round(bound(graph, wl.durations, wl.hook_waits, deps=deps), 2)
        row[f"{schedule}_grid_bound_s"] = round(
            bound(graph, wl.durations, wl.hook_waits, deps=deps, grid=True), 2
        )
        row[f"{schedule}_graph_phase_bound_s"] = round(
            bound(graph, wl.durations, wl.hook_waits, deps=deps, post=False), 2
        )
    for engine, env_extra, schedules in engines:
        for provider, schedule in ((p, s) for p in args.providers for s in schedules):
            if schedule == "sequential" and n > args.sequential_max:
                continue
            if schedule == "wave" and n > args.wave_max:
                continue
            label = f"{engine}-{provider}-{schedule}"
            wl_json = scale_dir / f"workload-{provider}.json"
            wl_json.write_text(
                json.dumps({**wl.to_json(), "provider": provider, "throttling": args.throttling}),
                encoding="utf-8",
            )
            timeout = args.run_timeout or max(600.0, 4 * row[f"{schedule}_bound_s"] + 300, 1.5 * n)
            print(
                f"[{time.strftime('%H:%M:%S')}] {n} VMs, {engine}, {provider}, {schedule} "
                f"(critical path {row[f'{schedule}_bound_s']:.0f} s) ...",
                flush=True,
            )
            load = os.getloadavg()[0]
            result = run_one(
                plans[schedule], wl_json, workdir=scale_dir, label=label, env_extra=env_extra, timeout=timeout
            )
            result.update(
                engine=engine,
                provider=provider,
                schedule=schedule,
                throttling=args.throttling,
                load_before=round(load, 2),
            )
            if "makespan_s" in result:
                measure(result, row, n, physical)
            else:
                print(f"    {result.get('error')}", flush=True)
            row["runs"].append(result)
    return row


def measure(result: dict, row: dict, n: int, physical: float) -> None:
    """The run's ratios: against the larger of the critical path and the request-budget bound (both kept),
    against its schedule's own critical path and poll grid; ARM requests per VM. Prints a summary line."""
    schedule = result["schedule"]
    result.update(budget_bound(result["arm"]))
    result["critical_path_s"] = physical
    result["bound_s"] = max(physical, result["budget_s"])
    result["ratio"] = round(result["makespan_s"] / result["bound_s"], 3)
    result["cp_ratio"] = round(result["makespan_s"] / physical, 3)
    result["own_ratio"] = round(result["makespan_s"] / row[f"{schedule}_bound_s"], 3)
    result["grid_ratio"] = round(result["makespan_s"] / row[f"{schedule}_grid_bound_s"], 3)
    result["arm_per_vm"] = {k: round(v / n, 2) for k, v in result["arm"].items()}
    a = result["arm_per_vm"]
    print(
        f"    makespan {result['makespan_s']:.1f} s, x{result['ratio']:.2f} of the bound "
        f"{result['bound_s']:.1f} s (critical path {physical:.1f} s, "
        f"request budget {result['budget_s']:.1f} s); "
        f"{a['requests']:.1f} ARM req/VM ({a['reads']:.1f} reads / {a['writes']:.1f} writes / "
        f"{a['polls']:.1f} polls), {result['arm']['throttled_429']} x 429, "
        f"{result.get('units_failed_throttled', '?')} units failed by throttling; {result['outcome']}, "
        f"CPU {result['cpu_s']:.0f} s, visible {result['visible']}/{result['task_runs']} "
        f"after {result['visible_after_s']} s, RSS {result['rss_mb']} MB",
        flush=True,
    )


def _fill_phase_bounds(report: dict) -> None:
    """Add graph-phase bounds missing from an older results.json (recomputed from the seeded workload)."""
    from drplan.plan.graph import compile_plan
    from drplan.plan.schema import Plan

    factor = report.get("timing", {}).get("failback", [2.0])[0] / Timing().failback[0]
    for row in report["scales"]:
        if all(f"{s}_graph_phase_bound_s" in row for s in SCHEDULES):
            continue
        wl = build_workload(row["vms"], report["seed"], Timing().scaled(factor))
        graph = compile_plan(Plan.model_validate(wl.data))
        for s in SCHEDULES:
            deps = dependencies(graph, s)
            row[f"{s}_graph_phase_bound_s"] = round(
                bound(graph, wl.durations, wl.hook_waits, deps=deps, post=False), 2
            )


def _fmt_run(r: dict | None, bound_s: float) -> str:
    if r is None:
        return f"not run (critical path {bound_s:,.0f} s)"
    if "makespan_s" not in r:
        return f"> {r['timeout_s']:,.0f} s (stopped)" if "timeout_s" in r else "error"
    if r.get("flow_state", "COMPLETED") != "COMPLETED":  # a ratio of a flow that failed early means nothing
        return f"flow {r['flow_state'].lower()} after {r['makespan_s']:,.1f} s"
    return f"{r['makespan_s']:,.1f} s (×{r['ratio']:.2f})"


def _ratio_cell(r: dict) -> str:
    state = r.get("flow_state", "COMPLETED")
    return f"{r['ratio']:.2f}" if state == "COMPLETED" else f"– (flow {state.lower()})"


def _bound_cell(r: dict) -> str:
    """``bound (critical path / request budget)``: older results have no budget."""
    if "budget_s" not in r:
        return "–"
    return f"{r['bound_s']:.1f} ({r['critical_path_s']:.1f} / {r['budget_s']:.1f})"


def markdown(report: dict) -> str:
    """The README tables: schedules side by side; then bounds, requests, 429s, memory, visibility per run."""
    lines = [
        "| VMs | units | provider | critical path (s) | graph | wave barriers | sequential | graph vs wave "
        "| graph vs sequential |",
        "|---:|---:|---|---:|---|---|---|---:|---:|",
    ]
    for row in report["scales"]:
        local = {
            (r.get("provider", "classic"), r["schedule"]): r for r in row["runs"] if r["engine"] == "local"
        }
        for provider in dict.fromkeys(p for p, _s in local):
            cells = [_fmt_run(local.get((provider, s)), row[f"{s}_bound_s"]) for s in SCHEDULES]
            g = local.get((provider, "graph"), {}).get("makespan_s")

            def speedup(s: str, g=g, provider=provider, local=local) -> str:
                other = local.get((provider, s), {}).get("makespan_s")
                return f"{other / g:.2f}×" if g and other else "–"

            lines.append(
                f"| {row['vms']:,} | {row['units']:,} | {provider} | {row['bound_s']:.1f} | "
                + " | ".join(cells)
                + f" | {speedup('wave')} | {speedup('sequential')} |"
            )
    lines += [
        "",
        "| VMs | engine | provider | schedule | makespan (s) | bound (s) (critical path / request budget) "
        "| ×bound | ×own critical path | ×poll-grid bound | ARM req/VM (reads / writes / polls) | 429s "
        "| units failed (by throttling) | CPU s/VM | task runs | visible in API (after flow end) "
        "| orchestrator RSS (MB) | server RSS (MB) | threads |",
        "|---:|---|---|---|---:|---|---:|---:|---:|---|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in report["scales"]:
        for r in row["runs"]:
            provider = r.get("provider", "classic")
            if "makespan_s" not in r:
                err = r.get("error", "error")
                if "arm" in r:  # a run stopped at its timeout: what it had sent by then
                    a = r["arm"]
                    err += (
                        f"; by then {a['reads']:,} reads / {a['writes']:,} writes / {a['polls']:,} polls, "
                        f"{a.get('throttled_429', 0):,} × 429"
                    )
                lines.append(
                    f"| {row['vms']:,} | {r['engine']} | {provider} | {r['schedule']} | {err} |" + " |" * 13
                )
                continue
            a = r["arm_per_vm"]
            seen = f"{r['visible']:,}/{r['task_runs']:,}"
            after = r["visible_after_s"]
            vis = f"{seen} in {after} s" if after is not None else f"**{seen}** (timeout)"
            failed = f"{r['units_failed']} ({r['units_failed_throttled']})" if "units_failed" in r else "–"
            lines.append(
                f"| {row['vms']:,} | {r['engine']} | {provider} | {r['schedule']} | {r['makespan_s']:.1f} "
                f"| {_bound_cell(r)} | {_ratio_cell(r)} | {r['own_ratio']:.2f} | {r['grid_ratio']:.2f} "
                f"| {a['requests']:.1f} ({a['reads']:.1f} / {a['writes']:.1f} / {a['polls']:.1f}) "
                f"| {r['arm'].get('throttled_429', '–')} | {failed} | {r['cpu_s'] / row['vms']:.3f} "
                f"| {r['task_runs']:,} | {vis} "
                f"| {r['rss_mb']:.0f} | {r['server_rss_mb'] or '–'} | {r['peak_threads']} |"
            )
    lines += [
        "",
        "Where the time went (s): before the first failback (preflight, recovery points), the graph phase "
        "(first failback to last verification; its critical path in brackets), the post phase (gate, commit, "
        "reprotect; critical path in brackets) and the tail (report, artifacts).",
        "",
        "| VMs | engine | provider | schedule | pre | graph phase [critical path] | post [critical path] "
        "| tail |",
        "|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for row in report["scales"]:
        for r in row["runs"]:
            if r.get("graph_phase_s") is None:
                continue
            s = r["schedule"]
            gb = row.get(f"{s}_graph_phase_bound_s")
            gbs = "–" if gb is None else f"{gb:.1f}"
            pbs = "–" if gb is None else f"{row[f'{s}_bound_s'] - gb:.1f}"
            lines.append(
                f"| {row['vms']:,} | {r['engine']} | {r.get('provider', 'classic')} | {s} | {r['pre_s']:.1f} "
                f"| {r['graph_phase_s']:.1f} [{gbs}] | {r['post_s']:.1f} [{pbs}] | {r['tail_s']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run", description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="10,100,1000", help="comma-separated VM counts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--schedules", default=",".join(SCHEDULES))
    parser.add_argument(
        "--sequential-max",
        type=int,
        default=100,
        help="skip the sequential schedule above this many VMs (its bound is still shown)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply every step duration (the smoke test compresses the workload)",
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        default=None,
        help="DRPLAN_MAX_WORKERS for the flow's task runner (default: the flow's own)",
    )
    parser.add_argument(
        "--pg",
        action="store_true",
        default=os.environ.get("DRPLAN_BENCH_PG") == "1",
        help="also run on a Prefect server backed by PostgreSQL (env DRPLAN_BENCH_PG=1)",
    )
    parser.add_argument(
        "--wave-max",
        type=int,
        default=10**9,
        help="skip the wave-barrier schedule above this many VMs (its bound is still shown)",
    )
    parser.add_argument("--pg-scales", default="1000")
    parser.add_argument("--pg-schedules", default="graph")
    parser.add_argument("--out", type=Path, default=None, help="directory for results.json and table.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (plans, logs)")
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=None,
        help="seconds before a flow run is stopped (default: from its bound and VM count)",
    )
    parser.add_argument(
        "--provider",
        dest="providers",
        default="classic",
        type=lambda v: tuple(p for p in v.split(",") if p),
        help="ASR stack(s) of the estate, comma-separated: modernized, classic (default: classic)",
    )
    parser.add_argument(
        "--no-throttling",
        dest="throttling",
        action="store_false",
        help="do not enforce ARM's per-subscription token buckets in the simulated estate (on by default: "
        "reads 250 burst / 25 per s, writes 200 / 10, deletes 200 / 10)",
    )
    parser.add_argument("--render", type=Path, default=None, help="only print the tables of a results.json")
    args = parser.parse_args(argv)
    unknown = set(args.providers) - set(PROVIDERS)
    if unknown or not args.providers:
        parser.error(f"--provider: one or more of {', '.join(PROVIDERS)} (got {', '.join(sorted(unknown))})")
    if args.render:
        report = json.loads(args.render.read_text())
        _fill_phase_bounds(report)
        print(markdown(report))
        return report

    scales = [int(s) for s in args.scales.split(",") if s]
    schedules = tuple(s for s in args.schedules.split(",") if s)
    workdir = Path(tempfile.mkdtemp(prefix="drplan-bench-"))
    home = workdir / "prefect-home"
    home.mkdir()
    base_env = {"PREFECT_HOME": str(home)}
    if args.max_workers:
        base_env["DRPLAN_MAX_WORKERS"] = str(args.max_workers)
    report = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "providers": list(args.providers),
        "throttling": args.throttling,
        "timing": timing_dict(Timing().scaled(args.time_scale)),
        "workdir": str(workdir),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "scales": [],
    }
    local_env = dict(base_env)  # no PREFECT_API_URL: Prefect's default local (ephemeral) engine

    def save() -> None:
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "results.json").write_text(json.dumps(report, indent=2), encoding="utf-8")

    for n in scales:
        engines = [("local", local_env, schedules)]
        report["scales"].append(bench_scale(n, args, workdir, engines))
        save()
    if args.pg:
        with postgres(workdir) as db_url:
            pg_home = workdir / "pg-prefect-home"
            pg_home.mkdir()
            server = PrefectServer(db_url, pg_home, log=workdir / "prefect-server.log")
            try:
                pg_env = {**base_env, "PREFECT_HOME": str(pg_home), "PREFECT_API_URL": server.api_url}
                pg_sched = tuple(s for s in args.pg_schedules.split(",") if s)
                for n in (int(s) for s in args.pg_scales.split(",") if s):
                    row = bench_scale(n, args, workdir / "pg", [("postgres", pg_env, pg_sched)])
                    for r in row["runs"]:
                        r["server_rss_mb"] = server.peak_rss_mb()
                    existing = next((s for s in report["scales"] if s["vms"] == n), None)
                    if existing is not None:
                        existing["runs"] += row["runs"]
                    else:
                        report["scales"].append(row)
                    save()
            finally:
                server.stop()
    table = markdown(report)
    print()
    print(table)
    save()
    if args.out:
        (args.out / "table.md").write_text(table, encoding="utf-8")
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
