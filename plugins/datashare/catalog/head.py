"""``HEAD`` wherever ``GET`` answers: remote readers (DuckDB, fsspec, curl -I) probe before they read.

FastAPI routes declare ``GET`` only, so a ``HEAD`` would get 405. This middleware runs a ``HEAD`` as a
``GET`` and sends the answer's status and headers (``Content-Length`` included) without the body. A
route that answers ``HEAD`` itself (the file downloads, which must not read or record a file for a
probe) is left alone.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AnswerHead:
    """ASGI middleware: ``HEAD`` as a bodiless ``GET`` for the routes that do not handle it themselves."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def _native(self, scope: Scope) -> bool:
        """Whether some route answers ``HEAD`` itself for this path."""
        owner: Any = scope.get("app")
        router = getattr(owner, "router", None)
        for route in getattr(router, "routes", ()):
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or self._native(scope):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
