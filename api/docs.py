"""The API's documentation pages, served offline under a strict CSP.

* ``GET /docs``: Swagger UI; ``GET /redoc``: ReDoc. Both read ``/openapi.json``.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (blank without internet) and start
them with inline script (no strict CSP possible). These pages are static files in
``api/static`` with the assets vendored from npm (``api/static/vendor/README.md``), served
from ``/ui/static`` like the chart page's vega builds, with the chart page's headers.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.routes.charts import PAGE_HEADERS, STATIC_DIR

__all__ = ["CSP", "REDOC_HEADERS", "SWAGGER_UI_HEADERS", "redoc", "router", "swagger_ui"]


CSP = "Content-Security-Policy"
SWAGGER_UI_HEADERS = PAGE_HEADERS
REDOC_HEADERS = {
    **PAGE_HEADERS,
    # ReDoc runs its search index in a worker it makes from a blob of its own code; without
    # this the worker is refused and search silently finds nothing. Only scripts the page
    # may run ('self') can make such a blob.
    CSP: PAGE_HEADERS[CSP] + "; worker-src blob:",
}

router = APIRouter(include_in_schema=False)


def _page(name: str, headers: dict[str, str]) -> HTMLResponse:
    return HTMLResponse((STATIC_DIR / name).read_text(encoding="utf-8"), headers=headers)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return _page("docs.html", SWAGGER_UI_HEADERS)


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return _page("redoc.html", REDOC_HEADERS)
