"""``AsrClient``: drplan's only door to Azure Site Recovery."""

from __future__ import annotations

from typing import Any

from drplan.asr.discovery import DiscoveryMixin
from drplan.asr.groups import GroupsMixin
from drplan.asr.jobs import JobsMixin
from drplan.asr.pacing import RequestPacing, hooks
from drplan.asr.rcm_infrastructure import build_compute_client
from drplan.asr.rcm_operations import RcmOperationsMixin
from drplan.asr.recovery_plans import RecoveryPlanMixin
from drplan.asr.transport import build_sdk_client
from drplan.clock import REAL_CLOCK, Clock
from drplan.plan.schema import AzureTarget


class AsrClient(DiscoveryMixin, JobsMixin, RcmOperationsMixin, RecoveryPlanMixin, GroupsMixin):
    """Reads and idempotent actions on one Recovery Services vault, returning :mod:`drplan.observed` types.

    Build it with :meth:`for_vault`. Every action reads the item's phase first
    (:func:`~drplan.recovery.phase.phase_of`): work already done is not issued again, a job already running
    is awaited. Errors are :mod:`drplan.errors` types whose messages name the VM and the operation.
    """

    #: the pacing at ARM's request budget that both SDK clients of the vault share
    pacing: RequestPacing | None = None

    @classmethod
    def for_vault(
        cls,
        azure: AzureTarget,
        *,
        endpoint: str | None = None,
        ca_file: str | None = None,
        credential: Any = None,
        clock: Clock = REAL_CLOCK,
        polling_interval: float = 10.0,
        job_timeout: float = 4 * 3600.0,
        direction: str | None = None,
        plan_direction: str = "RecoveryToPrimary",
        retry_total: int = 6,
        **client_kwargs: Any,
    ) -> AsrClient:
        """The vault named by the plan's ``azure`` section.

        Default: the real vault through ``DefaultAzureCredential`` (a service principal in
        ``AZURE_CLIENT_ID``/``AZURE_TENANT_ID``/``AZURE_CLIENT_SECRET`` works through it). ``endpoint`` +
        ``ca_file``: the simulator (any bearer token; TLS verified against that CA). ``polling_interval`` caps
        the delay between job polls
        (shorter when the server's ``Retry-After`` says so); every wait sleeps on ``clock``. ``direction`` is
        the item-level failback direction (default: the plan's ``azure.failback_direction``, PowerShell's
        ``PrimaryToRecovery``); ``plan_direction`` the recovery-plan one (PowerShell's ``RecoveryToPrimary``).
        """
        # one budget: both clients share one pacing (which also runs the client-wide raw hooks)
        client_kwargs.setdefault("pacing", RequestPacing(clock=clock, **hooks(client_kwargs)))
        sdk = build_sdk_client(
            azure.subscription_id,
            endpoint=endpoint,
            ca_file=ca_file,
            credential=credential,
            clock=clock,
            polling_interval=polling_interval,
            retry_total=retry_total,
            **client_kwargs,
        )
        client = cls(
            sdk,
            subscription_id=azure.subscription_id,
            resource_group=azure.resource_group,
            vault=azure.vault,
            clock=clock,
            polling_interval=polling_interval,
            job_timeout=job_timeout,
            direction=direction or azure.failback_direction,
            plan_direction=plan_direction,
        )
        client.pacing = client_kwargs["pacing"]
        client._compute_factory = lambda: build_compute_client(
            azure.subscription_id,
            endpoint=endpoint,
            ca_file=ca_file,
            credential=credential,
            clock=clock,
            retry_total=retry_total,
            **client_kwargs,
        )
        return client
