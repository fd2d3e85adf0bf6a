"""Celery configuration for Airflow's workers that imports the engine's heavy libraries once per worker.

Point a worker's ``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS`` at ``datashare.orchestration.celery_preload.CELERY_CONFIG``
(docker-compose and the real-scheduler suite do; the scheduler keeps Airflow's default, the same
settings). Airflow imports this module in the worker's main process before Celery forks its pool, and
each task process is forked from a pool process, so every task starts with pyarrow, SQLAlchemy, boto3,
Great Expectations and the engine already in memory instead of importing them again: measured on this
machine, Great Expectations alone costs a validate task about 8 s cold, the rest about a second a task.

Only imports happen here, and the parsing of boto3's S3 models into the engine's shared boto3 session
(0.15-0.3 s a task otherwise): no connection, thread or file is opened before the fork. A library that
cannot be imported is logged and left to the task, which then fails with the real error.
"""

from __future__ import annotations

import importlib
import logging
import time

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

log = logging.getLogger(__name__)

PRELOAD = (
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.compute",
    "sqlalchemy",
    "psycopg",
    "pymysql",
    "boto3",
    "botocore.session",
    "great_expectations",
    "duckdb",
    "duckdb_engine",
    "adbc_driver_postgresql.dbapi",
    "connectorx",
    "airflow.dag_processing.dagbag",
    "datashare.orchestration.factory",
    "datashare.pipeline.stages",
    "datashare.source.extract",
    "datashare.pipeline.transform",
    "datashare.quality.validation",
    "datashare.share.sqlshare",
    "transforms.registry",
)
"""What the stages import, heaviest first in cost: each task process would otherwise import it again.

``airflow.dag_processing.dagbag`` is what the task runner loads the DAG file with: 0.2 s a task when it is not
preloaded (bench/scheduler.py)."""


def preload(modules: tuple[str, ...] = PRELOAD) -> dict[str, float]:
    """Import each module once; returns the seconds each took (a failure is logged, not raised)."""
    took: dict[str, float] = {}
    for name in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # the task that needs it will raise the real error
            log.warning("datashare worker preload: cannot import %s: %s", name, exc)
            continue
        took[name] = round(time.perf_counter() - started, 3)
    log.info("datashare worker preload: %s modules in %.1f s", len(took), sum(took.values()))
    return took


def load_plugins() -> float:
    """Load Airflow's plugins (the plugins folder, walked and imported) once; returns the seconds it took.

    Every task process loads them when it builds its template context, 0.26 s a task on the bench
    (bench/scheduler.py); Airflow caches the result in the module, so a fork of this process inherits it.
    """
    started = time.perf_counter()
    try:
        from airflow.sdk.plugins_manager import integrate_macros_plugins

        integrate_macros_plugins()
    except Exception as exc:  # the task loads them again and reports the real error
        log.warning("datashare worker preload: cannot load Airflow's plugins: %s", exc)
    return round(time.perf_counter() - started, 3)


def warm_s3_models() -> float:
    """Parse boto3's S3 models once (:func:`datashare.store.s3.warm_models`); returns the seconds it took."""
    try:
        from datashare.store.s3 import warm_models

        return warm_models()
    except Exception as exc:  # the task makes its client itself and reports the real error
        log.warning("datashare worker preload: cannot load boto3's S3 models: %s", exc)
        return 0.0


PRELOADED = preload()
PLUGINS_S = load_plugins()
S3_MODELS_S = warm_s3_models()
CELERY_CONFIG = DEFAULT_CELERY_CONFIG
"""Airflow's own Celery settings, unchanged: this module only adds the imports above."""
