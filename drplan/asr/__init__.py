"""The Azure Site Recovery adapter: the only module of drplan that imports the Azure SDK.

``AsrClient.for_vault(plan.azure, ...)`` discovers the plan's VMs, reads their state and recovery points, and
drives failback, commit, reprotect and drills idempotently (:func:`phase_of` is read before every write).
"""

from drplan.asr.client import AsrClient
from drplan.asr.groups import plan_point_type, recovery_plan_name
from drplan.asr.recovery_plans import RecoveryPlanInfo
from drplan.asr.transport import StaticTokenCredential

__all__ = [
    "AsrClient",
    "RecoveryPlanInfo",
    "StaticTokenCredential",
    "plan_point_type",
    "recovery_plan_name",
]
