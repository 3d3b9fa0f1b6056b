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

from vpp.errors import AuthenticationError, VppError
from vpp.request import format_path

__all__ = [
    "LINKS",
    "PROBLEM",
    "PROBLEM_SCHEMA",
    "document",
    "errors",
    "install",
    "link",
    "problem",
]

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


def _allowed(request: Request) -> list[str]:
    from starlette.routing import Match, Route

    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": "__none__"})
            if match != Match.NONE:
                methods |= route.methods
    return sorted(methods)


def install(app: FastAPI) -> None:
    from api.limits import BodyLimit

    # a body over the limit is answered 413 here, before any route reads it
    app.add_middleware(BodyLimit)

    @app.exception_handler(VppError)
    async def vpp_error(request: Request, err: VppError) -> JSONResponse:
        body = err.to_problem() | {"instance": request.url.path}
        response = JSONResponse(body, status_code=err.http_status, media_type=PROBLEM)
        if isinstance(err, AuthenticationError):  # RFC 6750: say which scheme to use
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(FastApiValidationError)
    async def invalid(request: Request, err: FastApiValidationError) -> JSONResponse:
        errors = [
            {"field": "body", "message": f"invalid JSON at character {e['loc'][-1]}"}
            if e["type"] == "json_invalid"  # FastAPI's loc is (body, position): not a field
            else {
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
        if err.status_code == 400 and isinstance(err.__cause__, UnicodeDecodeError):
            # FastAPI's answer to a JSON body that is not UTF-8: invalid JSON, answered as
            # FastAPI answers a syntax error (422), not with a 400 naming nothing
            message = "invalid JSON: not UTF-8 text"
            return problem(
                422,
                "Invalid request",
                f"body: {message}",
                request,
                type="urn:vpp:error:RequestValidationError",
                errors=[{"field": "body", "message": message}],
            )
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
        if err.status_code == 405:  # every method of this path, not only the first route's
            response.headers["Allow"] = ", ".join(_allowed(request))
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


# -- the spec: what these handlers send, documented ------------------------------------------
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 7807 problem details; a 422 also lists each invalid field in `errors`",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

_DESCRIPTIONS = {
    401: "no bearer token, or an unknown or revoked one",
    403: "your role may not do this",
    404: "no such thing in the accounts you see",
    409: "conflicts with what is stored",
    413: "the body is over the size limit",
    422: "invalid request; `errors` names each field",
    500: "unexpected; logged, nothing internal revealed",
    503: "not available: UFTP is not configured (VPP_UFTP_DOMAIN, VPP_UFTP_SIGNING_KEY)",
}


def _problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    return {
        "description": description or _DESCRIPTIONS.get(status, "problem"),
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def errors(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: the error statuses it sends itself, each a problem+json.

    ``errors(403, 404)``, or with a route's own wording ``errors(e409="the job is done")``.
    What every route of a kind sends is added by :func:`document`: 401 with a bearer token,
    413 with a body, 422 and 500 everywhere (an unknown query parameter; a bug, logged).
    """
    out: dict[int | str, dict[str, Any]] = {s: _problem_response(s) for s in statuses}
    for key, text in described.items():
        status = int(key.removeprefix("e"))
        out[status] = _problem_response(status, text)
    return out


LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {}
"""OpenAPI links: ``(method, path, status) -> {name: (method, path, parameters)}``, for
stateful testing and for readers (what a created thing's id is good for). Filled by
:func:`link`."""


def link(
    source: tuple[str, str, int], name: str, target: tuple[str, str], **parameters: str
) -> None:
    """Declare that ``target``'s ``parameters`` come from ``source``'s response (runtime
    expressions such as ``$response.body#/id``)."""
    method, path, status = source
    LINKS.setdefault((method, path, str(status)), {})[name] = (*target, parameters)


def document(app: FastAPI) -> None:
    """Post-process the app's OpenAPI spec: the ``Problem`` schema; problem+json for the
    error statuses each route declares (:func:`errors`) and those every route of its kind
    sends (FastAPI's default ``HTTPValidationError`` 422 is replaced: :func:`install`
    renders validation errors as problem+json); the links of :data:`LINKS`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = generate()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Problem"] = PROBLEM_SCHEMA
        paths = spec.get("paths", {})
        for path, item in paths.items():
            for op in item.values():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                statuses = {500}  # a bug: logged, answered without detail
                if "422" in op["responses"] or path.startswith("/api/"):
                    # FastAPI's: invalid parameters or body; ours: a query parameter the
                    # route does not read (api.deps.known_query)
                    statuses.add(422)
                if "requestBody" in op:
                    statuses.add(413)  # api.limits.BodyLimit
                if op.get("security"):
                    statuses.add(401)
                for status in statuses:
                    existing = op["responses"].get(str(status))
                    if existing is None or status == 422:
                        op["responses"][str(status)] = _problem_response(status)
                for code, response in op["responses"].items():  # e.g. /ready's 503
                    if code[:1] in "45" and not response.get("content"):
                        response["content"] = _problem_response(int(code))["content"]
        for (method, path, code), links in LINKS.items():
            paths[path][method.lower()]["responses"][code]["links"] = {
                name: {
                    "operationId": paths[target][target_method.lower()]["operationId"],
                    "parameters": parameters,
                }
                for name, (target_method, target, parameters) in links.items()
            }
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
