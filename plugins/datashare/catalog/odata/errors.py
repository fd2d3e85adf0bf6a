"""The OData error answer: a status and the JSON body of OData JSON Format §21.

Every refusal of the OData service, from a malformed ``$filter`` to a dataset the caller may not
read, is raised as :class:`ODataError` and answered as ``{"error": {"code", "message", "target"}}``.
The message is safe to show to anyone: it names the caller's own input, never a dataset they may
not read, a path on the server or a SQL statement.
"""

from __future__ import annotations

from typing import Any


class ODataError(Exception):
    """An OData answer other than 200, with a stable code and a message for the caller."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target

    def body(self) -> dict[str, Any]:
        """The JSON error document."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


def bad_request(message: str, target: str | None = None) -> ODataError:
    """400: the request is malformed or names something that does not exist in the model."""
    return ODataError(400, "BadRequest", message, target)


def not_implemented(message: str, target: str | None = None) -> ODataError:
    """501: valid OData that this service does not implement (an option, a function, an operator)."""
    return ODataError(501, "NotImplemented", message, target)


def not_found() -> ODataError:
    """404: unknown, or not readable by the caller (the same answer on purpose, as in the catalog)."""
    return ODataError(404, "NotFound", "Not found: no such resource, or you may not see it.")
