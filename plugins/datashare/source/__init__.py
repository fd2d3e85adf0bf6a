"""Reading sector databases: connections, the extract stage, the type contract and cursors.

Public modules: :mod:`.connections` (connection info from Airflow or the environment), :mod:`.extract`
(one dataset's rows past its cursor into a staged Parquet file, by the fast readers or SQLAlchemy),
:mod:`.conform` (the type contract both ways: values the contract cannot hold exactly are named),
:mod:`.typemap` (contract types as Arrow and SQL types), :mod:`.cursor` (typed cursors and their
text form). :mod:`.fastextract` and :mod:`.prefetch` serve :mod:`.extract` only.
"""
