"""Prefect blocks: connection settings, credentials and their client methods.

Every block type Supplyline defines is exported here, so that one command registers them all
on a Prefect server (their forms then appear in the UI's block catalog)::

    prefect block register -m blocks
"""

from blocks.retailer_webhook import RetailerWebhook
from blocks.sftp import SftpServer
from blocks.supplier_api import SupplierApi

__all__ = ["RetailerWebhook", "SftpServer", "SupplierApi"]
