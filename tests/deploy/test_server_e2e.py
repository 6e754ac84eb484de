"""prefect.yaml end to end on a real ``prefect server``: pool, ``deploy --all``, a process worker, and the
drill deployment run twice (through the API, then through its ``drplan.drill.requested`` event); artifacts are
read back through the API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from .processes import Server, prefect_server, process_worker, wait_until

ROOT = Path(__file__).resolve().parents[2]
POOL = "drplan-process"
PLAN = "plans/three-tier.yaml"
RUN_TIMEOUT = 300.0
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]


def _plan_units() -> list[str]:
    from drplan.plan.graph import load_and_compile

    _, graph = load_and_compile(ROOT / PLAN)
    return [name for name, unit in graph.units.items() if unit.kind != "hook"]


def _deployment(server: Server, name: str) -> dict:
    return server.get(f"/deployments/name/{name}/{name}")


def _finished(server: Server, flow_run_id: str) -> dict | None:
    run = server.get(f"/flow_runs/{flow_run_id}")
    return run if run["state_type"] in TERMINAL else None


def _wait_finished(server: Server, flow_run_id: str, what: str) -> dict:
    run = wait_until(what, lambda: _finished(server, flow_run_id), timeout=RUN_TIMEOUT, interval=1.0)
    assert run["state_type"] == "COMPLETED", (
        f"{what} ended {run['state_name']}: {run['state'].get('message')}\n"
        f"--- worker log ---\n{(server.home / 'worker.log').read_text(errors='replace')[-6000:]}"
    )
    return run


def _artifacts(server: Server, flow_run_id: str) -> list[dict]:
    return server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})


def _check_drill_report(server: Server, run: dict, units: list[str]) -> None:
    def both() -> list[dict] | None:
        found = _artifacts(server, run["id"])
        return found if any((a.get("key") or "").endswith("-report") for a in found) else None

    artifacts = wait_until(f"the report artifacts of flow run {run['name']}", both, timeout=60.0)
    markdown = next(a for a in artifacts if (a.get("key") or "").endswith("-report"))["data"]
    assert "RTO" in markdown and "RPO" in markdown, markdown
    for unit in units:
        assert unit in markdown, f"unit {unit} missing from the drill report:\n{markdown}"


def test_prefect_yaml_declares_the_deployments_the_issue_asks_for() -> None:
    config = YAML(typ="safe").load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) >= {"failback", "reprotect", "drill"}
    drill = deployments["drill"]
    assert [s["active"] for s in drill["schedules"]] == [False], "the weekly drill must be created inactive"
    assert drill["triggers"][0]["expect"] == ["drplan.drill.requested"]
    for d in deployments.values():
        assert d["work_pool"]["name"] == POOL
        assert d["concurrency_limit"]["limit"] == 1
        assert d["parameters"]["plan"] == PLAN and d["parameters"]["simulate"] is False  # never by surprise


def test_deploy_all_then_drill_through_the_api_and_the_event(tmp_path: Path) -> None:
    units = _plan_units()
    with prefect_server(tmp_path / "prefect-home") as server:
        server.cli("work-pool", "create", POOL, "--type", "process", cwd=ROOT)
        server.cli("--no-prompt", "deploy", "--all", cwd=ROOT)

        # What deploy created: three deployments on the pool, a weekly drill schedule (inactive), one run at a
        # time per deployment, and the drill's event trigger as an automation.
        drill = _deployment(server, "drill")
        for name in ("failback", "reprotect"):
            assert _deployment(server, name)["work_pool_name"] == POOL
        assert drill["work_pool_name"] == POOL
        assert drill["parameters"] == {"plan": PLAN, "simulate": False}
        schedules = [(s["schedule"].get("cron"), s["active"]) for s in drill["schedules"]]
        assert schedules == [("0 3 * * 6", False)]
        assert drill["global_concurrency_limit"]["limit"] == 1
        assert drill["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ]
        automations = server.post("/automations/filter", {})
        assert [a["name"] for a in automations] == ["drill__automation_1"]

        # The worker runs from elsewhere: the pull step must put the flow run in the project directory.
        with process_worker(server, POOL, cwd=server.home):
            by_api = server.post(
                f"/deployments/{drill['id']}/create_flow_run", {"parameters": {"simulate": True}}
            )
            run = _wait_finished(server, by_api["id"], "the drill started through the API")
            assert run["parameters"] == {"plan": PLAN, "simulate": True}
            _check_drill_report(server, run, units)

            event_id = str(uuid.uuid4())
            server.post(
                "/events",
                [
                    {
                        "id": event_id,
                        "occurred": datetime.now(UTC).isoformat(),
                        "event": "drplan.drill.requested",
                        "resource": {"prefect.resource.id": "drplan.plan.three-tier"},
                        "payload": {"plan": PLAN, "simulate": True},
                    }
                ],
            )

            def triggered() -> dict | None:
                runs = server.post("/flow_runs/filter", {"deployments": {"id": {"any_": [drill["id"]]}}})
                automated = [r for r in runs if (r.get("created_by") or {}).get("type") == "AUTOMATION"]
                return automated[0] if automated else None

            by_event = wait_until(
                "a drill flow run created by the drplan.drill.requested trigger",
                triggered,
                timeout=120.0,
                interval=1.0,
            )
            run = _wait_finished(server, by_event["id"], "the drill started through its event")
            assert run["parameters"] == {"plan": PLAN, "simulate": True}
            _check_drill_report(server, run, units)
