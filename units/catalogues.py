"""Shared catalogues (danh mục dùng chung) as a database: administrative units and land-use codes.

The ministry publishes its shared code lists first, so that every other dataset can join to them
(DESIGN.md §2). This module writes the lists of :mod:`units.codes` into any SQLAlchemy URL:

- `admin_units`: one row per unit and period its code denoted it (codes are reused across the
  1 July 2025 reorganisation, so the key is code, level and `valid_from`), with the post-2025
  `successor_code` of every retired unit and whether each fact is confirmed;
- `land_use_codes`: the national land-use codes, retired ones with the last day they were in use.

Most entries are PLACEHOLDERS flagged `confirmed = false` (see :mod:`units.codes`).

It also writes the same administrative units as a reference file for the `resolve_admin_code`
transform (``transforms/data/simulated_admin_units.json``), so that datasets of the simulated units
resolve their codes against exactly the catalogue this project publishes:

    python -m units.catalogues generate --url sqlite:///var/units/catalogues.sqlite
    python -m units.catalogues reference --out transforms/data/simulated_admin_units.json
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from units._common import recreate, safe_url
from units.codes import ADMIN_UNITS, LAND_USE_CODES, map_to_2025

log = logging.getLogger(__name__)

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "transforms" / "data" / "simulated_admin_units.json"

metadata = sa.MetaData()

admin_units_table = sa.Table(
    "admin_units",
    metadata,
    sa.Column("code", sa.String(5), primary_key=True),
    sa.Column("level", sa.String(10), primary_key=True),
    sa.Column("valid_from", sa.Date, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("valid_to", sa.Date),
    sa.Column("parent_code", sa.String(5)),
    sa.Column("successor_code", sa.String(5)),
    sa.Column("successor_confirmed", sa.Boolean),
    sa.Column("confirmed", sa.Boolean, nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

land_use_codes_table = sa.Table(
    "land_use_codes",
    metadata,
    sa.Column("code", sa.String(3), primary_key=True),
    sa.Column("name_vi", sa.String(200), nullable=False),
    sa.Column("name_en", sa.String(200), nullable=False),
    sa.Column("land_group", sa.String(20), nullable=False),
    sa.Column("retired", sa.Boolean, nullable=False),
    sa.Column("valid_to", sa.Date),
    sa.Column("confirmed", sa.Boolean, nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)


@dataclass(frozen=True)
class CataloguesSummary:
    """Rows written per table."""

    admin_units: int
    land_use_codes: int


def admin_unit_rows() -> list[dict[str, Any]]:
    """Rows of `admin_units`: every unit with its period and, once retired, its post-2025 successor."""
    rows = []
    for unit in sorted(ADMIN_UNITS, key=lambda u: (u.level, u.code, u.valid_from)):
        mapping = map_to_2025(unit.code, unit.level) if unit.valid_to is not None else None
        rows.append(
            {
                "code": unit.code,
                "level": unit.level,
                "valid_from": unit.valid_from,
                "name": unit.name,
                "valid_to": unit.valid_to,
                "parent_code": unit.parent_code,
                "successor_code": mapping.new_code if mapping else None,
                "successor_confirmed": mapping.confirmed if mapping else None,
                "confirmed": unit.confirmed,
            }
        )
    return rows


def land_use_rows() -> list[dict[str, Any]]:
    """Rows of `land_use_codes`, in list order."""
    return [
        {
            "code": c.code,
            "name_vi": c.name_vi,
            "name_en": c.name_en,
            "land_group": c.group,
            "retired": c.retired,
            "valid_to": c.valid_to,
            "confirmed": c.confirmed,
        }
        for c in LAND_USE_CODES
    ]


def generate(url: str) -> CataloguesSummary:
    """(Re)create `admin_units` and `land_use_codes` at `url`."""
    engine = sa.create_engine(url)
    units, codes = admin_unit_rows(), land_use_rows()
    try:
        log.info("catalogues: recreating tables at %s", safe_url(url))
        recreate(engine, metadata)
        with engine.begin() as conn:
            conn.execute(sa.insert(admin_units_table), units)
            conn.execute(sa.insert(land_use_codes_table), codes)
    finally:
        engine.dispose()
    return CataloguesSummary(admin_units=len(units), land_use_codes=len(codes))


def reference() -> dict[str, Any]:
    """The administrative units in the structure `transforms.admin_codes.build_reference` reads."""
    rows = admin_unit_rows()
    units = [
        {
            "code": r["code"],
            "name": r["name"],
            "level": r["level"],
            "valid_from": r["valid_from"].isoformat(),
            "valid_to": r["valid_to"].isoformat() if r["valid_to"] else None,
            "confirmed": r["confirmed"],
        }
        for r in rows
    ]
    successors = [
        {"old": r["code"], "level": r["level"], "new": r["successor_code"], "confirmed": r["successor_confirmed"]}
        for r in rows
        if r["successor_code"] is not None
    ]
    return {
        "about": (
            "Administrative units of the simulated unit databases (units/codes.py), written by "
            "`python -m units.catalogues reference`: the same units the admin_units catalogue publishes. "
            "Mostly PLACEHOLDERS (confirmed: false); see units/codes.py."
        ),
        "units": units,
        "successors": successors,
    }


def reference_text() -> str:
    """The reference file's exact content (deterministic, so a test can keep the committed file in step)."""
    return json.dumps(reference(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `generate` the catalogue tables or write the `reference` file."""
    parser = argparse.ArgumentParser(prog="python -m units.catalogues", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="drop, recreate and fill admin_units and land_use_codes")
    gen.add_argument("--url", required=True, help="SQLAlchemy URL of the target database")
    ref = commands.add_parser("reference", help="write the resolve_admin_code reference file")
    ref.add_argument("--out", type=Path, default=REFERENCE_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "generate":
        log.info("catalogues: %s", generate(args.url))
    else:
        args.out.write_text(reference_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
