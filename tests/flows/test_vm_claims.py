"""One run per VM, whatever the plan file is called and wherever its locks live: a renamed copy of a plan is
refused on this host and on the Prefect server, before any write, naming the run that holds the VMs; claims
are released when a run ends and taken over from a run whose process died or whose flow run ended."""

from __future__ import annotations

import multiprocessing
import threading
import uuid

import pytest
from failback_support import PLANNED, THREE_TIER

from drplan.plan.graph import load_and_compile
from drplan.run.host_lock import PlanBusy
from drplan.settings import Settings
from flows.claims import CLAIM_BUCKETS, HostClaims, ServerClaims, VmClaim, claim_target, vm_claims

PLAN, _ = load_and_compile(THREE_TIER)
VMS = [v.name for v in PLAN.vms]


def _failback(plan_path, **params):
    from drplan.run.events import observing
    from flows.failback import failback

    with observing(PLANNED):
        return failback(plan=str(plan_path), **params, return_state=True)


def _accepted(sim, operation):
    return [r for r in sim.audit.requests(operation, outcome="accepted")]


def _flow_state(run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def test_a_renamed_copy_is_refused_on_the_host_and_on_the_server_before_any_write(sim, monkeypatch, tmp_path):
    from prefect.flow_runs import resume_flow_run

    copy = tmp_path / "copy-of-three-tier.yaml"
    copy.write_text(THREE_TIER.read_text().replace("name: three-tier", "name: three-tier-copy", 1))
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(state=_failback(THREE_TIER)))  # pauses: approval
    worker.start()

    def paused_run() -> str | None:
        return next((i for i in list(PLANNED.by_run) if _flow_state(i).is_paused()), None)

    deadline = sim.clock.monotonic() + 200_000
    while paused_run() is None:
        assert sim.clock.monotonic() < deadline and worker.is_alive(), "the first run never paused"
        sim.clock.sleep(30)
    run_id = paused_run()
    writes = len(sim.request_log)

    on_host = _failback(copy, commit="after-verification")
    assert on_host.is_failed()
    message = str(on_host.result(raise_on_failure=False))
    assert "is already claimed on this host by flow run" in message and run_id in message
    assert "of plan three-tier " in message

    monkeypatch.setenv("DRPLAN_LOCK_DIR", str(tmp_path / "another-host"))  # host claims elsewhere
    on_server = _failback(copy, commit="after-verification")
    assert on_server.is_failed()
    message = str(on_server.result(raise_on_failure=False))
    assert "is already claimed on the Prefect server by flow run" in message and run_id in message
    assert len(sim.request_log) == writes  # neither refused run wrote anything

    resume_flow_run(run_id, run_input={"approved": True, "approver": "alice", "comment": "ok"})
    worker.join(timeout=600)
    assert first["state"].is_completed()
    again = _failback(copy, commit="after-verification")  # the claims were released: the copy may run now
    assert again.is_completed(), str(again.result(raise_on_failure=False))
    assert sorted(r["vm"] for r in _accepted(sim, "unplannedFailover")) == sorted(VMS)  # once each


# -- the claims themselves ---------------------------------------------------------------------------------
def test_claim_keys_name_the_target_and_the_vault():
    ext = Settings.model_validate({"DRPLAN_SIM_ENDPOINT": "https://127.0.0.1:4443"})
    assert claim_target(Settings.model_construct(), simulated=False) == "azure"
    assert claim_target(ext, simulated=False) == "sim@127.0.0.1:4443"
    assert claim_target(ext, simulated=True) is None  # the embedded simulator's estate is the run's own
    keys = {c.vm: c.key for c in vm_claims(PLAN, "azure")}
    assert sorted(keys) == sorted(VMS)
    az = PLAN.azure
    assert keys["web-01"] == f"azure:{az.subscription_id}:{az.resource_group}:{az.vault}:web-01".lower()
    assert all("/" not in c.limit for c in vm_claims(PLAN, "sim@127.0.0.1:4443"))


def _hold_then_die(directory, ready, keys):
    claims = HostClaims(directory)
    claims.claim(keys, {"flow_run": "dead-run", "plan": "killed"})
    ready.set()
    threading.Event().wait(60)


