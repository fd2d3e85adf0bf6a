"""What a release offers besides its Parquet files: the changes from the one before, and exports.

Public modules: :mod:`.changes` (rows inserted, deleted and updated between two releases),
:mod:`.exports` (CSV, XLSX and zip files of a release, streamed). :mod:`.export_writers` serves
:mod:`.exports` only.
"""
