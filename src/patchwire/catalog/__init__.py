"""The catalog of real-world connectors shipped with Patchwire.

Each connector is a YAML file in ``connectors/`` whose ``catalog:`` block says where its
facts came from (``docs_url``, ``verified_at``, ``source``, ``licence``); the package's
NOTICE lists every source. ``patchwire connector add NAME`` copies one into a deployment.
"""

from patchwire.catalog._catalog import (
    Catalog,
    CatalogEntry,
    add_to_deployment,
    auth_summary,
    catalog_connector_texts,
    load_catalog,
    notice_text,
    shipped_notice,
)

__all__ = ["Catalog", "CatalogEntry", "add_to_deployment", "auth_summary",
           "catalog_connector_texts", "load_catalog", "notice_text", "shipped_notice"]
