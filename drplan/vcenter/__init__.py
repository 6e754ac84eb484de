"""The vCenter adapter (the only module importing pyVmomi): connect, batched reads, waits, control verbs.

- :mod:`drplan.vcenter.connect`: TLS context (verification on by default), password resolution, login,
  error mapping onto :mod:`drplan.errors`, SOAP round-trip counting.
- :mod:`drplan.vcenter.reads`: one property-collector round trip for all VMs of a plan.
- :mod:`drplan.vcenter.waits`: ``WaitForUpdatesEx`` waits for VMs and tasks.
- :mod:`drplan.vcenter.site`: :class:`VCenterSite`, implementing :class:`drplan.run.ports.OnPremSite`.
"""

from drplan.vcenter.connect import connect, resolve_password, ssl_context
from drplan.vcenter.site import VCenterSite, VmNotFound

__all__ = ["VCenterSite", "VmNotFound", "connect", "resolve_password", "ssl_context"]
