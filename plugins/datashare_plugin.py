"""Airflow plugin: mounts the data catalog in Airflow's API server and links every DAG to its catalog page.

The catalog app is mounted at ``/datashare``; Airflow does not authenticate plugin apps, and the app
checks every caller's token itself. Building the app reads nothing (specs, registry and store are
read on the first request), so this module imports fast. If the catalog cannot be built (a missing
package, a broken setting), the plugin logs why and registers nothing rather than failing Airflow's
plugin manager.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

URL_PREFIX = "/datashare"


def _catalog_apps() -> list[dict[str, Any]]:
    """The catalog app entry, or nothing (logged) when it cannot be built."""
    try:
        from datashare.catalog.app import create_app
        from datashare.exceptions import DatashareError
    except ImportError as exc:
        log.error("Datashare catalog not mounted: cannot import it (%s)", exc)
        return []
    try:
        app = create_app()
    except (DatashareError, OSError, ValueError) as exc:
        log.error("Datashare catalog not mounted: %s", exc)
        return []
    return [{"app": app, "url_prefix": URL_PREFIX, "name": "Datashare catalog"}]


class DatashareCatalogPlugin(AirflowPlugin):
    """The catalog under ``/datashare`` and a "Catalog / Danh mục" link on every DAG."""

    name = "datashare_catalog"
    fastapi_apps = _catalog_apps()
    external_views = (
        [{"name": "Catalog / Danh mục", "href": f"{URL_PREFIX}/datasets/{{DAG_ID}}", "destination": "dag"}]
        if fastapi_apps
        else []
    )
