"""The running simulator: HTTPS server thread + engine + on-prem site, as a context manager."""

from __future__ import annotations

import logging
import secrets
import shutil
import ssl
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drplan.sim.audit import Audit
from drplan.sim.clock import SimClock
from drplan.sim.estate import Estate, Faults
from drplan.sim.faults import FaultInjector
from drplan.sim.lifecycle import Engine
from drplan.sim.onprem import SimulatedSite
from drplan.sim.server import Api, SimHTTPServer
from drplan.sim.tls import make_certificates

log = logging.getLogger(__name__)


class _LiveFaults(FaultInjector):
    """Reads ``estate.faults`` at each draw, so tests may replace the whole Faults object."""

    def __init__(self, estate: Estate):
        self._estate = estate
        super().__init__(estate.faults)

    @property
    def faults(self) -> Faults:
        return self._estate.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        pass


class Simulator(Api):
    """Everything a test or ``--simulate`` run needs: endpoint, CA file, bearer token, clock, audit, on-prem
    site.

    Every request (ARM and ``/drplan-sim/...``) must carry ``Authorization: Bearer <token>``: ``token`` as
    given, or one generated here (``self.token``); anything else gets ARM's ``401``."""

    def __init__(
        self,
        estate: Estate,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 600.0,
        clock: SimClock | None = None,
        page_size: int = 100,
        audit_path: str | Path | None = None,
        token: str | None = None,
    ):
        if token is not None and not token.strip():
            raise ValueError("the simulator's bearer token must not be empty")
        self.token = token or secrets.token_urlsafe(24)
        self.estate = estate
        self.clock = clock or SimClock(estate.start_time, speed=speed)
        self.audit = Audit(audit_path)
        self.engine = Engine(estate, self.clock, audit=self.audit)
        self.injector = _LiveFaults(estate)
        self.page_size = page_size
        self.request_counts: Counter[tuple[str, str]] = Counter()
        self.request_log: list[dict] = []
        self._host, self._port = host, port
        self._tmp: str | None = None
        self._httpd: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""
        self.ca_file = ""

    # -- the public handle -----------------------------------------------------------------------------------
    @property
    def subscription_id(self) -> str:
        return self.estate.vault.subscription_id

    @property
    def resource_group(self) -> str:
        return self.estate.vault.resource_group

    @property
    def vault(self) -> str:
        return self.estate.vault.name

    @property
    def onprem(self) -> SimulatedSite:
        return self.engine.site

    @property
    def faults(self) -> Faults:
        return self.estate.faults

    def reset_counts(self) -> None:
        self.request_counts.clear()

    def env(self) -> dict[str, str]:
        """Environment a separate process needs to reach this simulator."""
        return {
            "DRPLAN_SIM_ENDPOINT": self.endpoint,
            "DRPLAN_SIM_CA_FILE": self.ca_file,
            "DRPLAN_SIM_TOKEN": self.token,
            "DRPLAN_SIM_SUBSCRIPTION_ID": self.subscription_id,
            "DRPLAN_SIM_RESOURCE_GROUP": self.resource_group,
            "DRPLAN_SIM_VAULT": self.vault,
            "DRPLAN_SIM_SPEED": f"{self.clock.speed:g}",
            "REQUESTS_CA_BUNDLE": self.ca_file,
        }

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> Simulator:
        self._tmp = tempfile.mkdtemp(prefix="drplan-sim-")
        ca, cert, key = make_certificates(self._tmp, self._host)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        self._httpd = SimHTTPServer((self._host, self._port), self)
        self._httpd.socket = ctx.wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        port = self._httpd.server_address[1]
        self.endpoint = f"https://{self._host}:{port}"
        self.ca_file = str(ca)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"drplan-sim-{port}",
            daemon=True,
        )
        self._thread.start()
        log.info("simulator listening on %s (speed %g)", self.endpoint, self.clock.speed)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Simulator:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def start_simulator(
    estate: Estate,
    *,
    port: int = 0,
    speed: float = 600.0,
    clock: SimClock | None = None,
    page_size: int = 100,
    audit_path: str | Path | None = None,
    host: str = "127.0.0.1",
    token: str | None = None,
) -> Iterator[Simulator]:
    """Serve ``estate`` over HTTPS on ``host:port`` (a free port by default) until the block ends; requests
    must carry ``token`` (generated when not given: ``sim.token``)."""
    sim = Simulator(
        estate,
        host=host,
        port=port,
        speed=speed,
        clock=clock,
        page_size=page_size,
        audit_path=audit_path,
        token=token,
    )
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
