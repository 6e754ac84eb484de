"""The ARM-compatible HTTPS endpoint: routes, paging, LROs, auth, faults, audit and request counts.

Only what ``azure-mgmt-recoveryservicessiterecovery`` 2.x calls for failback is served (see
``docs/estate.md``). Long-running actions answer ``202`` with an absolute ``Location``
(``…/operationresults/{job}``) and ``Retry-After`` (remaining job time in real seconds).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from drplan.sim import compute, control, fabrics, rcm_shapes, shapes
from drplan.sim.audit import Audit
from drplan.sim.clock import SimClock
from drplan.sim.estate import Estate
from drplan.sim.faults import FaultInjector
from drplan.sim.items import Item
from drplan.sim.lifecycle import Engine
from drplan.sim.responses import Response
from drplan.sim.rules import OP_ALLOWED, SimError
from drplan.sim.throttle import Throttle

log = logging.getLogger(__name__)
_TL = threading.local()
_THROTTLE_LOCK = threading.Lock()
API_VERSION = "2025-08-01"
_PREFIX = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.RecoveryServices"
    r"/vaults/(?P<vault>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)
_ACTIONS = "|".join(OP_ALLOWED)
_SEG = r"([^/]+)"
_ITEM = rf"/replicationFabrics/{_SEG}/replicationProtectionContainers/{_SEG}/replicationProtectedItems/{_SEG}"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    name: str
    handler: str


def _r(method: str, path: str, name: str, handler: str) -> Route:
    return Route(method, re.compile(f"^{path}$", re.IGNORECASE), name, handler)


ROUTES = [
    _r("GET", "/replicationFabrics", "ReplicationFabrics_List", "fabrics"),
    _r("GET", f"/replicationFabrics/{_SEG}", "ReplicationFabrics_Get", "fabric"),
    _r("GET", "/replicationvCenters", "ReplicationvCenters_List", "vcenters"),
    _r(
        "GET",
        f"/replicationFabrics/{_SEG}/replicationvCenters",
        "ReplicationvCenters_ListByReplicationFabrics",
        "vcenters",
    ),
    _r("GET", f"/replicationFabrics/{_SEG}/replicationvCenters/{_SEG}", "ReplicationvCenters_Get", "vcenter"),
    _r("GET", "/replicationProtectionContainers", "ReplicationProtectionContainers_List", "containers"),
    _r(
        "GET",
        f"/replicationFabrics/{_SEG}/replicationProtectionContainers",
        "ReplicationProtectionContainers_ListByReplicationFabrics",
        "containers",
    ),
    _r(
        "GET",
        f"/replicationFabrics/{_SEG}/replicationProtectionContainers/{_SEG}",
        "ReplicationProtectionContainers_Get",
        "container",
    ),
    _r(
        "GET",
        "/replicationRecoveryServicesProviders",
        "ReplicationRecoveryServicesProviders_List",
        "providers",
    ),
    _r(
        "GET",
        f"/replicationFabrics/{_SEG}/replicationRecoveryServicesProviders",
        "ReplicationRecoveryServicesProviders_ListByReplicationFabrics",
        "providers",
    ),
    _r(
        "GET",
        f"/replicationFabrics/{_SEG}/replicationRecoveryServicesProviders/{_SEG}",
        "ReplicationRecoveryServicesProviders_Get",
        "provider",
    ),
    _r("GET", "/replicationProtectedItems", "ReplicationProtectedItems_List", "items"),
    _r(
        "GET",
        f"/replicationFabrics/{_SEG}/replicationProtectionContainers/{_SEG}/replicationProtectedItems",
        "ReplicationProtectedItems_ListByReplicationProtectionContainers",
        "items",
    ),
    _r("GET", _ITEM, "ReplicationProtectedItems_Get", "item"),
    _r("POST", f"{_ITEM}/({_ACTIONS})", "ReplicationProtectedItems_{action}", "item_action"),
    _r(
        "GET", f"{_ITEM}/operationresults/{_SEG}", "ReplicationProtectedItems_OperationResults", "item_result"
    ),
    _r("GET", f"{_ITEM}/recoveryPoints", "RecoveryPoints_ListByReplicationProtectedItems", "points"),
    _r("GET", f"{_ITEM}/recoveryPoints/{_SEG}", "RecoveryPoints_Get", "point"),
    _r("GET", "/replicationAppliances", "ReplicationAppliances_List", "appliances"),
    _r("GET", "/replicationPolicies", "ReplicationPolicies_List", "policies"),
    _r("GET", f"/replicationPolicies/{_SEG}", "ReplicationPolicies_Get", "policy"),
    _r("GET", "/replicationJobs", "ReplicationJobs_List", "jobs"),
    _r("GET", f"/replicationJobs/{_SEG}", "ReplicationJobs_Get", "job"),
    _r("GET", "/replicationRecoveryPlans", "ReplicationRecoveryPlans_List", "plans"),
    _r("GET", f"/replicationRecoveryPlans/{_SEG}", "ReplicationRecoveryPlans_Get", "plan"),
    _r("PUT", f"/replicationRecoveryPlans/{_SEG}", "ReplicationRecoveryPlans_Create", "plan_create"),
    _r("DELETE", f"/replicationRecoveryPlans/{_SEG}", "ReplicationRecoveryPlans_Delete", "plan_delete"),
    _r(
        "POST",
        f"/replicationRecoveryPlans/{_SEG}/({_ACTIONS})",
        "ReplicationRecoveryPlans_{action}",
        "plan_action",
    ),
    _r(
        "GET",
        f"/replicationRecoveryPlans/{_SEG}/operationresults/{_SEG}",
        "ReplicationRecoveryPlans_OperationResults",
        "plan_result",
    ),
]
_COMPUTE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute"
    r"/virtualMachines/(?P<vm>[^/]+)$",
    re.IGNORECASE,
)
_COMPUTE_ALL = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/virtualMachines$", re.IGNORECASE
)
_FILTER_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: avoid the delayed-ACK stall
    server_version = "drplan-sim"
    sys_version = ""
    server: SimHTTPServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sim = self.server.sim
        try:
            resp = sim.dispatch(method, self.path, raw, dict(self.headers.items()))
        except Exception as exc:  # a simulator bug: answer like ARM would, keep serving
            log.exception("simulator error on %s %s", method, self.path)
            resp = Response(500, shapes.error("InternalServerError", f"simulator error: {exc}"))
        if sim.response_hook is not None:
            sim.response_hook(method, resp.route, resp.status, resp.body)
        payload = b"" if resp.body is None else json.dumps(resp.body).encode()
        self.send_response(resp.status)
        if resp.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if payload:
            self.wfile.write(payload)


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, sim: Api):
        self.sim = sim
        super().__init__(address, Handler)

    def handle_error(self, request, client_address) -> None:
        # Clients that drop the connection or fail the TLS handshake are not the simulator's problem.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


def _unauthenticated(headers: dict[str, str], token: str) -> Response | None:
    """ARM's ``401`` (error envelope + ``WWW-Authenticate``) unless the request carries ``Bearer <token>``."""
    auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
    scheme, _, given = auth.strip().partition(" ")
    given = given.strip()
    if scheme.lower() == "bearer" and given and hmac.compare_digest(given.encode(), token.encode()):
        return None
    if scheme.lower() != "bearer" or not given:
        code, why = "AuthenticationFailed", "The 'Authorization' header is missing or is not a bearer token."
        desc = "The authentication failed because of missing 'Authorization' header."
    else:
        code, why = "InvalidAuthenticationToken", "The access token is invalid."
        desc = "The access token is invalid."
    hint = " (the simulator accepts only the token it was started with: `drplan sim start` prints it)"
    challenge = (
        'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", '
        f'error_description="{desc}"'
    )
    return Response(
        401, shapes.error(code, f"Authentication failed. {why}{hint}"), {"WWW-Authenticate": challenge}
    )


