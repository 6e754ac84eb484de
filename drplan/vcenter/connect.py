"""Connecting to vCenter: TLS context, password resolution, login, error mapping, SOAP call counting.

TLS verification is always on unless ``insecure=True`` is passed explicitly (logged as a warning). We always
hand pyVmomi our own :class:`ssl.SSLContext`: given none, ``pyVim.connect`` silently switches to an
*unverified* context for ``localhost``/``127.0.0.1``/``::1``.

The password is never logged and never part of an error message.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyVim import connect as pyvim_connect
from pyVmomi import vim, vmodl

from drplan.errors import (
    VCenterError,
    VCenterLoginError,
    VCenterPermissionError,
    VCenterTlsError,
    VCenterUnreachable,
)
from drplan.plan.schema import SecretRef

log = logging.getLogger(__name__)

_NO_PASSWORD = "no vCenter password: set vcenter.password.env or vcenter.password.prefect_secret"

#: Socket timeout for every SOAP call; longer than the longest server-side wait we ask for.
HTTP_TIMEOUT = 120
#: The longest server-side ``WaitForUpdatesEx`` wait we request in one call.
MAX_SERVER_WAIT = 60


def ssl_context(ca_file: str | None = None, *, insecure: bool = False) -> ssl.SSLContext:
    """A TLS context that verifies vCenter's certificate (against ``ca_file`` or the system store).

    ``insecure=True`` turns verification off and logs a warning; it is never the default.
    """
    if insecure:
        log.warning(
            "TLS verification of vCenter's certificate is OFF (insecure=True): "
            "anyone on the network path can impersonate vCenter"
        )
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_file is not None and not os.path.isfile(ca_file):
        raise VCenterTlsError(f"CA file {ca_file!r} does not exist")
    return ssl.create_default_context(cafile=ca_file)


def resolve_password(
    ref: SecretRef | None = None,
    *,
    password: str | None = None,
    secret_loader: Callable[[str], str] | None = None,
) -> str:
    """The vCenter password: ``password`` as given by the caller, else the plan's :class:`SecretRef`.

    ``env``: read from that environment variable. ``prefect_secret``: the library never imports Prefect,
    so the caller either resolves the block itself and passes ``password``, or passes ``secret_loader``
    (in a Prefect task: ``lambda name: Secret.load(name).get()``).
    """
    if password is not None:
        return password
    if ref is not None and ref.env:
        value = os.environ.get(ref.env)
        if not value:
            raise VCenterLoginError(f"environment variable {ref.env} (vcenter.password.env) is not set")
        return value
    if ref is not None and ref.prefect_secret:
        if secret_loader is None:
            raise VCenterLoginError(
                f"vcenter.password.prefect_secret {ref.prefect_secret!r} needs Prefect to resolve it: "
                "run inside a Prefect flow, or use vcenter.password.env"
            )
        try:
            value = secret_loader(ref.prefect_secret)
        except Exception as exc:
            raise VCenterLoginError(
                f"cannot load Prefect Secret block {ref.prefect_secret!r}: {type(exc).__name__}"
            ) from exc
        if not isinstance(value, str) or not value:
            raise VCenterLoginError(f"Prefect Secret block {ref.prefect_secret!r} holds no password")
        return value
    raise VCenterLoginError(_NO_PASSWORD)


@dataclass
class SoapCounter:
    """Counts SOAP round trips on one connection, per method (``RetrievePropertiesEx``, ``Fetch``...)."""

    calls: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def install(self, stub: Any) -> None:
        """Wrap ``stub.InvokeMethod`` (property fetches go through it too, as ``Fetch``)."""
        inner = stub.InvokeMethod

        def invoke(mo, info, args, *rest, **kw):
            self.calls[getattr(info, "wsdlName", None) or info.name] += 1
            return inner(mo, info, args, *rest, **kw)

        stub.InvokeMethod = invoke


def map_error(exc: BaseException, where: str, *, user: str = "") -> VCenterError:
    """Map a pyVmomi/socket/TLS exception to drplan's error classes, with a message naming ``where``."""
    if isinstance(exc, VCenterError):
        return exc
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
        return VCenterUnreachable(f"{where}: vCenter closed the connection ({type(exc).__name__})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", "") or exc
        return VCenterTlsError(
            f"{where}: TLS certificate verification failed ({why}): set vcenter.ca_file "
            "to the CA that signed vCenter's certificate (or, only for a lab, insecure: true)"
        )
    if isinstance(exc, ssl.SSLError):
        hint = " (is the endpoint speaking plain HTTP?)" if "WRONG_VERSION_NUMBER" in str(exc) else ""
        why = getattr(exc, "reason", None) or exc
        return VCenterTlsError(f"{where}: TLS handshake failed: {why}{hint}")
    if isinstance(exc, vim.fault.InvalidLogin):
        return VCenterLoginError(
            f"{where}: vCenter rejected the login of user {user!r}: wrong user name or password"
        )
    if isinstance(exc, vim.fault.NotAuthenticated):
        return VCenterLoginError(f"{where}: the vCenter session is not authenticated (expired or logged out)")
    if isinstance(exc, vim.fault.NoPermission):
        priv = getattr(exc, "privilegeId", "") or ""
        return VCenterPermissionError(
            f"{where}: user {user!r} lacks permission" + (f" {priv}" if priv else "") + " in vCenter"
        )
    if isinstance(exc, vim.fault.HostConnectFault):
        return VCenterUnreachable(f"{where}: cannot reach vCenter: {getattr(exc, 'msg', None)}")
    if isinstance(exc, socket.timeout | TimeoutError):
        return VCenterUnreachable(f"{where}: vCenter did not answer in time")
    if isinstance(exc, ConnectionRefusedError):
        return VCenterUnreachable(f"{where}: connection refused: is vCenter running and the port right?")
    if isinstance(exc, socket.gaierror):
        return VCenterUnreachable(f"{where}: cannot resolve the vCenter host name: {exc.strerror}")
    if isinstance(exc, OSError | http.client.HTTPException):
        return VCenterUnreachable(f"{where}: lost the connection to vCenter: {type(exc).__name__}: {exc}")
    if isinstance(exc, vmodl.MethodFault):
        return VCenterError(f"{where}: {type(exc).__name__.rsplit('.', 1)[-1]}: {getattr(exc, 'msg', None)}")
    return VCenterError(f"{where}: {type(exc).__name__}: {exc}")


