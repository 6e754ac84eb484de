"""Recovery points decided at the moment each unit fails back, true to what ASR applied, never split across a
replication group: asserted from the simulator's audit log (which point each failback request carried)."""

from __future__ import annotations

from datetime import datetime, timedelta

from run_support import simulated

from drplan.errors import RecoveryPointError
from drplan.failback.kind import FAILBACK
from drplan.plan.schema import CommitPolicy
from drplan.run.outcomes import PreflightFailed, RunFailed
from drplan.sim.estate import ExplicitPoint, OperationFault, PointGenerator


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _failbacks(sim, vm: str | None = None) -> list[dict]:
    return [
        r
        for r in sim.audit.requests("unplannedFailover", outcome="accepted")
        if vm is None or r.get("vm") == vm
    ]


def _hourly_points(estate) -> None:
    """Crash-consistent points every 5 minutes, app-consistent every 10, kept for one hour."""
    estate.recovery_points = PointGenerator(crash_every=300, app_every=600, retention=3600)


LONG_WAIT = """
hooks:
  - {name: change-window, kind: wait, duration: 2h, depends_on: [app-01, app-02]}
"""


def test_a_vm_behind_a_long_wait_fails_back_to_the_newest_point_when_its_failback_is_sent(plan_file):
    path = plan_file(LONG_WAIT)
    text = path.read_text().replace("    depends_on: [app-01, app-02]\n", "    depends_on: [change-window]\n")
    path.write_text(text.replace("    verify:\n      timeout: 5m\n", "    max_data_loss: 15m\n", 1))
    with simulated(path, _hourly_points) as bench:
        run = bench.run(FAILBACK, commit=CommitPolicy.never)
        assert run.error is None, run.error
        first = min(_when(r["time"]) for r in _failbacks(bench.sim))
        for vm in ("web-01", "web-02"):
            (sent,) = _failbacks(bench.sim, vm)
            sent_at, point_at = _when(sent["time"]), _when(sent["recovery_point_time"])
            decided = run.ctx.state.decisions[vm]
            assert sent_at - first >= timedelta(hours=2), "the wait hook did not hold the web tier back"
            assert decided.decided_at - first >= timedelta(hours=2), "the point was chosen before the wait"
            assert decided.decided_at <= sent_at  # decided right before the write (simulated time runs fast)
            # the newest point when the point was fixed (points come every 5 minutes), not the run start's:
            # a point sent by id is fixed at the decision, a LatestTime one when ASR accepts the failback
            fixed_at = decided.decided_at if decided.asr_type == "Custom" else sent_at
            assert timedelta(0) <= fixed_at - point_at <= timedelta(minutes=5), (vm, point_at, fixed_at)
            if vm == "web-01":  # guarded by max_data_loss: its points read afresh, the point sent by id
                assert decided.read_at is None and decided.asr_type == "Custom"
                assert decided.choices[vm].point.time == point_at
            else:  # no guard: sent as LatestTime, which ASR resolves when the job runs (no read of its own)
                assert decided.read_at is not None and decided.asr_type == "LatestTime"
                assert run.ctx.report.row(vm, vm).point_time == point_at  # what ASR applied, read back
        refused = [r for r in bench.sim.audit.requests("unplannedFailover") if r.get("outcome") != "accepted"]
        assert refused == [], "a failback carried a point that had expired"
        decision = run.ctx.state.decisions["web-01"]
        assert decision.max_data_loss == 900 and decision.age("web-01") <= timedelta(minutes=6)


