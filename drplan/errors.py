"""drplan's error hierarchy. Adapters map SDK/pyVmomi errors onto these; flows decide retries by type."""

from __future__ import annotations


class DrplanError(Exception):
    """Base of every error drplan raises on purpose. Its message is meant for a DR engineer."""


class PlanError(DrplanError):
    """The plan is invalid. ``problems`` holds every problem, formatted ``FILE:LINE:COL: path: message``."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class AsrError(DrplanError):
    """An ASR operation failed. Messages name the VM (or group) and the operation."""

    def __init__(self, message: str, *, vm: str = "", operation: str = "", code: str = ""):
        self.vm, self.operation, self.code = vm, operation, code
        super().__init__(message)


class TransientError(AsrError):
    """Throttling or a server-side hiccup (429/5xx): safe to retry, after ``retry_after`` s if known.
    ``throttled``: a 429, which ASR refused before doing anything."""

    def __init__(self, message: str, *, retry_after: float | None = None, throttled: bool = False, **kw):
        self.retry_after = retry_after
        self.throttled = throttled
        super().__init__(message, **kw)


class AgentNotInstalledError(AsrError):
    """Reprotect to Azure refused: the mobility agent has not re-registered yet. Retry within the window."""


class PreconditionError(AsrError):
    """A failback doc rule is not met; ``rule`` names it."""

    def __init__(self, message: str, *, rule: str = "", **kw):
        self.rule = rule
        super().__init__(message, **kw)


class NotFoundError(AsrError):
    """The vault, item, point or job does not exist."""


class PermissionError_(AsrError):
    """Authentication or authorisation failure: never retried."""


class JobTimeout(AsrError):
    """An ASR job did not finish before its deadline; it may still be running (``job`` names it)."""

    def __init__(self, message: str, *, job: str = "", **kw):
        self.job = job
        super().__init__(message, **kw)


class OperationInProgressError(AsrError):
    """ASR refused a write because another job is running on the item (``409 OperationInProgress``); the
    write did nothing: read the item again and await that job."""


class RecoveryPointError(DrplanError):
    """No valid recovery point exists for a unit under its policy, or the max_data_loss guard refused it."""


class MixedPointsError(DrplanError):
    """A replication group's members failed back to different points: the group is not committed."""


class VCenterError(DrplanError):
    """A vCenter (or simulated on-prem site) operation failed."""


class VCenterUnreachable(VCenterError):
    pass


class VCenterTlsError(VCenterError):
    pass


class VCenterLoginError(VCenterError):
    pass


class VCenterPermissionError(VCenterError):
    pass


class BootTimeout(VCenterError):
    """The VM did not come up (power, tools, IP) within its timeout."""
