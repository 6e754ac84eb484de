"""How the SDK client is built: credential, TLS, one retry policy, bounded polling, all on drplan's clock."""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline.policies import RequestHistory, RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.pipeline.transport._requests_basic import BiggerBlockSizeHTTPAdapter
from azure.mgmt.core.polling.arm_polling import ARMPolling
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

from drplan.asr.pacing import RequestPacing, hooks
from drplan.clock import REAL_CLOCK, Clock

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: 429s a read may meet before it fails, each after ARM's Retry-After (apart from the retry budget of
#: other transient errors): a large run waits out ARM's throttling rather than failing a unit on it
THROTTLE_RETRIES = 30


#: kept-alive HTTPS connections per host (urllib3's default is 10): at least the run's task-pool bound, so
#: concurrent steps reuse connections instead of paying a TLS handshake each (callers pass their bound)
DEFAULT_POOL_SIZE = 64


class PooledRequestsTransport(RequestsTransport):
    """azure-core's requests transport with a connection pool of ``pool_maxsize`` per host (TLS unchanged)."""

    def __init__(self, *, pool_maxsize: int, **kwargs: Any):
        super().__init__(**kwargs)
        self._pool_maxsize = pool_maxsize

    def _init_session(self, session) -> None:
        super()._init_session(session)
        from urllib3.util.retry import Retry

        adapter = BiggerBlockSizeHTTPAdapter(
            max_retries=Retry(total=False, redirect=False, raise_on_status=False),
            pool_connections=4,
            pool_maxsize=self._pool_maxsize,
        )
        for prefix in self._protocols:
            session.mount(prefix, adapter)


class StaticTokenCredential:
    """A fixed bearer token: the simulator's (``drplan sim start`` prints it; an embedded simulator has it as
    ``sim.token``). The simulator refuses any other with ARM's 401. Never used against a real vault."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


class ClockRetryPolicy(RetryPolicy):
    """azure-core's retry, limited to transient statuses (408/429/5xx), sleeping on drplan's clock.

    Honours ``Retry-After``; never retries 4xx such as 401/403/404/409 even when they carry ``Retry-After``.
    """

    def __init__(self, *, clock: Clock = REAL_CLOCK, **kwargs: Any):
        kwargs.setdefault("retry_total", 6)
        # azure-core caps each kind of retry separately (status, connect, read: 3 each by default), so a
        # budget of 6 stated in retry_total alone is really 3 for a 429/503: state it for every kind
        for kind in ("retry_status", "retry_connect", "retry_read"):
            kwargs.setdefault(kind, kwargs["retry_total"])
        kwargs.setdefault("retry_backoff_factor", 1.0)
        kwargs.setdefault("retry_backoff_max", 60)
        super().__init__(**kwargs)
        self._clock = clock

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)
        settings["throttled"] = THROTTLE_RETRIES if settings["total"] > 0 else 0
        return settings

    def increment(self, settings, response=None, error=None) -> bool:
        """A 429 of a retried request draws on its own budget (:data:`THROTTLE_RETRIES`), not on
        ``retry_total``: ARM refused it before doing anything, and said when to come back."""
        status = getattr(getattr(response, "http_response", None), "status_code", None)
        if error is None and status == 429 and settings["throttled"] > 0:
            settings["throttled"] -= 1
            settings["history"].append(
                RequestHistory(response.http_request, http_response=response.http_response)
            )
            return True
        return super().increment(settings, response=response, error=error)

    def is_retry(self, settings, response) -> bool:
        if response.http_response.status_code not in TRANSIENT_STATUS:
            return False
        return super().is_retry(settings, response)

    def _sleep_for_retry(self, response, transport) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after:
            self._clock.sleep(min(float(retry_after), self.backoff_max))
            return True
        return False

    def _sleep_backoff(self, settings, transport) -> None:
        backoff = self.get_backoff_time(settings)
        if backoff > 0:
            self._clock.sleep(backoff)


class BoundedARMPolling(ARMPolling):
    """ARM polling: the server's ``Retry-After`` capped at ``max_delay``, slept on drplan's clock.

    The SDK's default is 30 s whenever the server sends no ``Retry-After``; a 2-second job must not wait that.
    """

    def __init__(self, max_delay: float, *, clock: Clock = REAL_CLOCK, **kwargs: Any):
        super().__init__(max_delay, **kwargs)
        self._max_delay = max_delay
        self._clock = clock

    def _extract_delay(self) -> float:
        return max(0.0, min(super()._extract_delay(), self._max_delay))

    def _sleep(self, delay: float) -> None:
        self._clock.sleep(delay)


def build_sdk_client(
    subscription_id: str,
    *,
    endpoint: str | None = None,
    ca_file: str | None = None,
    credential: Any = None,
    clock: Clock = REAL_CLOCK,
    polling_interval: float = 10.0,
    retry_total: int = 6,
    pool_maxsize: int | None = None,
    **kwargs: Any,
) -> SiteRecoveryManagementClient:
    """The SDK client: a real vault by default (``DefaultAzureCredential``: environment service principal,
    managed identity, Azure CLI ...), or ``endpoint`` + ``ca_file`` for the simulator, whose token the caller
    passes as ``credential`` (:class:`StaticTokenCredential`; without one no token is sent and the simulator
    answers 401).
    TLS verification always stays on; ``ca_file`` only changes which CA is trusted. HTTPS connections are
    pooled (``pool_maxsize``, default :data:`DEFAULT_POOL_SIZE`)."""
    credential, kwargs = client_options(
        endpoint, ca_file, credential, clock, retry_total=retry_total, pool_maxsize=pool_maxsize, **kwargs
    )
    return SiteRecoveryManagementClient(
        credential, subscription_id, polling_interval=polling_interval, **kwargs
    )


def client_options(
    endpoint: str | None,
    ca_file: str | None,
    credential: Any,
    clock: Clock,
    *,
    retry_total: int = 6,
    pool_maxsize: int | None = None,
    **kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """The credential and the client keyword arguments every drplan SDK client shares: endpoint, TLS (CA
    file; verification always on), pooled transport, the transient-only retry policy on drplan's clock and
    the pacing at ARM's request budget (``pacing``: a :class:`~drplan.asr.pacing.RequestPacing` to share)."""
    if credential is None:
        if endpoint is not None:
            credential = StaticTokenCredential("")
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
    if endpoint is not None:
        kwargs["base_url"] = endpoint.rstrip("/")
    if ca_file is not None:
        kwargs["connection_verify"] = str(ca_file)
    if "transport" not in kwargs:
        kwargs["transport"] = PooledRequestsTransport(
            pool_maxsize=pool_maxsize or DEFAULT_POOL_SIZE,
            connection_verify=kwargs.get("connection_verify", True),
        )
    kwargs["retry_policy"] = ClockRetryPolicy(clock=clock, retry_total=retry_total)
    # after the retry policy, so every attempt waits its turn at ARM's bucket (the same pacing for every
    # client of the vault: they spend one subscription's budget)
    kwargs["custom_hook_policy"] = kwargs.pop("pacing", None) or RequestPacing(clock=clock, **hooks(kwargs))
    return credential, kwargs