class Api:
    """Request dispatch for one :class:`~drplan.sim.simulator.Simulator` (mixed into it)."""

    estate: Estate
    engine: Engine
    clock: SimClock
    audit: Audit
    injector: FaultInjector
    page_size: int
    endpoint: str
    token: str
    request_counts: Counter[tuple[str, str]]
    request_log: list[dict]
    response_hook: Callable[[str, str, int, dict | None], None] | None = None

    def dispatch(self, method: str, target: str, raw: bytes, headers: dict[str, str]) -> Response:
        """Answer one request; ``Response.route`` names the route (an operationId) for hooks and counts."""
        _TL.route, _TL.ratelimit = "Unknown", None
        resp = self._dispatch(method, target, raw, headers)
        resp.route = _TL.route
        if _TL.ratelimit:  # ARM's remaining-budget header on every answer to a throttled-kind request
            resp.headers = {**resp.headers, **_TL.ratelimit}
        return resp

    @property
    def throttle(self) -> Throttle:
        """The subscription's token buckets (``estate.throttling``; created on first use)."""
        with _THROTTLE_LOCK:
            if "_throttle" not in self.__dict__:
                self.__dict__["_throttle"] = Throttle(self.clock)
            return self.__dict__["_throttle"]

    def _rate_limited(self, method: str, path: str) -> Response | None:
        """ARM's 429 when the request's bucket is empty (``drplan.sim.throttle``), else ``None``."""
        verdict = self.throttle.admit(self.estate.throttling, method, path)
        if verdict is None:
            return None
        _TL.ratelimit = verdict.headers
        if verdict.admitted:
            return None
        self.request_counts[(method, "Throttled")] += 1
        _TL.route = "Throttled"
        sub = path.split("/")[2] if path.lower().startswith("/subscriptions/") else ""
        return Response(
            429, shapes.error("SubscriptionRequestsThrottled", self.throttle.message(verdict, sub))
        )

    def _dispatch(self, method: str, target: str, raw: bytes, headers: dict[str, str]) -> Response:
        sim = self
        latency = sim.estate.faults.latency
        if latency:
            time.sleep(latency)
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        refused = _unauthenticated(headers, sim.token)
        if refused is not None:
            _TL.route = "Unauthenticated"
            return refused
        if url.path.startswith(control.PREFIX):  # on-prem site + clock for other processes
            sim.request_counts[(method, "DrplanSim")] += 1
            _TL.route = "DrplanSim"
            return control.dispatch(sim.clock, sim.engine.site, method, url.path, raw)
        throttled = self._rate_limited(method, url.path)
        if throttled is not None:
            return throttled
        am = _COMPUTE_ALL.match(url.path)
        if am and method == "GET":
            sim.request_counts[(method, "VirtualMachines_ListAll")] += 1
            _TL.route = "VirtualMachines_ListAll"
            host = {k.lower(): v for k, v in headers.items()}.get("host")
            return self._compute_vms(am, query, f"https://{host}" if host else sim.endpoint, url.path)
        cm = _COMPUTE.match(url.path)
        if cm and method == "GET":
            sim.request_counts[(method, "VirtualMachines_Get")] += 1
            _TL.route = "VirtualMachines_Get"
            return self._compute_vm(cm, query)
        m = _PREFIX.match(url.path)
        route: Route | None = None
        args: tuple[str, ...] = ()
        if m:
            rest = m.group("rest") or "/"
            for r in ROUTES:
                mm = r.pattern.match(rest)
                if mm and r.method == method:
                    route, args = r, mm.groups()
                    break
        name = route.name if route else "Unknown"
        if route and "{action}" in name:
            name = name.format(action=_op_id(args[-1]))
        sim.request_counts[(method, name)] += 1
        _TL.route = name
        if route is None or m is None:
            return Response(
                404, shapes.error("NotFound", f"no such resource or operation: {method} {url.path}")
            )
        v = sim.estate.vault
        if (m.group("sub").lower(), m.group("rg").lower(), m.group("vault").lower()) != (
            v.subscription_id.lower(),
            v.resource_group.lower(),
            v.name.lower(),
        ):
            return Response(
                404,
                shapes.error(
                    "ResourceNotFound",
                    f"vault {m.group('vault')!r} not found in resource group "
                    f"{m.group('rg')!r} of subscription {m.group('sub')!r}",
                ),
            )
        if query.get("api-version") != API_VERSION:
            return Response(
                400,
                shapes.error(
                    "InvalidApiVersionParameter",
                    f"api-version {query.get('api-version')!r} is not supported; use {API_VERSION}",
                ),
            )
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return Response(
                    400, shapes.error("InvalidRequestContent", "the request body is not valid JSON")
                )
        mutating = method in ("POST", "PUT", "DELETE")
        if mutating:
            sim.request_log.append({"method": method, "route": name, "path": url.path, "body": body})
        fault = sim.injector.draw()
        if fault:
            headers_out = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            if mutating:
                self._audit_request(
                    name,
                    args,
                    body,
                    outcome="throttled" if fault.status == 429 else "fault",
                    status=fault.status,
                    code=fault.code,
                )
            return Response(fault.status, shapes.error(fault.code, fault.message), headers_out)
        host = {k.lower(): v for k, v in headers.items()}.get("host")
        base = f"https://{host}" if host else sim.endpoint
        with sim.engine.lock:
            sim.engine.tick()
            try:
                return getattr(self, f"_h_{route.handler}")(
                    args=args, query=query, body=body, path=url.path, base=base, name=name
                )
            except SimError as exc:
                if mutating:
                    self._audit_request(
                        name,
                        args,
                        body,
                        outcome="refused",
                        status=exc.status,
                        code=exc.code,
                        message=exc.message,
                    )
                return Response(exc.status, shapes.error(exc.code, exc.message, exc.details))

    def _compute_refusal(self, query: dict) -> Response | None:
        """What a compute request is answered instead of its resource: a wrong api-version, or a fault."""
        if query.get("api-version") != compute.COMPUTE_API_VERSION:
            return Response(
                400,
                shapes.error(
                    "InvalidApiVersionParameter",
                    f"api-version {query.get('api-version')!r} is not supported for Microsoft.Compute here; "
                    f"use {compute.COMPUTE_API_VERSION}",
                ),
            )
        fault = self.injector.draw()
        if fault:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return Response(fault.status, shapes.error(fault.code, fault.message), headers)
        return None

    def _compute_vms(self, m: re.Match, query: dict, base: str, path: str) -> Response:
        """``VirtualMachines_ListAll`` with ``statusOnly=true``: every Azure VM of the subscription with its
        instance view (power state), in pages."""
        if m.group("sub").lower() != self.estate.vault.subscription_id.lower():
            return Response(
                404, shapes.error("SubscriptionNotFound", f"Subscription {m.group('sub')} not found")
            )
        if (query.get("statusOnly") or "").lower() != "true":
            return Response(400, shapes.error("InvalidParameter", "only statusOnly=true listings are served"))
        try:
            skip = int(query.get("skipToken") or 0)
        except ValueError:
            return Response(400, shapes.error("InvalidSkipToken", "skipToken must be an integer"))
        refused = self._compute_refusal(query)
        if refused is not None:
            return refused
        with self.engine.lock:
            self.engine.tick()
            vms = sorted(compute.azure_vms(self.engine).items())[skip : skip + self.page_size + 1]
            body: dict = {
                "value": [
                    compute.virtual_machine(self.engine, it, kind, expand=True) for _, (it, kind) in vms
                ]
            }
        if len(vms) > self.page_size:
            body["value"].pop()
            body["nextLink"] = (
                f"{base}{path}?api-version={compute.COMPUTE_API_VERSION}&statusOnly=true"
                f"&skipToken={skip + self.page_size}"
            )
        return Response(200, body)

    def _compute_vm(self, m: re.Match, query: dict) -> Response:
        """``VirtualMachines_Get`` (compute api-version :data:`compute.COMPUTE_API_VERSION`)."""
        v, name = self.estate.vault, m.group("vm")
        if (m.group("sub").lower(), m.group("rg").lower()) != (
            v.subscription_id.lower(),
            v.resource_group.lower(),
        ):
            return Response(
                404,
                shapes.error(
                    "ResourceGroupNotFound", f"Resource group '{m.group('rg')}' could not be found."
                ),
            )
        expand = query.get("$expand")
        if expand not in (None, "instanceView"):
            return Response(400, shapes.error("InvalidParameter", f"$expand {expand!r} is not supported"))
        refused = self._compute_refusal(query)
        if refused is not None:
            return refused
        with self.engine.lock:
            self.engine.tick()
            found = compute.azure_vms(self.engine).get(name.lower())
            if found is None:
                return Response(
                    404,
                    shapes.error(
                        "ResourceNotFound",
                        f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group "
                        f"'{m.group('rg')}' was not found.",
                    ),
                )
            it, kind = found
            return Response(200, compute.virtual_machine(self.engine, it, kind, expand=expand is not None))

    # -- helpers ---------------------------------------------------------------------------------------------
    def _page(
        self, values: list, query: dict, path: str, base: str, render: Callable | None = None
    ) -> Response:
        """One page of ``values`` (rendered with ``render`` when given: only the page is rendered)."""
        try:
            skip = int(query.get("skipToken") or 0)
        except ValueError:
            return Response(400, shapes.error("InvalidSkipToken", "skipToken must be an integer"))
        size = self.page_size
        page = values[skip : skip + size]
        body: dict = {"value": [render(v) for v in page] if render else page}
        if skip + size < len(values):
            link = f"{base}{path}?api-version={API_VERSION}&skipToken={skip + size}"
            if "$filter" in query:
                link += "&$filter=" + quote(query["$filter"], safe="")
            body["nextLink"] = link
        return Response(200, body)

    def _item(self, args) -> Item:
        return fabrics.item_in(self.engine, args[0], args[1], args[2])

    def _lro(self, job, base: str, path: str) -> Response:
        engine = self.engine
        loc = f"{base}{path}/operationresults/{job.name}?api-version={API_VERSION}"
        # rounded up: Retry-After is whole seconds, and polling before the job ends costs a poll interval
        retry = math.ceil(self.clock.real_seconds(job.remaining(engine.clock.now())))
        return Response(202, None, {"Location": loc, "Retry-After": str(retry)})

    def _audit_request(self, name: str, args, body, **fields) -> None:
        sim = self
        if name.endswith("_Create"):
            op, method = "createRecoveryPlan", "PUT"
        elif name.endswith("_Delete"):
            op, method = "deleteRecoveryPlan", "DELETE"
        else:
            op, method = args[-1], "POST"
        rec: dict = {"event": "request", "method": method, "operation": op}
        props = (body or {}).get("properties") or {}
        rec["direction"] = props.get("failoverDirection")
        psd = props.get("providerSpecificDetails")
        if isinstance(psd, dict):
            rec["recovery_point_type"] = psd.get("recoveryPointType")
            rec["provider"] = psd.get("instanceType")
        elif isinstance(psd, list) and psd:
            rec["recovery_point_type"] = ",".join(
                str(p.get("recoveryPointType")) for p in psd if isinstance(p, dict)
            )
            rec["provider"] = ",".join(str(p.get("instanceType")) for p in psd if isinstance(p, dict))
        if name.startswith("ReplicationProtectedItems_"):
            it = sim.engine.item_by_name(args[2])
            rec.update(target="item", item=args[2], vm=it.vm if it else None)
        else:
            rec.update(target="plan", plan=args[0])
            plan = sim.engine.plans.get(args[0])
            if plan:
                rec["vms"] = list(plan.items)
        rec.update(fields)
        sim.audit.record(time=sim.clock.now(), **rec)

    def _audit_job(self, name, args, body, job) -> None:
        points = {vm: p for vm, p in job.points.items()}
        fields: dict = {"outcome": "accepted", "status": 202, "job": job.name}
        if job.resource[0] == "item" and points:
            p = next(iter(points.values()))
            fields.update(
                recovery_point=p.name,
                recovery_point_time=shapes.iso(p.time),
                recovery_point_consistency=p.type,
            )
        elif points:
            fields["recovery_points"] = {
                vm: {"name": p.name, "time": shapes.iso(p.time), "consistency": p.type}
                for vm, p in points.items()
            }
        self._audit_request(name, args, body, **fields)

    # -- handlers --------------------------------------------------------------------------------------------
    def _stacks(self, args) -> list[fabrics.Stack]:
        """The stacks a list covers: the fabric named in the path, or every one."""
        return [fabrics.stack(self.engine, args[0])] if args else fabrics.stacks(self.engine)

    def _h_fabrics(self, query, path, base, **_):
        return self._page([s.render_fabric(self.engine) for s in self._stacks(())], query, path, base)

    def _h_fabric(self, args, **_):
        return Response(200, fabrics.stack(self.engine, args[0]).render_fabric(self.engine))

    def _h_vcenters(self, args, query, path, base, **_):
        return self._page([s.render_vcenter(self.engine) for s in self._stacks(args)], query, path, base)

    def _h_vcenter(self, args, **_):
        s = fabrics.stack(self.engine, args[0])
        if args[1].lower() != self.estate.vcenter.name.lower():
            raise SimError(404, "NotFound", f"vCenter {args[1]!r} not found")
        return Response(200, s.render_vcenter(self.engine))

    def _h_containers(self, args, query, path, base, **_):
        return self._page([s.render_container(self.engine) for s in self._stacks(args)], query, path, base)

    def _h_container(self, args, **_):
        return Response(200, fabrics.stack(self.engine, args[0], args[1]).render_container(self.engine))

    def _h_providers(self, args, query, path, base, **_):
        values = [p for s in self._stacks(args) for p in s.render_providers(self.engine)]
        return self._page(values, query, path, base)

    def _h_provider(self, args, **_):
        s = fabrics.stack(self.engine, args[0])
        found = [p for p in s.render_providers(self.engine) if p["name"].lower() == args[1].lower()]
        if not found:
            raise SimError(404, "NotFound", f"recovery services provider {args[1]!r} not found")
        return Response(200, found[0])

    def _h_items(self, args, query, path, base, **_):
        e = self.engine
        its = e.item_list()
        if args:
            s = fabrics.stack(e, args[0], args[1])
            its = [it for it in its if e.vm_of(it).provider == s.provider]
        return self._page(its, query, path, base, lambda it: shapes.item(e, it))

    def _h_appliances(self, query, path, base, **_):
        return self._page(rcm_shapes.appliances(self.engine), query, path, base)

    def _h_policies(self, query, path, base, **_):
        return self._page(self._policies(), query, path, base)

    def _h_policy(self, args, **_):
        found = [p for p in self._policies() if p["name"].lower() == args[0].lower()]
        if not found:
            raise SimError(404, "NotFound", f"replication policy {args[0]!r} not found")
        return Response(200, found[0])

    def _policies(self) -> list[dict]:
        e = self.engine
        return rcm_shapes.policies(e, classic=e.serves_classic, modernized=e.serves_modernized)

    def _h_item(self, args, **_):
        return Response(200, shapes.item(self.engine, self._item(args)))

    def _h_item_action(self, args, body, path, base, name, **_):
        it = self._item(args)
        e = self.engine
        job = e.item_action(args[3], it, body or {})
        self._audit_job(name, args, body, job)
        return self._lro(job, base, path.rsplit("/", 1)[0])

    def _h_item_result(self, args, base, path, **_):
        it = self._item(args)
        return self._result(
            args[3], base, path.rsplit("/operationresults/", 1)[0], lambda e: shapes.item(e, it)
        )

    def _result(self, job_name: str, base: str, resource_path: str, render: Callable) -> Response:
        e = self.engine
        job = e.jobs.get(job_name)
        if job is None:
            raise SimError(404, "NotFound", f"operation {job_name!r} not found")
        if job.running:
            return self._lro(job, base, resource_path)
        if job.state == "Succeeded":
            return Response(200, render(e))
        code, message, _ = job.errors[0] if job.errors else ("JobFailed", f"job {job.name} {job.state}", "")
        return Response(400, shapes.error(code, message, [(c, m) for c, m, _ in job.errors]))

    def _h_points(self, args, query, path, base, **_):
        it = self._item(args)
        e = self.engine
        return self._page(e.points(it), query, path, base, lambda p: shapes.point(e, it, p))

    def _h_point(self, args, **_):
        it = self._item(args)
        e = self.engine
        p = e.find_point(it, args[3])
        if p is None:
            raise SimError(404, "NotFound", f"recovery point {args[3]!r} not found for VM '{it.vm}'")
        return Response(200, shapes.point(e, it, p))

    def _h_jobs(self, query, path, base, **_):
        e = self.engine
        jobs = sorted(e.jobs.values(), key=lambda j: (j.start, j.seq), reverse=True)
        flt = query.get("$filter")
        if flt:
            jobs = [j for j in jobs if _job_matches(j, _parse_filter(flt))]
        return self._page(jobs, query, path, base, lambda j: shapes.job(e, j))

    def _h_job(self, args, **_):
        e = self.engine
        return Response(200, shapes.job(e, e.job_status(args[0])))

    def _h_plans(self, query, path, base, **_):
        e = self.engine
        return self._page([shapes.plan(e, p) for p in e.plans.values()], query, path, base)

    def _h_plan(self, args, **_):
        e = self.engine
        return Response(200, shapes.plan(e, e.plan(args[0])))

    def _h_plan_create(self, args, body, name, **_):
        e = self.engine
        plan = e.create_plan(args[0], body or {})
        self._audit_request(name, args, body, outcome="accepted", status=200, vms=list(plan.items))
        return Response(200, shapes.plan(e, plan))

    def _h_plan_delete(self, args, body, name, **_):
        e = self.engine
        plan = e.plan(args[0])
        if plan.current_job and e.jobs[plan.current_job].running:
            raise SimError(409, "OperationInProgress", f"recovery plan {plan.name!r} has a job running")
        del e.plans[plan.name]
        self._audit_request(name, args, body, outcome="accepted", status=204)
        return Response(204)

    def _h_plan_action(self, args, body, path, base, name, **_):
        e = self.engine
        job = e.plan_action(args[1], e.plan(args[0]), body or {})
        self._audit_job(name, args, body, job)
        return self._lro(job, base, path.rsplit("/", 1)[0])

    def _h_plan_result(self, args, base, path, **_):
        e = self.engine
        plan = e.plan(args[0])
        return self._result(
            args[1], base, path.rsplit("/operationresults/", 1)[0], lambda e_: shapes.plan(e_, plan)
        )


