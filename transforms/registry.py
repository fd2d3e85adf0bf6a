"""Names that specs use for transforms, mapped to their functions.

A transform is a pure function ``(batch: pyarrow.RecordBatch, **args) -> pyarrow.RecordBatch``
applied batch by batch, so it never sees the whole table. Entries are import paths, so loading a
spec (at DAG parse time) checks a name without importing the code behind it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: every DAG parse and task start-up loads this module through the specs
    import pyarrow as pa

Transform = Callable[..., "pa.RecordBatch"]

TRANSFORMS: dict[str, str] = {
    "nfc_text": "transforms.text:nfc_text",
    "null_sentinel": "transforms.values:null_sentinel",
    "decode_legacy_text": "transforms.legacy_text:decode_legacy_text",
    "parse_date_dmy": "transforms.parse:parse_date_dmy",
    "parse_decimal_comma": "transforms.parse:parse_decimal_comma",
    "non_negative": "transforms.parse:non_negative",
    "detection_limit": "transforms.parse:detection_limit",
    "resolve_admin_code": "transforms.admin_codes:resolve_admin_code",
    "check_citizen_id": "transforms.citizen_id:check_citizen_id",
    "add_wqi_class": "transforms.indices:add_wqi_class",
    "add_vn_aqi": "transforms.indices:add_vn_aqi",
}


BUILDERS: dict[str, str] = {
    "province_environment_indicators": "transforms.derived:province_environment_indicators",
}
"""Builders of derived datasets: ``(inputs: Mapping[dataset id, list of Parquet paths]) -> pyarrow.Table``."""


def resolve_builder(name: str) -> Callable[..., pa.Table]:
    """The builder registered under ``name``."""
    module, func = BUILDERS[name].split(":")
    return getattr(importlib.import_module(module), func)


def resolve(name: str) -> Transform:
    """The function registered under ``name``; ``KeyError`` naming the known ones if absent."""
    try:
        target = TRANSFORMS[name]
    except KeyError:
        raise KeyError(f"unknown transform {name!r}; known: {sorted(TRANSFORMS)}") from None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)
