"""Airflow DAGs of the data-sharing layer: one DAG per dataset spec in ``dags/datasets/``.

To add a dataset, add ``dags/datasets/<id>.yaml`` and ``expectations/<id>.json`` (and a transform
if it needs code); never copy a DAG. The factory in ``datashare.orchestration.factory`` builds each DAG as
``extract -> transform -> validate -> commit_release -> publish_sql -> record``; parsing reads the
specs and nothing else.
"""

from datashare.orchestration.factory import build_dags

globals().update(build_dags())