def _op_id(action: str) -> str:
    return {"reProtect": "Reprotect"}.get(action, action[0].upper() + action[1:])


def _parse_filter(flt: str) -> dict[str, str]:
    out = {}
    for clause in re.split(r"\s+and\s+", flt.strip(), flags=re.IGNORECASE):
        m = _FILTER_CLAUSE.match(clause)
        if not m:
            raise SimError(
                400,
                "InvalidFilter",
                f"unsupported $filter clause {clause!r}: use \"name eq 'value'\" joined by 'and'",
            )
        key = m.group(1)
        known = {
            "starttime",
            "endtime",
            "jobstatus",
            "jobname",
            "affectedobjecttypes",
            "fabricid",
            "joboutputtype",
            "timezoneoffset",
            "targetobjectname",
            "scenarioname",
            "targetobjectid",
        }
        if key.lower() not in known:
            raise SimError(400, "InvalidFilter", f"unsupported $filter field {key!r}")
        out[key.lower()] = m.group(2)
    return out


def _job_matches(job, flt: dict[str, str]) -> bool:
    def when(s: str) -> datetime:
        try:
            return datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise SimError(400, "InvalidFilter", f"invalid time {s!r} in $filter") from None

    if "starttime" in flt and job.start < when(flt["starttime"]):
        return False
    if "endtime" in flt and job.start > when(flt["endtime"]):
        return False
    if "jobstatus" in flt and job.state.lower() not in {
        s.strip().lower() for s in flt["jobstatus"].split(",")
    }:
        return False
    for key, value in (
        ("jobname", job.scenario),
        ("scenarioname", job.scenario),
        ("targetobjectname", job.target_name),
        ("targetobjectid", job.target_id),
    ):
        if key in flt and flt[key].lower() != value.lower():
            return False
    types = {s.strip().lower() for s in flt.get("affectedobjecttypes", "").split(",") if s.strip()}
    return not types or job.target_type.lower() in types
