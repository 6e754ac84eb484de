"""The simulator's own routes next to the ARM API (``/drplan-sim/...``): its clock and its on-prem site, for
flows in another process (:mod:`drplan.sim.remote` is the client side).

* ``GET  /drplan-sim/clock``            → ``{"now": ISO, "monotonic": s, "speed": x}``
* ``POST /drplan-sim/onprem/read_state`` ``{"vms": [...], "port_groups": [...], "datastores": [...]}``
  → a :class:`~drplan.observed.SiteState` as JSON

The bearer token is checked before these routes are reached, as for ARM's (:mod:`drplan.sim.server`): a
wrong or missing token gets the same ``401``.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from drplan.sim.clock import SimClock
from drplan.sim.onprem import SimulatedSite
from drplan.sim.responses import Response

PREFIX = "/drplan-sim/"


def dispatch(clock: SimClock, site: SimulatedSite, method: str, path: str, raw: bytes) -> Response:
    """Answer one ``/drplan-sim/...`` request (called by the simulator's request dispatch)."""
    if method == "GET" and path == PREFIX + "clock":
        now = {"now": clock.now().isoformat(), "monotonic": clock.monotonic(), "speed": clock.speed}
        return Response(200, now)
    if method == "POST" and path == PREFIX + "onprem/read_state":
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return Response(400, {"error": "the request body is not valid JSON"})
        state = site.read_state(
            body.get("vms", []),
            port_groups=body.get("port_groups", []),
            datastores=body.get("datastores", []),
        )
        return Response(
            200,
            {
                "connected": state.connected,
                "vms": {k: asdict(v) for k, v in state.vms.items()},
                "port_groups": sorted(state.port_groups),
                "datastore_free_bytes": state.datastore_free_bytes,
            },
        )
    return Response(404, {"error": f"no such simulator route: {method} {path}"})
