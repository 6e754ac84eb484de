"""Prefect flows of drplan: ``failback``, ``drill`` and ``reprotect``; shared parts in ``flows.common``."""