def test_the_guard_is_checked_when_the_unit_fails_back_not_when_the_run_starts(plan_file):
    path = plan_file(LONG_WAIT)
    text = path.read_text().replace("    depends_on: [app-01, app-02]\n", "    depends_on: [change-window]\n")
    path.write_text(text.replace("    verify:\n      timeout: 5m\n", "    max_data_loss: 1h\n", 1))

    def web01_stopped_replicating(estate):
        _hourly_points(estate)
        # web-01's newest point is 5 minutes old when the simulation starts and no newer one comes: well
        # inside its one-hour guard when the run starts, 2 h 5 min old when web-01 fails back
        estate.vm("web-01").recovery_points = [ExplicitPoint(ago=300), ExplicitPoint(ago=900)]

    # 600x: the run starts well within the guard's hour, even on a busy machine
    with simulated(path, web01_stopped_replicating, speed=600.0) as bench:
        run = bench.run(FAILBACK, commit=CommitPolicy.never)
    assert isinstance(run.error, RunFailed), run.error
    assert "more than max_data_loss 1h" in run.error.failed["web-01"]
    assert _failbacks(bench.sim, "web-01") == [], "a point older than the guard was sent"
    assert len(_failbacks(bench.sim, "web-02")) == 1


RECOVERY_PLAN = "    failback_mode: recovery-plan\n"


def test_recovery_plan_mode_reports_and_guards_the_point_asr_applies(plan_file):
    path = plan_file("")
    path.write_text(
        path.read_text().replace("    max_data_loss: 2h", "    max_data_loss: 2h\n" + RECOVERY_PLAN)
    )
    with simulated(path) as bench:
        run = bench.run(FAILBACK, commit=CommitPolicy.never)
        assert run.error is None, run.error
        decision = run.ctx.state.decisions["sql"]
        assert decision.asr_type == "LatestTag"
        for vm in ("sql-01", "sql-02"):
            applied = bench.asr.item_state(run.ctx.state.refs[vm]).failover_recovery_point_id
            row = next(r for r in run.ctx.report.rows if r.vm == vm)
            assert row.point.lower() == applied.lower(), "the report shows a point ASR did not apply"
            point = bench.asr.recovery_point(run.ctx.state.refs[vm], applied)
            assert row.point_time == point.time and point.multi_vm_sync
            # ASR resolves LatestTag when its job runs: never to an older point than the one guarded
            assert point.time >= decision.choices[vm].point.time
            assert row.point_age is not None and row.point_age <= 2 * 3600


def test_recovery_plan_mode_refuses_a_policy_it_cannot_honour_before_any_write(plan_file):
    path = plan_file("")
    path.write_text(
        path.read_text().replace(
            "    max_data_loss: 2h",
            "    max_data_loss: 2h\n    recovery_point: latest-app-consistent\n" + RECOVERY_PLAN,
        )
    )
    with simulated(path) as bench:
        run = bench.run(FAILBACK)
        assert isinstance(run.error, RecoveryPointError)
        assert "group sql" in str(run.error) and "use recovery_point: common-app-consistent" in str(run.error)
        assert bench.sim.audit.requests() == []


def test_a_group_resumed_after_a_failure_goes_to_the_point_time_of_its_first_member():
    def sql02_fails(estate):
        _hourly_points(estate)
        estate.faults.operations.append(
            OperationFault(operation="unplannedFailover", vm="sql-02", mode="once")
        )

    with simulated(tweak=sql02_fails) as bench:
        first = bench.run(FAILBACK, commit=CommitPolicy.never)
        assert isinstance(first.error, RunFailed) and "sql" in first.error.failed
        (sql01,) = _failbacks(bench.sim, "sql-01")
        bench.sim.clock.advance(1800)  # newer common points exist now
        again = bench.run(FAILBACK)
        assert again.error is None, again.error
        sql02 = [r for r in _failbacks(bench.sim, "sql-02")]
        assert sql02[-1]["recovery_point_time"] == sql01["recovery_point_time"], "the group was split"
        assert len(_failbacks(bench.sim, "sql-01")) == 1, "sql-01 was failed back twice"
        assert {r["vm"] for r in bench.sim.audit.requests("failoverCommit", outcome="accepted")} >= {
            "sql-01",
            "sql-02",
        }
        assert again.ctx.state.decisions["sql"].pinned_to == _when(sql01["recovery_point_time"])


