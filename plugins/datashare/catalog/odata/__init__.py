"""A read-only OData v4 service over the releases a caller may read (JSON format, CSDL XML and JSON).

Excel and Power BI (Data > Get Data > From OData Feed) and any OData v4 client read the catalog's
datasets through it with the catalog's own access rule. The pieces, each in its own module:

| module | holds |
|---|---|
| :mod:`.errors` | the OData error answer (JSON body, status) |
| :mod:`.model` | the entity model of a release (types, keys, descriptions) and its CSDL documents |
| :mod:`.expr` | the ``$filter`` / ``$orderby`` expression language: tokens, parser, typed tree |
| :mod:`.sql` | that tree as DuckDB SQL with every literal a bound parameter |
| :mod:`.options` | the system query options of a request and the server-driven paging token |
| :mod:`.cache` | each release's rows, sorted by key with a row number, in one local Parquet file |
| :mod:`.engine` | counting and streaming a page of JSON from that file in bounded memory |
| :mod:`.router` | the HTTP surface under ``/odata``: service roots, ``$metadata``, entity sets |
"""
