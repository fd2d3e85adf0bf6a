"""Airflow import errors for broken dataset specs; this DAG file defines no DAG.

A spec in ``dags/datasets/`` that cannot be loaded (not UTF-8, too large, a duplicate key, an unknown
field, an id that would collide with another dataset's names...) must show in Airflow's UI without
taking the other datasets' DAGs down. Airflow keys import errors by DAG file and marks every DAG of a
file with an import error stale, so ``datashare_dags.py`` skips broken specs and this file, which
owns no DAG, fails instead: its import error lists each broken spec with its file and field, and
disappears at the next parse once they are fixed. See ``datashare.orchestration.factory.raise_for_broken_specs``.
"""

from datashare.orchestration.factory import raise_for_broken_specs

raise_for_broken_specs()
