"""One place that turns every error into RFC 7807 problem+json.

``VppError`` children carry their own status and body (``to_problem``); FastAPI's request
validation errors become 422 with the field path of each error; anything unexpected is
logged with its traceback and answered with a 500 problem that reveals nothing internal.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError as FastApiValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vpp.errors import VppError
from vpp.request import format_path

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str, request: Request | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    if request is not None:
        body["instance"] = request.url.path
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


_LOCATIONS = ("body", "query", "path", "header", "cookie")


def _field(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The field's own path: FastAPI puts where it was found (body, query...) first, and a
    caller knows a query parameter as ``limit``, not ``query.limit``."""
    if loc[:1] == ("body",):
        return loc[1:]
    return loc[1:] if loc[:1] and loc[0] in _LOCATIONS and len(loc) > 1 else loc


def install(app: FastAPI) -> None:
    from api.limits import BodyLimit

    # a body over the limit is answered 413 here, before any route reads it
    app.add_middleware(BodyLimit)

    @app.exception_handler(VppError)
    async def vpp_error(request: Request, err: VppError) -> JSONResponse:
        body = err.to_problem() | {"instance": request.url.path}
        return JSONResponse(body, status_code=err.http_status, media_type=PROBLEM)

    @app.exception_handler(FastApiValidationError)
    async def invalid(request: Request, err: FastApiValidationError) -> JSONResponse:
        errors = [
            {
                "field": format_path(_field(tuple(e["loc"]))),
                "message": e["msg"].removeprefix("Value error, "),
            }
            for e in err.errors()
        ]
        return problem(
            422,
            "Invalid request",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            request,
            type="urn:vpp:error:RequestValidationError",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        titles = {
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not found",
            405: "Not allowed",
            409: "Conflict",
        }
        response = problem(
            err.status_code, titles.get(err.status_code, "HTTP error"), str(err.detail), request
        )
        for key, value in (err.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "Internal error",
            "the server could not complete the request; it has been logged",
            request,
        )
