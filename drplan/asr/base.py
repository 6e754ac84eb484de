"""State and low-level helpers shared by the parts of :class:`drplan.asr.AsrClient`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError

from drplan.asr import convert
from drplan.asr.convert import job_name_from_location
from drplan.asr.errors import map_error
from drplan.asr.shared_reads import SharedReads
from drplan.asr.transport import THROTTLE_RETRIES, BoundedARMPolling
from drplan.clock import REAL_CLOCK, Clock
from drplan.errors import OperationInProgressError, TransientError
from drplan.observed import Job

log = logging.getLogger("drplan.asr")

WRITE_ATTEMPTS = 5  # a write that hit a transient error is re-issued at most this often (after a phase check)


class Started:
    """What the initial response of an ASR action told us: the job it created and the suggested poll delay."""

    __slots__ = ("job", "retry_after", "status")

    def __init__(self) -> None:
        self.job: str | None = None
        self.retry_after: float | None = None
        self.status: int | None = None

    def hook(self, pipeline_response: Any) -> None:
        """``raw_response_hook``: read the job id from the 202's ``Location`` (as Azure PowerShell does)."""
        response = pipeline_response.http_response
        if response.status_code not in (200, 201, 202):
            return
        self.status = response.status_code
        headers = response.headers
        self.job = job_name_from_location(headers.get("Location")) or job_name_from_location(
            headers.get("Azure-AsyncOperation")
        )
        try:
            self.retry_after = float(headers["Retry-After"]) if headers.get("Retry-After") else None
        except ValueError:
            self.retry_after = None


