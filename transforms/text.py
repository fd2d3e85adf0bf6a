"""Text transforms: Unicode normalisation of Vietnamese text.

Vietnamese has two Unicode spellings of most accented letters: precomposed (NFC, "ệ" as one code
point) and decomposed (NFD, "e" + combining marks, what macOS file names and some legacy tools
produce). They look the same and compare different, so every text is stored in NFC.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import pyarrow as pa


def nfc(value: str | None) -> str | None:
    """One value in NFC."""
    return None if value is None else unicodedata.normalize("NFC", value)


def nfc_array(array: pa.Array) -> pa.Array:
    """A string array in NFC; arrays already in NFC are returned as they are.

    Pure ASCII is NFC already, and a column holds far fewer distinct texts than rows (station, place
    and unit names), so only the distinct values of a non-ASCII column are normalised in Python.
    """
    import pyarrow.compute as pc

    if array.null_count == len(array) or pc.all(pc.string_is_ascii(array)).as_py() is not False:
        return array
    encoded = pc.dictionary_encode(array)
    values = encoded.dictionary.to_pylist()
    if all(unicodedata.is_normalized("NFC", v) for v in values):
        return array
    normalised = pa.array([unicodedata.normalize("NFC", v) for v in values], type=array.type)
    return normalised.take(encoded.indices)


def nfc_text(batch: pa.RecordBatch, *, columns: Sequence[str] | None = None) -> pa.RecordBatch:
    """Normalise text columns to NFC: the named ones, or every string column when none are named."""
    names = (
        list(columns)
        if columns is not None
        else [f.name for f in batch.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    )
    missing = [n for n in names if n not in batch.schema.names]
    if missing:
        raise KeyError(f"nfc_text: column(s) {missing} not in the data")
    arrays = [nfc_array(batch.column(i)) if f.name in names else batch.column(i) for i, f in enumerate(batch.schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)