def test_host_claims_refuse_a_live_holder_and_take_over_from_a_dead_one(tmp_path):
    claims = vm_claims(PLAN, "azure")
    a = HostClaims(tmp_path)
    a.claim(claims[:2], {"flow_run": "run-a", "flow_run_name": "brave-fox", "plan": "three-tier"})
    b = HostClaims(tmp_path)
    with pytest.raises(
        PlanBusy, match=r"VM .* is already claimed on this host by flow run brave-fox \(run-a\)"
    ):
        b.claim(claims[1:], {"flow_run": "run-b", "plan": "renamed"})
    b.claim(claims[2:], {"flow_run": "run-b", "plan": "renamed"})  # disjoint VMs: no conflict
    a.release()
    c = HostClaims(tmp_path)
    c.claim(claims[:2], {"flow_run": "run-c", "plan": "three-tier"})
    c.release()
    b.release()

    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_then_die, args=(tmp_path, ready, claims))
    proc.start()
    assert ready.wait(30)
    with pytest.raises(PlanBusy, match="plan killed"):
        HostClaims(tmp_path).claim(claims, {"flow_run": "run-d"})
    proc.kill()  # kill -9: the kernel drops its flock, its claims lapse
    proc.join()
    d = HostClaims(tmp_path)
    assert d.claim(claims, {"flow_run": "run-d"}) == {"dead-run"}
    d.release()


def _flow_run(client, name: str):
    from prefect import flow

    @flow(name="claims-test")
    def noop() -> None:
        pass

    return client.create_flow_run(noop, name=name)


def test_server_claims_refuse_name_the_holder_and_are_taken_over_after_it_crashed(prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed, Running

    claims = vm_claims(PLAN, f"sim@test-{uuid.uuid4().hex[:8]}")
    with get_client(sync_client=True) as client:
        holder, other, third = (_flow_run(client, n) for n in ("holder-run", "other-run", "third-run"))
        for r in (holder, other, third):
            client.set_flow_run_state(r.id, Running(), force=True)
        a = ServerClaims(str(holder.id), claims)
        a.claim()
        b = ServerClaims(str(other.id), claims[1:2])
        with pytest.raises(
            PlanBusy, match=rf"claimed on the Prefect server by flow run holder-run \({holder.id}\)"
        ):
            b.claim()
        a.release()
        b.claim()  # released at the end of the run: free again
        b.release()

        a = ServerClaims(str(holder.id), claims)
        a.claim()
        a._stop.set()  # the process "dies": no renewal, no release
        client.set_flow_run_state(holder.id, Crashed(message="killed"), force=True)
        c = ServerClaims(str(third.id), claims)
        c.claim()  # the crashed holder's lease is released and the claim taken over
        assert c.lease_id is not None
        c.release()


def test_a_claim_whose_holder_died_before_naming_itself_is_waited_for_then_refused(prefect_api, monkeypatch):
    """Killed between taking its lease and tagging its flow run, a process leaves a lease no run names. It was
    taken for FIRST_LEASE_SECONDS only, so it lapses soon: a claim waits for that (UNNAMED_WAIT_SECONDS, 0
    here), then refuses saying to run again, never "held by" a run it cannot name."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    from flows import claims as claims_module

    monkeypatch.setattr(claims_module, "UNNAMED_WAIT_SECONDS", 0.0)
    claims = vm_claims(PLAN, f"sim@test-{uuid.uuid4().hex[:8]}")
    with get_client(sync_client=True) as client:
        dead, other = _flow_run(client, "dead-run"), _flow_run(client, "next-run")
        for r in (dead, other):
            client.set_flow_run_state(r.id, Running(), force=True)
        orphan = ServerClaims(str(dead.id), claims)._increment(client, [c.limit for c in claims])
        assert orphan is not None
        with pytest.raises(claims_module.UnnamedHolder, match="could not be identified.*run again"):
            ServerClaims(str(other.id), claims).claim()
        client.release_concurrency_slots_with_lease(orphan)
        nxt = ServerClaims(str(other.id), claims)
        nxt.claim()  # the lease lapsed (released here): free again
        nxt.release()


def test_a_thousand_vm_claim_leaves_the_flow_run_few_tags_and_its_state_settable(prefect_api):
    """Seen at 1,000 VMs: one tag per VM made the flow run's final state change fail with HTTP 500 (Prefect's
    event relates one resource per tag, at most 100): the run could not end."""
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running

    target = f"sim@test-{uuid.uuid4().hex[:8]}"
    claims = [VmClaim(f"{target}:sub:rg:vault:vm-{i:04d}", f"vm-{i:04d}") for i in range(1000)]
    with get_client(sync_client=True) as client:
        run, other = _flow_run(client, "big-run"), _flow_run(client, "other-big-run")
        for r in (run, other):
            client.set_flow_run_state(r.id, Running(), force=True)
        held = ServerClaims(str(run.id), claims)
        held.claim()
        tags = client.read_flow_run(run.id).tags
        assert 1 <= sum(t.startswith("drplan-claim:") for t in tags) <= CLAIM_BUCKETS
        with pytest.raises(PlanBusy, match=r"VM vm-0998, vm-0999 is already claimed .* by flow run big-run"):
            ServerClaims(str(other.id), claims[998:]).claim()
        held.release()
        assert client.set_flow_run_state(run.id, Completed(), force=True).status.value == "ACCEPT"
