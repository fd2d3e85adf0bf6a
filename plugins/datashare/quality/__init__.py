"""Data quality: the Great Expectations suites, quarantine, and the reports auditors read.

Public modules: :mod:`.validation` (a suite run over a staged file), :mod:`.quarantine` (rows that
break a rule, kept apart with the rule and the value), :mod:`.report` (the bilingual validation
report), :mod:`.history` (a dataset's releases and their quality over time).
:mod:`.duckdb_gx` serves :mod:`.validation` only.
"""
