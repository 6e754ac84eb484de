"""Remote access to a running simulator's on-prem site and clock, for flows in another process.

A flow process that must outlive nothing (the kill-and-resume test kills it; ``drplan sim start`` serves
the estate from another terminal) reaches the simulated vCenter through two small JSON routes served next
to the ARM API on the same HTTPS port (TLS and the simulator's bearer token, as for the ARM routes):

* ``GET  /drplan-sim/clock``            → ``{"now": ISO, "monotonic": s, "speed": x}``
* ``POST /drplan-sim/onprem/read_state`` ``{"vms": [...], "port_groups": [...], "datastores": [...]}``
  → a :class:`~drplan.observed.SiteState` as JSON

:mod:`drplan.sim.control` answers them; :class:`RemoteSite` implements :class:`drplan.run.ports.OnPremSite`
over them; :class:`RemoteClock` is the simulator's clock seen from outside (sleeps ``seconds / speed`` of
wall time).
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from datetime import datetime, timedelta

from drplan.errors import BootTimeout, VCenterPermissionError, VCenterUnreachable
from drplan.observed import SiteState, VmState
from drplan.recovery.site_checks import boot_missing
from drplan.sim.control import PREFIX

__all__ = ["PREFIX", "RemoteClock", "RemoteSite"]


# -- client side -----------------------------------------------------------------------------------------
class _Http:
    """JSON calls to the simulator over one kept-alive HTTPS connection per thread (TLS verified), with the
    simulator's bearer token."""

    def __init__(self, endpoint: str, ca_file: str | None, token: str, timeout: float = 30.0):
        self.endpoint = endpoint.rstrip("/")
        self._token = token
        url = urllib.parse.urlsplit(self.endpoint)
        self._host, self._port, self._base = url.hostname or "127.0.0.1", url.port, url.path.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout, context=self.ctx)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def call(self, method: str, route: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        for attempt in (1, 2):  # a kept-alive connection the server closed is reopened once
            try:
                conn = self._connection()
                conn.request(method, self._base + PREFIX + route, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, OSError) as exc:
                self._drop()
                if attempt == 1 and isinstance(
                    exc,
                    (
                        http.client.RemoteDisconnected,
                        ConnectionResetError,
                        BrokenPipeError,
                        http.client.CannotSendRequest,
                    ),
                ):
                    continue
                raise VCenterUnreachable(
                    f"simulator at {self.endpoint} unreachable ({route}): {exc}"
                ) from None
            if resp.will_close:
                self._drop()
            if resp.status == 401:
                raise VCenterPermissionError(
                    f"simulator at {self.endpoint} refused the bearer token ({route}): give the token "
                    "`drplan sim start` printed (DRPLAN_SIM_TOKEN)"
                )
            if resp.status >= 400:
                raise VCenterUnreachable(
                    f"simulator at {self.endpoint} answered {resp.status} ({route}): {raw[:200]!r}"
                )
            return json.loads(raw or b"{}")
        raise AssertionError("unreachable")


class RemoteClock:
    """The simulator's clock seen from another process: read once (now, monotonic, speed), then computed
    locally from this process's monotonic clock; re-read at most every ``resync`` wall seconds so that an
    ``advance()`` or a speed change in the simulator shows up. Sleeping takes ``seconds / speed`` of wall
    time."""

    def __init__(self, http: _Http, *, resync: float = 1.0):
        self._http = http
        self._resync = resync
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._sync()

    def _sync(self) -> None:
        data = self._http.call("GET", "clock")
        self._wall0 = time.monotonic()
        self._mono0 = float(data["monotonic"])
        self._now0 = datetime.fromisoformat(data["now"])
        self.speed = float(data["speed"])

    def _read(self) -> tuple[float, datetime]:
        """(monotonic, now), computed from the last sync (re-synced first when older than ``resync``)."""
        with self._lock:
            if time.monotonic() - self._wall0 >= self._resync:
                self._sync()
            elapsed = (time.monotonic() - self._wall0) * self.speed
            self._last = max(self._last, self._mono0 + elapsed)  # never backwards across a re-sync
            return self._last, self._now0 + timedelta(seconds=elapsed)

    def now(self) -> datetime:
        return self._read()[1]

    def monotonic(self) -> float:
        return self._read()[0]

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)


class RemoteSite:
    """:class:`drplan.run.ports.OnPremSite` for a simulator running in another process (``token``: the
    bearer token it was started with)."""

    def __init__(self, endpoint: str, *, token: str, ca_file: str | None = None):
        self._http = _Http(endpoint, ca_file, token)
        self.clock = RemoteClock(self._http)
        self.closed = False

    def read_state(
        self, vms: Sequence[str], *, port_groups: Sequence[str] = (), datastores: Sequence[str] = ()
    ) -> SiteState:
        data = self._http.call(
            "POST",
            "onprem/read_state",
            {"vms": list(vms), "port_groups": list(port_groups), "datastores": list(datastores)},
        )
        return SiteState(
            connected=data["connected"],
            vms={k: VmState(**v) for k, v in data["vms"].items()},
            port_groups=frozenset(data["port_groups"]),
            datastore_free_bytes=dict(data["datastore_free_bytes"]),
        )

    def wait_for_boot(
        self, vm: str, *, timeout: float, require_tools: bool = True, require_ip: bool = True
    ) -> VmState:
        deadline = self.clock.monotonic() + timeout
        step = max(1.0, min(15.0, timeout / 50))
        while True:
            site = self.read_state([vm])
            if not site.connected:
                raise VCenterUnreachable(f"vCenter is not connected (waiting for {vm} to boot)")
            state = site.vms[vm]
            missing = boot_missing(state, require_tools=require_tools, require_ip=require_ip)
            if not missing:
                return state
            if self.clock.monotonic() >= deadline:
                raise BootTimeout(
                    f"VM {vm} did not come up within {timeout:g}s (simulated): {'; '.join(missing)}"
                )
            self.clock.sleep(step)

    def close(self) -> None:
        self.closed = True
