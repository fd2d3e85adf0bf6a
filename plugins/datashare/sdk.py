"""What the engine offers transform authors (``transforms/``) and unit simulators (``units/``).

They import from here and nowhere else in ``datashare``, so the engine's packages can change inside
without breaking a transform (as Airflow offers DAG authors ``airflow.sdk``). Every name is a thin
re-export or a small function over the engine's public modules; imports stay inside the functions,
so importing this module costs nothing at DAG-parse time.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from datashare.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ConfigError", "conform_numbers", "exact_number", "secret"]


def secret(conn_id: str) -> str | None:
    """The password of Airflow connection ``conn_id`` (or its ``AIRFLOW_CONN_*`` variable); None if unset."""
    from datashare.source.connections import get_connection

    try:
        return get_connection(conn_id).password
    except ConfigError:
        return None


def exact_number(value: Decimal) -> float:
    """The double that holds ``value`` exactly, or ValueError naming why it cannot (the contract's ``number``)."""
    from datashare.source.conform import to_number

    return to_number(value)


def conform_numbers(column: str, array: pa.Array) -> tuple[pa.Array, dict[int, str]]:
    """``array`` as float64 under the type contract, and the problem of each row whose value a double cannot hold.

    A problem reads ``"column '<column>': <value> <what is wrong>"``; the row's value becomes null.
    """
    from datashare.source.conform import Contract, conform_array
    from datashare.spec import ColumnType

    return conform_array(array, Contract(name=column, kind=ColumnType.number))