class AsrBase:
    """Holds the SDK client, the vault coordinates, the clock and the timing settings."""

    if TYPE_CHECKING:  # what the mixins of AsrClient call on one another (each defined by one of them)

        def item_state(self, *args: Any, **kwargs: Any) -> Any: ...
        def _get_item(self, *args: Any, **kwargs: Any) -> Any: ...
        def _list_container_pages(self, *args: Any, **kwargs: Any) -> Any: ...
        def _list_vault_pages(self, *args: Any, **kwargs: Any) -> Any: ...
        def item_states(self, *args: Any, **kwargs: Any) -> Any: ...
        def wait_job(self, *args: Any, **kwargs: Any) -> Any: ...
        def await_on_item(self, *args: Any, **kwargs: Any) -> Any: ...
        def inflight_job(self, *args: Any, **kwargs: Any) -> Any: ...
        def _running(self, *args: Any, **kwargs: Any) -> Any: ...
        def current(self, *args: Any, **kwargs: Any) -> Any: ...
        def _listed_inflight(self, *args: Any, **kwargs: Any) -> Any: ...
        def _settle(self, *args: Any, **kwargs: Any) -> Any: ...
        def failback(self, *args: Any, **kwargs: Any) -> Any: ...
        def commit(self, *args: Any, **kwargs: Any) -> Any: ...
        def test_failover(self, *args: Any, **kwargs: Any) -> Any: ...
        def test_failover_cleanup(self, *args: Any, **kwargs: Any) -> Any: ...
        def ensure_recovery_plan(self, *args: Any, **kwargs: Any) -> Any: ...
        def plan_failback(self, *args: Any, **kwargs: Any) -> Any: ...
        def plan_planned_failback(self, *args: Any, **kwargs: Any) -> Any: ...
        def plan_commit(self, *args: Any, **kwargs: Any) -> Any: ...
        def plan_cancel(self, *args: Any, **kwargs: Any) -> Any: ...
        def plan_test_failover(self, *args: Any, **kwargs: Any) -> Any: ...
        def plan_test_failover_cleanup(self, *args: Any, **kwargs: Any) -> Any: ...

    def __init__(
        self,
        sdk: Any,
        *,
        subscription_id: str = "",
        resource_group: str,
        vault: str,
        clock: Clock = REAL_CLOCK,
        polling_interval: float = 10.0,
        job_timeout: float = 4 * 3600.0,
        direction: str = "PrimaryToRecovery",
        plan_direction: str = "RecoveryToPrimary",
    ):
        self._sdk = sdk
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.vault = vault
        self.clock = clock
        self.polling_interval = float(polling_interval)
        self.job_timeout = float(job_timeout)
        self.direction = direction
        self.plan_direction = plan_direction
        #: item reads shared by every thread of this client: rounds at least 0.1 s apart (a tenth of the
        #: polling interval when that is shorter), 0.3 s per request the round before took (listings use
        #: at most about 3 reads a second of ARM's 25)
        self._reads = SharedReads(
            get=self._get_item,
            list_container=self._list_container_pages,
            list_vault=self._list_vault_pages,
            to_state=convert.item_state,
            clock=clock,
            min_gap=min(0.1, self.polling_interval / 10),
            gap_per_request=0.3,
            max_gap=self.polling_interval,
        )

    # -- plumbing -----------------------------------------------------------------------------------------
    @property
    def sdk(self) -> Any:
        """The underlying ``SiteRecoveryManagementClient`` (for drplan.asr's own modules and tests)."""
        return self._sdk

    def close(self) -> None:
        self._sdk.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, vm: str, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one SDK read (already retried by the client's retry policy), mapping errors."""
        try:
            return fn(self.resource_group, self.vault, *args, **kwargs)
        except AzureError as exc:
            raise map_error(exc, vm=vm, operation=operation) from None

    def _list(self, vm: str, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Run one SDK listing and follow every ``nextLink``, mapping errors."""
        try:
            return list(fn(self.resource_group, self.vault, *args, **kwargs))
        except AzureError as exc:
            raise map_error(exc, vm=vm, operation=operation) from None

    def _list_pages(
        self, vm: str, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[list[Any], int]:
        """Like :meth:`_list`, also counting the pages (one request each) the listing took."""
        out: list[Any] = []
        pages = 0
        try:
            for page in fn(self.resource_group, self.vault, *args, **kwargs).by_page():
                out.extend(page)
                pages += 1
        except AzureError as exc:
            raise map_error(exc, vm=vm, operation=operation) from None
        return out, pages

    def _polling(self) -> BoundedARMPolling:
        return BoundedARMPolling(self.polling_interval, clock=self.clock)

    def _start(self, vm: str, operation: str, begin: Callable[..., Any], *args: Any) -> Started:
        """Send one ASR action once (no SDK retry, no SDK polling) and return the job it started."""
        started = Started()
        try:
            begin(
                self.resource_group,
                self.vault,
                *args,
                polling=False,
                raw_response_hook=started.hook,
                retry_total=0,
            )
        except AzureError as exc:
            raise map_error(exc, vm=vm, operation=operation) from None
        log.info("%s of %s accepted (HTTP %s, job %s)", operation, vm, started.status, started.job)
        return started

    def _issue(
        self,
        vm: str,
        operation: str,
        send: Callable[[], Started],
        recheck: Callable[[], Job | None],
    ) -> Started | Job:
        """Send a write at most once per landed effect.

        A transient failure (5xx, connection) leaves it unknown whether ASR acted, so before re-sending,
        ``recheck`` reads the item's phase again: if the action is now running or done, that job is returned
        instead of sending a second write. A 429 was refused before anything was done: it is sent again after
        the ``Retry-After``, up to :data:`~drplan.asr.transport.THROTTLE_RETRIES` times.
        """
        attempt, throttled = 1, 0
        while True:
            try:
                return send()
            except OperationInProgressError as err:  # another job runs on the item: this write did nothing
                if attempt == WRITE_ATTEMPTS:
                    raise
                attempt += 1
                log.warning("%s; reading the item again to await that job", err)
                landed = recheck()
                if landed is not None:
                    return landed
                self.clock.sleep(max(self.polling_interval, 1.0))
            except TransientError as err:
                if err.throttled and throttled < THROTTLE_RETRIES:  # refused before anything was done
                    throttled += 1
                    delay = err.retry_after or 2.0
                    log.info("%s of %s throttled by ARM (429): sending again in %ss", operation, vm, delay)
                    self.clock.sleep(delay)
                    continue
                if attempt == WRITE_ATTEMPTS:
                    raise
                delay = min(err.retry_after or 2.0**attempt, max(self.polling_interval, 1.0) * 6)
                attempt += 1
                log.warning("%s; checking whether it landed, then retrying in %ss", err, delay)
                self.clock.sleep(delay)
                landed = recheck()
                if landed is not None:
                    return landed
