"""Validate every request and response body a test exchanged with the simulator against the specs."""

from __future__ import annotations

from .specval import SpecValidator

RESULT_DEFS = {
    "ReplicationProtectedItems_OperationResults": "ReplicationProtectedItem",
    "ReplicationRecoveryPlans_OperationResults": "RecoveryPlan",
    "VirtualMachines_Get": "VirtualMachine",
}


def check_exchange(
    spec: SpecValidator, compute: SpecValidator, responses: list, request_log: list
) -> set[str]:
    """Every captured response (and request) body against its definition; return the routes seen."""
    problems, seen = [], set()
    for method, route, status, body in responses:
        seen.add(route)
        if body is None:
            assert status in (202, 204), (method, route, status)
            continue
        validator = compute if route == "VirtualMachines_Get" else spec
        definition = (
            "common:ErrorResponse"
            if status >= 400
            else RESULT_DEFS.get(route) or spec.response_definition(route, status)
        )
        problems += [f"{method} {route} {status}: {p}" for p in validator.errors(definition, body)]
    for req in request_log:
        if req["body"] is not None:
            definition = spec.request_definition(req["route"])
            assert definition, req["route"]
            problems += [f"request {req['route']}: {p}" for p in spec.errors(definition, req["body"])]
    assert not problems, "\n".join(problems[:40])
    return seen
