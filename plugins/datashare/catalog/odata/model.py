"""The entity model of a release and its CSDL documents (XML for Excel and Power BI, JSON for others).

One dataset is one entity type and one entity set, both named by the dataset id. The model is read
from the release's own ``datapackage.json`` (its Table Schema), so an older release is described as
it was published, not as the spec reads today.

| Table Schema type | EDM type | JSON value |
|---|---|---|
| string | Edm.String | string |
| integer | Edm.Int64 | number (a string with ``IEEE754Compatible=true``) |
| number | Edm.Double | number; ``"NaN"``, ``"INF"``, ``"-INF"`` |
| boolean | Edm.Boolean | true / false |
| date | Edm.Date | ``"2026-11-01"`` |
| datetime | Edm.DateTimeOffset (Precision 6) | ``"2026-11-01T07:00:00+07:00"`` |

Timestamps: the sources keep naive Vietnam time and releases publish it as is (timestamp without
zone). Edm.DateTimeOffset needs an offset, so every value is served with ``+07:00`` (Vietnam has no
daylight saving time), and a literal with another offset in ``$filter`` is converted to Vietnam time
before it is compared. The instant is the one the source meant; nothing is shifted.

Each property carries its description as ``Core.Description`` (Vietnamese, unqualified; English with
the qualifier ``en``) and its unit as ``Measures.Unit``; the entity set carries the dataset's title
and description the same way, and the capabilities of this read-only service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from datashare.source.typemap import table_schema
from datashare.spec import COLUMN_NAME, DatasetSpec
from datashare.store import Release

NAMESPACE = "Datashare"
CONTAINER = "Container"
VIETNAM_OFFSET = "+07:00"
EDM_TYPES = {
    "string": "Edm.String",
    "integer": "Edm.Int64",
    "number": "Edm.Double",
    "boolean": "Edm.Boolean",
    "date": "Edm.Date",
    "datetime": "Edm.DateTimeOffset",
}
VOCABULARIES = {
    "Core": ("Org.OData.Core.V1", "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1"),
    "Measures": (
        "Org.OData.Measures.V1",
        "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Measures.V1",
    ),
    "Capabilities": (
        "Org.OData.Capabilities.V1",
        "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Capabilities.V1",
    ),
}
FILTER_FUNCTIONS = (
    "contains",
    "startswith",
    "endswith",
    "length",
    "indexof",
    "substring",
    "tolower",
    "toupper",
    "trim",
    "concat",
    "matchesPattern",
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "fractionalseconds",
    "date",
    "totaloffsetminutes",
    "now",
    "mindatetime",
    "maxdatetime",
    "round",
    "floor",
    "ceiling",
)
_NAME = re.compile(COLUMN_NAME)


class ModelError(Exception):
    """A release whose schema cannot be described in EDM (a server-side fault, never the caller's)."""


@dataclass(frozen=True)
class Property:
    """One structural property (a column)."""

    name: str
    type: str
    """EDM type name, e.g. ``Edm.Int64``."""
    nullable: bool
    description_vi: str
    description_en: str
    unit: str | None = None


@dataclass(frozen=True)
class EntityModel:
    """One dataset at one release: its entity type, keyed as the spec keys it."""

    name: str
    version: int
    properties: tuple[Property, ...]
    key: tuple[str, ...]
    title_vi: str
    title_en: str
    description_vi: str
    description_en: str

    def find(self, name: str) -> Property | None:
        """The property of that exact name (OData names are case-sensitive)."""
        return next((p for p in self.properties if p.name == name), None)

    @property
    def qualified_type(self) -> str:
        """The entity type's qualified name."""
        return f"{NAMESPACE}.{self.name}"


def entity_model(spec: DatasetSpec, release: Release) -> EntityModel:
    """The entity model of one release, from its manifest's Table Schema (the spec's when it has no file)."""
    resources: list[dict[str, Any]] = release.manifest.get("resources") or []
    schema: dict[str, Any] = resources[0]["schema"] if resources else table_schema(spec)
    key = tuple(schema.get("primaryKey") or release.manifest["datashare"].get("key") or spec.key)
    properties = []
    for field in schema["fields"]:
        name, kind = field["name"], field["type"]
        if not _NAME.fullmatch(name) or kind not in EDM_TYPES:
            raise ModelError(f"{release.dataset_id} v{release.version}: field {name!r} of type {kind!r}")
        required = bool((field.get("constraints") or {}).get("required"))
        properties.append(
            Property(
                name=name,
                type=EDM_TYPES[kind],
                nullable=not required and name not in key,
                description_vi=str(field.get("description") or ""),
                description_en=str(field.get("title") or ""),
                unit=field.get("unit"),
            )
        )
    names = {p.name for p in properties}
    if not key or any(k not in names for k in key):
        raise ModelError(f"{release.dataset_id} v{release.version}: key {list(key)} is not among the fields")
    ds = release.manifest["datashare"]
    title, description = ds.get("title") or {}, ds.get("description") or {}
    return EntityModel(
        name=release.dataset_id,
        version=release.version,
        properties=tuple(properties),
        key=key,
        title_vi=title.get("vi", spec.title.vi),
        title_en=title.get("en", spec.title.en),
        description_vi=description.get("vi", spec.description.vi),
        description_en=description.get("en", spec.description.en),
    )


# -- CSDL XML -------------------------------------------------------------------------------------

EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"


def _annotate(parent: ET.Element, term: str, value: str, qualifier: str | None = None) -> None:
    if not value:
        return
    attrs = {"Term": term, "String": value}
    if qualifier:
        attrs["Qualifier"] = qualifier
    ET.SubElement(parent, "Annotation", attrs)


def _texts(parent: ET.Element, term: str, vi: str, en: str) -> None:
    """A text in Vietnamese (unqualified, the default) and in English (qualifier ``en``)."""
    _annotate(parent, term, vi)
    _annotate(parent, term, en, "en")


def _record(parent: ET.Element, term: str, values: dict[str, bool]) -> None:
    annotation = ET.SubElement(parent, "Annotation", {"Term": term})
    record = ET.SubElement(annotation, "Record")
    for name, value in values.items():
        ET.SubElement(record, "PropertyValue", {"Property": name, "Bool": "true" if value else "false"})


def _capabilities(entity_set: ET.Element) -> None:
    """What this read-only service supports on every entity set."""
    _record(entity_set, "Capabilities.InsertRestrictions", {"Insertable": False})
    _record(entity_set, "Capabilities.UpdateRestrictions", {"Updatable": False})
    _record(entity_set, "Capabilities.DeleteRestrictions", {"Deletable": False})
    _record(entity_set, "Capabilities.ExpandRestrictions", {"Expandable": False})
    _record(entity_set, "Capabilities.SearchRestrictions", {"Searchable": False})
    _record(entity_set, "Capabilities.CountRestrictions", {"Countable": True})
    ET.SubElement(entity_set, "Annotation", {"Term": "Capabilities.TopSupported", "Bool": "true"})
    ET.SubElement(entity_set, "Annotation", {"Term": "Capabilities.SkipSupported", "Bool": "true"})
    functions = ET.SubElement(
        ET.SubElement(entity_set, "Annotation", {"Term": "Capabilities.FilterFunctions"}), "Collection"
    )
    for name in FILTER_FUNCTIONS:
        ET.SubElement(functions, "String").text = name


def csdl_xml(models: list[EntityModel]) -> bytes:
    """The ``$metadata`` document (CSDL XML, OData 4.0): what Excel and Power BI read."""
    ET.register_namespace("edmx", EDMX)
    root = ET.Element(f"{{{EDMX}}}Edmx", {"Version": "4.0"})
    for alias, (namespace, uri) in VOCABULARIES.items():
        ref = ET.SubElement(root, f"{{{EDMX}}}Reference", {"Uri": f"{uri}.xml"})
        ET.SubElement(ref, f"{{{EDMX}}}Include", {"Namespace": namespace, "Alias": alias})
    services = ET.SubElement(root, f"{{{EDMX}}}DataServices")
    schema = ET.SubElement(services, "Schema", {"xmlns": EDM, "Namespace": NAMESPACE})
    for model in models:
        entity = ET.SubElement(schema, "EntityType", {"Name": model.name})
        key = ET.SubElement(entity, "Key")
        for name in model.key:
            ET.SubElement(key, "PropertyRef", {"Name": name})
        for prop in model.properties:
            attrs = {"Name": prop.name, "Type": prop.type, "Nullable": "true" if prop.nullable else "false"}
            if prop.type == "Edm.DateTimeOffset":
                attrs["Precision"] = "6"
            element = ET.SubElement(entity, "Property", attrs)
            _texts(element, "Core.Description", prop.description_vi, prop.description_en)
            if prop.unit:
                _annotate(element, "Measures.Unit", prop.unit)
        _texts(entity, "Core.Description", model.title_vi, model.title_en)
        _texts(entity, "Core.LongDescription", model.description_vi, model.description_en)
    container = ET.SubElement(schema, "EntityContainer", {"Name": CONTAINER})
    for model in models:
        entity_set = ET.SubElement(container, "EntitySet", {"Name": model.name, "EntityType": model.qualified_type})
        _texts(entity_set, "Core.Description", model.title_vi, model.title_en)
        _texts(entity_set, "Core.LongDescription", model.description_vi, model.description_en)
        _capabilities(entity_set)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# -- CSDL JSON ------------------------------------------------------------------------------------


def _json_texts(target: dict[str, Any], term: str, vi: str, en: str) -> None:
    if vi:
        target[f"@{term}"] = vi
    if en:
        target[f"@{term}#en"] = en


def csdl_json(models: list[EntityModel]) -> dict[str, Any]:
    """The same model as CSDL JSON (OData 4.01), for ``$metadata?$format=json``."""
    schema: dict[str, Any] = {}
    container: dict[str, Any] = {"$Kind": "EntityContainer"}
    for model in models:
        entity: dict[str, Any] = {"$Kind": "EntityType", "$Key": list(model.key)}
        for prop in model.properties:
            member: dict[str, Any] = {}
            if prop.type != "Edm.String":
                member["$Type"] = prop.type
            if prop.nullable:
                member["$Nullable"] = True  # JSON CSDL's default is false
            if prop.type == "Edm.DateTimeOffset":
                member["$Precision"] = 6
            _json_texts(member, "Core.Description", prop.description_vi, prop.description_en)
            if prop.unit:
                member["@Measures.Unit"] = prop.unit
            entity[prop.name] = member
        _json_texts(entity, "Core.Description", model.title_vi, model.title_en)
        _json_texts(entity, "Core.LongDescription", model.description_vi, model.description_en)
        schema[model.name] = entity
        entity_set: dict[str, Any] = {"$Collection": True, "$Type": model.qualified_type}
        _json_texts(entity_set, "Core.Description", model.title_vi, model.title_en)
        entity_set["@Capabilities.InsertRestrictions"] = {"Insertable": False}
        entity_set["@Capabilities.UpdateRestrictions"] = {"Updatable": False}
        entity_set["@Capabilities.DeleteRestrictions"] = {"Deletable": False}
        entity_set["@Capabilities.FilterFunctions"] = list(FILTER_FUNCTIONS)
        container[model.name] = entity_set
    schema[CONTAINER] = container
    return {
        "$Version": "4.01",
        "$EntityContainer": f"{NAMESPACE}.{CONTAINER}",
        "$Reference": {
            f"{uri}.json": {"$Include": [{"$Namespace": namespace, "$Alias": alias}]}
            for alias, (namespace, uri) in VOCABULARIES.items()
        },
        NAMESPACE: schema,
    }
