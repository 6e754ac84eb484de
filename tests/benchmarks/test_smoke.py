"""A 10-VM run of the makespan harness: it works end to end and its figures are consistent.

No timing assertion (speed is what the benchmark reports, not what a test checks): only that the real
failback flow completed on the simulated estate, that the makespan is never below the critical-path bound
computed from the same durations, and that the simulator's ARM requests were counted.
"""

from __future__ import annotations

import pytest

from benchmarks.run import main as run_benchmark


@pytest.mark.timeout(300)
def test_ten_vm_graph_run_is_consistent(tmp_path):
    args = ["--scales", "10", "--schedules", "graph", "--time-scale", "0.25", "--seed", "2"]
    report = run_benchmark([*args, "--out", str(tmp_path)])
    (row,) = report["scales"]
    (run,) = row["runs"]
    assert run.get("outcome") == "completed", run
    assert run["makespan_s"] >= row["graph_bound_s"] > 0
    assert run["exec_span_s"] <= run["makespan_s"]
    arm = run["arm"]
    # every VM was failed back, committed and reprotected: at least three writes each; their jobs awaited on
    # the items' shared reads (a job is polled only when its item does not show it done)
    assert arm["writes"] >= 3 * row["vms"]
    assert arm["reads"] >= row["vms"] and arm["polls"] < arm["writes"]
    assert arm["requests"] == arm["reads"] + arm["writes"]
    assert run["task_runs"] >= 2 * row["units"] and run["visible"] == run["task_runs"]
    assert run["rss_mb"] > 0
    assert (tmp_path / "table.md").read_text().count("| 10 |") >= 2
