"""drplan's Prefect flows: ``failback``, ``drill`` and ``reprotect``, short entry points over
:func:`flows.run.run_kind`; :mod:`flows.claims` (one run per plan), :mod:`flows.monitor` (events, artifacts)
and :mod:`flows.cli` (the run commands' Prefect side)."""
