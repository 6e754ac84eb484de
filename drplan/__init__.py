"""drplan: recovery plans as code for Azure Site Recovery failback from Azure to on-premises VMware.

The library never imports Prefect; flows/ and tasks/ bind it to Prefect.
"""

__version__ = "0.1.0"
