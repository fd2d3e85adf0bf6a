"""Airflow's side: the DAGs built from specs, and the Celery worker's start-up.

Public modules: :mod:`.factory` (one DAG per spec, parsed cheaply), :mod:`.celery_preload`
(what a Celery worker loads before it takes tasks).
"""