@dataclass
class Connection:
    """A logged-in session: the service instance, its (cached) ServiceContent and the round-trip counter."""

    si: Any
    content: Any
    counter: SoapCounter
    host: str
    port: int
    user: str
    closed: bool = False

    @property
    def where(self) -> str:
        return f"vCenter {self.host}:{self.port}"

    def disconnect(self) -> None:
        """Log out and drop pooled sockets. Safe to call twice; never raises."""
        if self.closed:
            return
        self.closed = True
        try:
            self.content.sessionManager.Logout()
        except Exception as exc:  # the server may be gone already
            log.debug("logout from %s failed: %s", self.where, type(exc).__name__)
        with contextlib.suppress(Exception):
            self.si._stub.DropConnections()
        if pyvim_connect.GetSi() is self.si:
            pyvim_connect.SetSi(None)


def connect(
    host: str,
    port: int,
    user: str,
    password: str,
    *,
    ca_file: str | None = None,
    insecure: bool = False,
    counter: SoapCounter | None = None,
) -> Connection:
    """Log in to vCenter with TLS verification (unless ``insecure``); raise a mapped :class:`VCenterError`."""
    where = f"vCenter {host}:{port}"
    ctx = ssl_context(ca_file, insecure=insecure)
    log.info("connecting to %s as %s (TLS verification %s)", where, user, "off" if insecure else "on")
    try:
        si = pyvim_connect.SmartConnect(
            host=host,
            port=port,
            user=user,
            pwd=password,
            sslContext=ctx,
            disableSslCertValidation=False,
            httpConnectionTimeout=HTTP_TIMEOUT,
        )
    except Exception as exc:
        if type(exc) is Exception and "is down or is not a VIM server" in str(exc):
            raise VCenterUnreachable(
                f"{where}: answered, but is not a vSphere API endpoint (no /sdk/vimServiceVersions.xml)"
            ) from exc
        raise map_error(exc, f"connecting to {where}", user=user) from exc
    counter = counter or SoapCounter()
    counter.install(si._stub)
    try:
        content = si.RetrieveContent()
    except Exception as exc:
        raise map_error(exc, f"connecting to {where}", user=user) from exc
    return Connection(si=si, content=content, counter=counter, host=host, port=port, user=user)
