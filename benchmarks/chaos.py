"""Chaos: kill -9 of the orchestrator, transient ASR faults and two runs at once, on a seeded synthetic plan.

    python -m benchmarks chaos [--vms 50] [--kills 20] [--fault-rates 0.1,0.4] [--seed 1] [--json OUT]

One invocation, against an external simulator (``drplan sim start`` in its own process, one per attempt,
audit log to a file) and one ``prefect server start`` (SQLite) that every orchestrator reports to:

* **clean**: one failback of the plan with no fault (the baseline for the slowdown and the kill moments);
* **kills**: N attempts on a fresh estate each: ``drplan failback`` is killed with SIGKILL (its whole process
  group) at a seeded random moment within the clean run's duration, then run again until it exits 0 (at most
  ``--max-reruns``). From the simulator's audit log: whether the plan got done (every VM failed back,
  committed and reprotected), duplicate failovers (accepted ``unplannedFailover`` beyond one per VM), commits
  before verification (a ``failoverCommit`` accepted before the VM's failback job ended plus its boot time:
  before it could have been verified), groups at mixed points (members failed back to different recovery
  point times, or some members not at all);
* **faults**: one run per rate with that share of every ARM request answered 429/500/503 (a third each,
  seeded): completed or not, VMs done, and wall time against the clean run;
* **two runs at once**: while a run is failing back, a renamed copy of the plan (another file, another
  ``name:``) and the same plan from another ``PREFECT_HOME`` (with, then also without, this host's claims:
  as if from another host) against the same server: refused or not, and whether anything was written twice.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

from benchmarks.servers import REPO, PrefectServer, child_env, stop_process
from benchmarks.workload import Timing, Workload, build_workload, estate_for

BIN = Path(sys.executable).parent


class Sim:
    """``drplan sim start`` for one attempt: its environment and its audit log."""

    def __init__(self, estate_yaml: Path, audit: Path, *, speed: float, log: Path):
        self.audit = audit
        self.token = secrets.token_urlsafe(16)
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        cmd = [str(BIN / "drplan"), "sim", "start", "--estate", str(estate_yaml), "--speed", f"{speed:g}"]
        cmd += ["--audit", str(audit), "--token", self.token]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=REPO, env=child_env()
        )
        self.env: dict[str, str] = {}
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.strip().startswith("export "):
                key, _, value = line.strip().removeprefix("export ").partition("=")
                self.env[key] = value
            if line.startswith("Press Ctrl-C"):
                break
        if "DRPLAN_SIM_ENDPOINT" not in self.env:
            self.stop()
            raise RuntimeError(f"the simulator did not start (see {log})")

    def records(self) -> list[dict]:
        return [json.loads(ln) for ln in self.audit.read_text(encoding="utf-8").splitlines() if ln.strip()]

    def stop(self) -> None:
        stop_process(self.proc, grace=5)
        self._log.close()


class Bench:
    """The shared pieces of one invocation: the workload, its plan file, the Prefect server, the run env."""

    def __init__(self, workdir: Path, workload: Workload, *, speed: float, api_url: str):
        self.workdir, self.workload, self.speed, self.api_url = workdir, workload, speed, api_url
        self.plan = workload.write_plan(workdir / "plan.yaml")
        self.home = workdir / "prefect-home"
        self.locks = workdir / "locks"
        self.n = 0

    def sim(self, label: str, fault_rate: float = 0.0, seed: int = 0, *, min_failback: float = 0.0) -> Sim:
        """A fresh estate for one scenario (``min_failback``: no failback of the first units, those without
        dependencies, shorter than that, in real seconds)."""
        from drplan.plan.loader import load_plan
        from drplan.sim.estate import Faults

        wl = self.workload
        first = first_layer(wl.data) if min_failback else set()
        durations = {
            vm: {**d, "failback": max(d["failback"], min_failback)} if vm in first else d
            for vm, d in wl.durations.items()
        }
        estate = estate_for(load_plan(self.plan), durations, point_retention=wl.point_retention)
        third = fault_rate / 3
        estate.faults = Faults(seed=seed, rate_429=third, rate_500=third, rate_503=third)
        path = self.workdir / f"{label}.estate.yaml"
        path.write_text(estate.to_yaml(), encoding="utf-8")
        return Sim(
            path,
            self.workdir / f"{label}.audit.jsonl",
            speed=self.speed,
            log=self.workdir / f"{label}.sim.log",
        )

    def start(
        self, sim: Sim, plan: Path | None = None, *, home: Path | None = None, locks: Path | None = None
    ):
        """``drplan failback PLAN`` against ``sim``, reporting to the server: (process, log path, t0)."""
        self.n += 1
        log = self.workdir / f"run-{self.n:03d}.log"
        env = child_env(
            **sim.env,
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(home or self.home),
            DRPLAN_LOCK_DIR=str(locks or self.locks),
            DRPLAN_RECORD_WAIT_SECONDS="0",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(BIN / "drplan"), "failback", str(plan or self.plan), "--commit", "after-verification"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
                start_new_session=True,  # the orchestrator and its hooks: one process group
            )
        return proc, log, time.monotonic()

    def run(self, sim: Sim, plan: Path | None = None, *, timeout: float = 900.0, **kw) -> dict:
        proc, log, t0 = self.start(sim, plan, **kw)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            rc = None
        return {"rc": rc, "wall_s": round(time.monotonic() - t0, 2), "log": str(log)}


def first_layer(data: dict) -> set[str]:
    """The VMs of the units that depend on nothing (standalone VMs, or members of such groups)."""
    grouped = {m: g for g in data["replication_groups"] for m in g["members"]}
    return {v["name"] for v in data["vms"] if not grouped.get(v["name"], v).get("depends_on")}


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# -- what the audit log says -------------------------------------------------------------------------------
def _t(rec: dict) -> datetime:
    return datetime.fromisoformat(rec["time"].replace("Z", "+00:00"))


def analyse(records: list[dict], workload: Workload) -> dict:
    """Done or not, duplicate failovers, commits before verification, groups at mixed points."""
    vms = [v["name"] for v in workload.data["vms"]]
    accepted: dict[str, list[dict]] = defaultdict(list)  # operation -> accepted request records, per VM
    points: dict[str, list[str]] = defaultdict(list)  # vm -> recovery point times it was failed back to
    done: dict[str, dict[str, datetime]] = defaultdict(dict)  # vm -> operation -> first successful job end
    refused = Counter()
    for rec in records:
        if rec.get("event") == "request":
            if rec.get("outcome") == "refused":
                refused[rec.get("code") or "?"] += 1
            if rec.get("outcome") != "accepted":
                continue
            targets = [rec["vm"]] if rec.get("vm") else list(rec.get("vms") or [])
            for vm in targets:
                accepted[rec["operation"]].append({**rec, "vm": vm})
            if rec["operation"] == "unplannedFailover":
                if rec.get("vm"):
                    points[rec["vm"]].append(rec.get("recovery_point_time", "?"))
                for vm, p in (rec.get("recovery_points") or {}).items():
                    points[vm].append(p.get("time", "?"))
        elif rec.get("event") == "job" and rec.get("outcome") == "succeeded":
            for vm in rec.get("vms") or [rec.get("vm")]:
                done[vm].setdefault(rec["operation"], _t(rec))
    failovers = Counter(r["vm"] for r in accepted["unplannedFailover"])
    boot = {vm: d["boot"] for vm, d in workload.durations.items()}
    early = 0
    for rec in accepted["failoverCommit"]:
        ended = done[rec["vm"]].get("unplannedFailover")
        if ended is None or (_t(rec) - ended).total_seconds() < boot.get(rec["vm"], 0.0) - 0.01:
            early += 1
    mixed = 0
    for group in workload.data["replication_groups"]:
        seen = {m: points.get(m, [])[-1:] for m in group["members"]}
        times = {tuple(p) for p in seen.values()}
        if len(times) > 1 or (times and () in times and len(times) > 1):
            mixed += 1
    complete = all(
        {"unplannedFailover", "failoverCommit", "reProtect"} <= set(done[vm])
        or {"unplannedFailover", "failoverCommit"} <= set(done[vm])
        and any(r["vm"] == vm for r in accepted["reProtect"])
        for vm in vms
    )
    vms_done = sum(1 for vm in vms if {"unplannedFailover", "failoverCommit"} <= set(done[vm]))
    return {
        "done": complete,
        "vms_done": vms_done,
        "duplicate_failovers": sum(n - 1 for n in failovers.values() if n > 1),
        "commits_before_verification": early,
        "groups_mixed": mixed,
        "refused": dict(refused),
    }


# -- the scenarios ---------------------------------------------------------------------------------------
def clean_run(bench: Bench) -> dict:
    sim = bench.sim("clean")
    try:
        r = bench.run(sim)
        r.update(analyse(sim.records(), bench.workload))
    finally:
        sim.stop()
    return r


def kill_attempt(bench: Bench, i: int, at: float, *, max_reruns: int) -> dict:
    sim = bench.sim(f"kill-{i:02d}")
    try:
        proc, log, t0 = bench.start(sim)
        try:
            proc.wait(timeout=at)
            killed = False  # it finished before the kill moment
        except subprocess.TimeoutExpired:
            kill_group(proc)
            killed = True
        runs = [{"rc": proc.returncode, "killed_at_s": round(at, 2) if killed else None, "log": str(log)}]
        while runs[-1]["rc"] != 0 and len(runs) <= max_reruns:
            runs.append(bench.run(sim))
        result = analyse(sim.records(), bench.workload)
    finally:
        sim.stop()
    return {
        "attempt": i,
        "kill_at_s": round(at, 2),
        "killed": killed,
        "runs": len(runs),
        "completed": runs[-1]["rc"] == 0 and result["done"],
        **result,
        "logs": [r["log"] for r in runs],
    }


def fault_run(bench: Bench, rate: float, seed: int, clean_s: float) -> dict:
    sim = bench.sim(f"faults-{int(rate * 100)}", fault_rate=rate, seed=seed)
    try:
        r = bench.run(sim)
        r.update(analyse(sim.records(), bench.workload))
        faults = sum(1 for rec in sim.records() if rec.get("outcome") in ("throttled", "fault"))
    finally:
        sim.stop()
    return {
        "rate": rate,
        "completed": r["rc"] == 0 and r["done"],
        "vms_done": r["vms_done"],
        "wall_s": r["wall_s"],
        "slowdown": round(r["wall_s"] / clean_s, 2) if clean_s else None,
        "faulted_writes": faults,
        "duplicate_failovers": r["duplicate_failovers"],
        "commits_before_verification": r["commits_before_verification"],
        "groups_mixed": r["groups_mixed"],
        "log": r["log"],
    }


REFUSALS = (
    ("VM claim on the Prefect server", "is already claimed on the Prefect server"),
    ("VM claim on this host", "is already claimed on this host"),
    ("plan lock on this host", "is already being run on this host"),
    ("plan's active run in the API", "already has an active run"),
)


def refusal(output: str) -> tuple[str | None, str]:
    """Which guard refused a run (from its output, however the console wrapped it) and its sentence."""
    text = " ".join(output.split())
    for layer, needle in REFUSALS:
        at = text.find(needle)
        if at >= 0:
            vm = text.rfind("VM ", max(0, at - 300), at)
            start = vm if vm >= 0 else max(text.rfind("plan ", 0, at), 0)
            return layer, text[start : at + 300].split("; wait")[0]
    return None, ""


def concurrent_runs(bench: Bench) -> dict:
    """A run in flight (its first units' failbacks take 20 s at least); meanwhile, all at once: a renamed
    copy, the same plan from another PREFECT_HOME, then also with another lock dir (as if from another
    host), and both."""
    # two renamed copies: run at once under one name, each could meet the other's brief active run in the API
    # (refused there, before reaching the VM claims this case is about)
    copy, copy2 = bench.workdir / "renamed-copy.yaml", bench.workdir / "renamed-copy-2.yaml"
    bench.workload.write_plan(copy, dict(bench.workload.data, name=f"{bench.workload.data['name']}-copy"))
    bench.workload.write_plan(copy2, dict(bench.workload.data, name=f"{bench.workload.data['name']}-copy-2"))
    sim = bench.sim("concurrent", min_failback=20.0)  # the first run stays in flight meanwhile
    cases = {}
    try:
        proc, log, _ = bench.start(sim)
        deadline = time.monotonic() + 300
        while not any(r.get("operation") == "unplannedFailover" for r in sim.records()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the first run never started failing back (see {log})")
            time.sleep(0.2)
        other_home = bench.workdir / "prefect-home-2"
        other = {"home": other_home, "locks": bench.workdir / "locks-2"}
        started = [
            (name, bench.start(sim, plan, **kw))
            for name, plan, kw in (
                ("renamed copy of the plan, same host", copy, {}),
                ("another PREFECT_HOME, same server and host", None, {"home": other_home}),
                ("another PREFECT_HOME and lock dir (as if another host), same server", None, other),
                ("renamed copy from another PREFECT_HOME and lock dir, same server", copy2, other),
            )
        ]
        for name, (second, second_log, t0) in started:
            try:
                rc = second.wait(timeout=300)
            except subprocess.TimeoutExpired:
                kill_group(second)
                rc = None
            layer, message = refusal(second_log.read_text(errors="replace"))
            cases[name] = {
                "refused": rc == 1 and layer is not None,
                "by": layer,
                "rc": rc,
                "wall_s": round(time.monotonic() - t0, 2),
                "message": message,
                "first_run_still_running": proc.poll() is None,
            }
        first_rc = proc.wait(timeout=900)
        result = analyse(sim.records(), bench.workload)
    finally:
        sim.stop()
    return {
        "cases": cases,
        "first_run_rc": first_rc,
        "first_run_done": result["done"],
        "duplicate_failovers": result["duplicate_failovers"],
        "refused_writes": result["refused"],
    }


def run_chaos(
    *,
    vms: int,
    kills: int,
    rates: list[float],
    seed: int,
    speed: float,
    time_scale: float,
    max_reruns: int,
    workdir: Path,
    concurrency: bool = True,
    log=print,
) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    workload = build_workload(vms, seed, Timing().scaled(time_scale))
    t_start = time.monotonic()
    server = PrefectServer(
        f"sqlite+aiosqlite:///{workdir / 'prefect.db'}", workdir, log=workdir / "server.log"
    )
    report: dict = {
        "vms": vms,
        "units": None,
        "seed": seed,
        "speed": speed,
        "time_scale": time_scale,
        "groups": len(workload.data["replication_groups"]),
        "hooks": len(workload.data["hooks"]),
    }
    try:
        bench = Bench(workdir, workload, speed=speed, api_url=server.api_url)
        from drplan.plan.graph import load_and_compile

        report["units"] = len(load_and_compile(bench.plan)[1].units)
        clean = clean_run(bench)
        report["clean"] = clean
        log(f"clean run: rc {clean['rc']} in {clean['wall_s']} s, done {clean['done']}")
        if clean["rc"] != 0:
            raise RuntimeError(f"the clean run failed: see {clean['log']}")
        rnd = random.Random(f"chaos-{seed}")
        attempts = []
        for i in range(1, kills + 1):
            at = rnd.uniform(0.05, 0.95) * clean["wall_s"]
            a = kill_attempt(bench, i, at, max_reruns=max_reruns)
            attempts.append(a)
            log(
                f"kill {i}/{kills} at {at:.1f} s: {a['runs']} runs, completed {a['completed']}, "
                f"duplicates {a['duplicate_failovers']}, early commits {a['commits_before_verification']}, "
                f"mixed groups {a['groups_mixed']}"
            )
        report["kills"] = attempts
        report["faults"] = []
        for j, rate in enumerate(rates):
            f = fault_run(bench, rate, seed + j, clean["wall_s"])
            report["faults"].append(f)
            log(f"faults {rate:.0%}: completed {f['completed']} ({f['vms_done']}/{vms}), x{f['slowdown']}")
        if concurrency:
            report["concurrent"] = concurrent_runs(bench)
            for name, c in report["concurrent"]["cases"].items():
                log(f"{name}: refused {c['refused']} by {c['by']}: {c['message'][:160]}")
    finally:
        server.stop()
    report["total_s"] = round(time.monotonic() - t_start, 1)
    report["summary"] = summary(report)
    return report


def summary(report: dict) -> dict:
    kills = report.get("kills", [])
    out = {
        "kills_recovered": f"{sum(a['completed'] for a in kills)}/{len(kills)}",
        "killed_mid_run": sum(a["killed"] for a in kills),
        "reruns": sum(a["runs"] - 1 for a in kills),
        "duplicate_failovers": sum(a["duplicate_failovers"] for a in kills),
        "commits_before_verification": sum(a["commits_before_verification"] for a in kills),
        "groups_mixed": sum(a["groups_mixed"] for a in kills),
        "faults": {
            f"{f['rate']:.0%}": {"completed": f["completed"], "slowdown": f["slowdown"]}
            for f in report.get("faults", [])
        },
    }
    if "concurrent" in report:
        out["concurrent_refused"] = {k: c["refused"] for k, c in report["concurrent"]["cases"].items()}
    return out


def markdown(report: dict) -> str:
    s = report["summary"]
    clean = report["clean"]
    lines = [
        f"{report['vms']} VMs ({report['units']} units, {report['groups']} replication groups, "
        f"{report['hooks']} hooks), seed {report['seed']}, speed {report['speed']:g}, step durations "
        f"x{report['time_scale']:g}; clean run {clean['wall_s']:.1f} s; "
        f"whole invocation {report['total_s']:.0f} s.",
        "",
        "| scenario | result |",
        "|---|---|",
        f"| kill -9 at random moments, re-run until done | **{s['kills_recovered']} recovered** "
        f"({s['killed_mid_run']} killed mid-run, {s['reruns']} re-runs) |",
        f"| duplicate failovers | **{s['duplicate_failovers']}** |",
        f"| commits before verification | **{s['commits_before_verification']}** |",
        f"| groups at mixed points | **{s['groups_mixed']}** |",
    ]
    for f in report.get("faults", []):
        verdict = "**completed**" if f["completed"] else "**not completed**"
        lines.append(
            f"| {f['rate']:.0%} transient 429/500/503 on every ARM request | {verdict} "
            f"({f['vms_done']}/{report['vms']} VMs), {f['wall_s']:.1f} s = **x{f['slowdown']}** the clean "
            f"run; {f['faulted_writes']} faulted writes |"
        )
    for name, c in report.get("concurrent", {}).get("cases", {}).items():
        verdict = f"**refused** by the {c['by']}" if c["refused"] else "**NOT refused**"
        lines.append(f"| second run: {name} | {verdict}, in {c['wall_s']:.1f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--fault-rates", default="0.1,0.4", help="comma-separated shares of faulted requests")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument(
        "--time-scale", type=float, default=0.5, help="step durations x this (benchmarks.workload.Timing)"
    )
    parser.add_argument("--max-reruns", type=int, default=3)
    parser.add_argument("--no-concurrency", action="store_true", help="skip the two-runs-at-once cases")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the full report here")
    parser.add_argument("--render", type=Path, default=None, help="print the table of a saved report")
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads(args.render.read_text(encoding="utf-8"))
        print(markdown(report))
        return report
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="drplan-chaos-"))
    report = run_chaos(
        vms=args.vms,
        kills=args.kills,
        rates=[float(r) for r in args.fault_rates.split(",") if r.strip()],
        seed=args.seed,
        speed=args.speed,
        time_scale=args.time_scale,
        max_reruns=args.max_reruns,
        workdir=workdir,
        concurrency=not args.no_concurrency,
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(markdown(report))
    print(f"\nworkdir: {workdir}")
    return report


if __name__ == "__main__":
    main()
