"""One run of one dataset: the stages, what they hand each other, and where a task keeps its scratch.

Public modules: :mod:`.stages` (extract, transform, validate, publish, record: each reads its inputs
from the release store's staging and returns a typed reference), :mod:`.refs` (those references, as
Airflow's XCom serialises them), :mod:`.context` (settings, store and scratch of one task),
:mod:`.transform` (a spec's transform applied batch by batch). Kill points for the crash tests
are :mod:`datashare.faults`, since the store has them too.
"""
