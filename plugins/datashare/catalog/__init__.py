"""The bilingual data catalog: server-rendered pages, a JSON API, DCAT-AP metadata and checked downloads.

``datashare.catalog.app.create_app`` builds the FastAPI application that ``datashare serve`` runs
standalone and the Airflow plugin (``plugins/datashare_plugin.py``) mounts under ``/datashare``.
Airflow does not authenticate plugin apps, so every route here checks access itself.
"""
