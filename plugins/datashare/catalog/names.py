"""Names of sectors and units in both languages, their EU data themes and the units' contact points.

Specs carry codes (``sector: environment_monitoring``, ``source.unit: monitoring``); people and
harvesters need words and a way to reach the owner. ``config/units.yaml`` holds both, so adding a
unit is a line of configuration, not code. A code missing from the file is shown as itself and
logged once per load, so a gap is visible without breaking a page; a test keeps the repository's
specs and this file in step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datashare.exceptions import ConfigError

log = logging.getLogger(__name__)

EU_THEMES = ("AGRI", "ECON", "EDUC", "ENER", "ENVI", "GOVE", "HEAL", "INTR", "JUST", "REGI", "SOCI", "TECH", "TRAN")
"""Codes of the EU data-theme vocabulary (http://publications.europa.eu/resource/authority/data-theme)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Name(_Strict):
    """A name in Vietnamese and English."""

    vi: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Sector(_Strict):
    """A sector: its name and the EU data themes its datasets carry."""

    name: Name
    themes: list[Annotated[str, Field(pattern="^(" + "|".join(EU_THEMES) + ")$")]] = Field(min_length=1)


class Unit(_Strict):
    """A unit that owns data, and its functional contact (mailbox and/or web page; never a person)."""

    name: Name
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")


class Names(_Strict):
    """The whole file."""

    sectors: dict[str, Sector] = Field(default_factory=dict)
    units: dict[str, Unit] = Field(default_factory=dict)

    def sector_name(self, code: str) -> Name:
        """The sector's name; the code itself (in both languages) when the file does not know it."""
        sector = self.sectors.get(code)
        return sector.name if sector else Name(vi=code, en=code)

    def unit_name(self, code: str) -> Name:
        """The unit's name; the code itself when the file does not know it."""
        unit = self.units.get(code)
        return unit.name if unit else Name(vi=code, en=code)

    def themes(self, sector: str) -> list[str]:
        """EU data-theme codes of a sector; GOVE (government and public sector) when unknown."""
        known = self.sectors.get(sector)
        return list(known.themes) if known else ["GOVE"]


def load_names(path: Path) -> Names:
    """Read ``config/units.yaml``; :class:`ConfigError` naming the file and field when it is malformed."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Names.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