def test_a_group_whose_first_point_expired_is_stopped_before_any_write_and_never_committed():
    def sql02_fails(estate):
        estate.recovery_points = PointGenerator(crash_every=300, app_every=600, retention=86400)
        # sql-02 keeps its points for one hour only
        estate.vm("sql-02").generator = PointGenerator(crash_every=300, app_every=600, retention=3600)
        estate.faults.operations.append(
            OperationFault(operation="unplannedFailover", vm="sql-02", mode="once")
        )

    with simulated(tweak=sql02_fails) as bench:
        bench.run(FAILBACK, commit=CommitPolicy.never)
        (sql01,) = _failbacks(bench.sim, "sql-01")
        writes = len(bench.sim.audit.requests())
        bench.sim.clock.advance(2 * 3600)  # sql-01's point is now past sql-02's one-hour retention
        again = bench.run(FAILBACK)
        assert isinstance(again.error, RecoveryPointError)  # refused before any write of the re-run
        message = str(again.error)
        assert "cannot complete the failback of group sql at one point" in message
        assert f"members already failed back to {sql01['recovery_point_time']}" in message
        assert "VM sql-02: no point at" in message and "cannot be undone" in message
        assert len(bench.sim.audit.requests()) == writes, "the re-run wrote something"
        assert bench.sim.audit.requests("failoverCommit") == []


def test_a_group_of_one_uses_a_multi_vm_sync_point_and_messages_name_the_group(plan_file):
    path = plan_file("")
    text = path.read_text().replace("    members: [sql-01, sql-02]", "    members: [sql-01]")
    text = text.replace("  - name: sql-02\n    os: windows\n    master_target: mt-win-01\n", "")
    path.write_text(text)
    with simulated(path) as bench:
        run = bench.run(FAILBACK, commit=CommitPolicy.never)
        assert run.error is None, run.error
        choice = run.ctx.state.decisions["sql"].choices["sql-01"]
        assert choice.point.app_consistent and choice.point.multi_vm_sync

    def no_sync_points(estate):
        estate.vm("sql-01").replication_group = None  # ASR keeps no multi-VM sync point for it

    with simulated(path, no_sync_points) as bench:
        run = bench.run(FAILBACK)
        assert "cannot fail back group sql" in str(run.error)
        assert bench.sim.audit.requests() == []


def test_a_plan_group_that_differs_from_the_asr_group_is_refused_in_preflight_with_zero_writes():
    def web01_in_asr_group_sql(estate):
        estate.vm("web-01").replication_group = "sql"

    with simulated(tweak=web01_in_asr_group_sql) as bench:
        run = bench.run(FAILBACK)
    assert isinstance(run.error, PreflightFailed)
    failed = {c.name: c.message for c in run.error.checks}
    assert "sql (sql-01, sql-02, web-01)" in failed["replication-group sql"]
    assert "standalone in the plan but in ASR multi-VM group sql" in failed["replication-group web-01"]
    assert bench.sim.audit.requests() == []


def test_transient_faults_on_every_request_are_absorbed_without_a_duplicate_failover():
    for seed in (1, 2, 3):

        def flaky(estate, seed=seed):
            estate.faults.seed = seed
            estate.faults.rate_429 = estate.faults.rate_500 = 0.15
            estate.faults.rate_503 = 0.10
            estate.faults.retry_after = 0

        with simulated(tweak=flaky) as bench:
            run = bench.run(FAILBACK, commit=CommitPolicy.after_verification)
            assert run.error is None, f"seed {seed}: {run.error}"
            vms = [r["vm"] for r in _failbacks(bench.sim)]
            assert sorted(vms) == sorted(set(vms)) and len(vms) == 6, (seed, vms)


def test_an_operation_in_progress_answer_is_awaited_not_reported_failed():
    def busy_once(estate):
        estate.faults.operations.append(
            OperationFault(
                operation="unplannedFailover",
                vm="app-01",
                mode="once",
                stage="request",
                status=409,
                code="OperationInProgress",
                message="another job is running on this item",
            )
        )

    with simulated(tweak=busy_once) as bench:
        run = bench.run(FAILBACK, commit=CommitPolicy.never)
        assert run.error is None, run.error
        assert len(_failbacks(bench.sim, "app-01")) == 1
        assert any(r.get("status") == 409 for r in bench.sim.audit.requests("unplannedFailover"))
