"""The API's documentation pages (/docs: Swagger UI, /redoc: ReDoc) work offline: every asset
they load is vendored and served by the API itself, under the chart page's strict CSP, and a
headless Chromium that can reach nothing but 127.0.0.1 renders both."""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from conftest import served
from fastapi.testclient import TestClient
from test_charts import CHROMIUM, chromium, console_lines

from api.app import create_app
from api.docs import REDOC_HEADERS, SWAGGER_UI_HEADERS
from api.routes.charts import PAGE_HEADERS, STATIC_DIR

PAGES = {"/docs": "swagger-ui", "/redoc": "redoc"}
# {file: (package, version)} as named in api/static/vendor/README.md and the pages' comments
VENDORED = {
    "swagger-ui-bundle.js": ("swagger-ui-dist", "5.35.0"),
    "swagger-ui.css": ("swagger-ui-dist", "5.35.0"),
    "redoc.standalone.js": ("redoc", "2.5.4"),
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return create_app(f"sqlite:///{tmp_path_factory.mktemp('docs') / 'vpp.db'}")


@pytest.fixture(scope="module")
def http(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def local_references(html: str) -> list[str]:
    """Every URL the page refers to: src, href and ReDoc's spec-url attributes."""
    return re.findall(r'\b(?:src|href|spec-url|data-openapi-url)="([^"]*)"', html)


def readme_table() -> dict[str, tuple[str, str]]:
    """``{file: (version, sha256)}`` from the table in api/static/vendor/README.md."""
    text = (STATIC_DIR / "vendor" / "README.md").read_text()
    rows = re.findall(
        r"^\| `([\w.-]+)` \| .*? \| ([\d.]+) \| .*? \| \d+ \| `([0-9a-f]{64})` \|$", text, re.M
    )
    return {file: (version, digest) for file, version, digest in rows}


@pytest.mark.parametrize("path", PAGES)
def test_docs_page_loads_only_local_assets_under_the_strict_csp(
    http: TestClient, path: str
) -> None:
    page = http.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for header, value in {"/docs": SWAGGER_UI_HEADERS, "/redoc": REDOC_HEADERS}[path].items():
        assert page.headers[header.lower()] == value, header
    csp = page.headers["content-security-policy"]
    # the chart page's policy, ReDoc's search worker aside
    assert csp.removesuffix("; worker-src blob:") == PAGE_HEADERS["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-" not in csp.replace("style-src 'self' "
                                                                         "'unsafe-inline'", "")
    markup = re.sub(r"<!--.*?-->", "", page.text, flags=re.S)
    assert "http" not in markup, "no absolute URL (FastAPI's own page loads a CDN)"
    assert "<script>" not in markup, "inline script is blocked by the CSP"
    references = local_references(markup)
    assert references, "the page loads its assets"
    for reference in references:
        assert not re.match(r"^(?:[a-z]+:)?//", reference), f"{reference} is not local"
        url = urljoin(f"http://testserver{path}", reference)
        served = http.get(url)
        assert served.status_code == 200, url
        if reference.endswith(".js"):
            assert "javascript" in served.headers["content-type"]
        if reference.endswith(".css"):
            assert served.headers["content-type"].startswith("text/css")
    assert http.get(urljoin(f"http://testserver{path}", "openapi.json")).json()["openapi"]


def test_vendored_docs_assets_are_the_documented_npm_builds(http: TestClient) -> None:
    table = readme_table()
    html = http.get("/docs").text + http.get("/redoc").text
    for file, (package, version) in VENDORED.items():
        assert table[file][0] == version, f"README names {file} {version}"
        local = (STATIC_DIR / "vendor" / file).read_bytes()
        assert hashlib.sha256(local).hexdigest() == table[file][1], f"{file} as in README"
        assert f"{package} {version}" in html, "the page's comment names the version"
        assert http.get(f"/ui/static/vendor/{file}").content == local
    assert b'"5.35.0"' in (STATIC_DIR / "vendor" / "swagger-ui-bundle.js").read_bytes()
    assert b'"2.5.4"' in (STATIC_DIR / "vendor" / "redoc.standalone.js").read_bytes()
    for licence in ("LICENSE.swagger-ui", "NOTICE.swagger-ui", "LICENSE.redoc"):
        assert (STATIC_DIR / "vendor" / licence).stat().st_size > 0
    assert "Apache License" in (STATIC_DIR / "vendor" / "LICENSE.swagger-ui").read_text()
    assert "MIT" in (STATIC_DIR / "vendor" / "LICENSE.redoc").read_text()


def test_docs_pages_are_not_in_the_openapi_document(http: TestClient) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc"} & set(paths)


# -- headless Chromium, with every host but 127.0.0.1 unresolvable ----------------------------
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing (apt-get install -y --no-install-recommends chromium)",
)


@pytest.fixture(scope="module")
def live(app: Any) -> Iterator[str]:
    """The app on uvicorn at 127.0.0.1:<free port> in a thread: its base URL."""
    with served(app) as base:
        yield base


def offline_chromium(url: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """The DOM of ``url`` after load, as a Chromium sees it that resolves no other host (a
    CDN reference would fail, and log to the console)."""
    return chromium(
        url,
        profile,
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--dump-dom",
        budget_ms=15_000,
        timeout=180,
    )


@needs_chromium
def test_swagger_ui_renders_offline_in_chromium(live: str, tmp_path: Path) -> None:
    done = offline_chromium(f"{live}/docs", tmp_path / "profile")
    assert console_lines(done.stderr) == [], "the page logged to its console"
    html = done.stdout
    assert 'data-state="rendered"' in html, html[-2000:]
    # the operations of the spec, drawn by Swagger UI
    assert 'class="swagger-ui' in html
    assert html.count('class="opblock opblock-') > 20
    assert "/api/v1/scheduling-job/storage" in html


@needs_chromium
def test_redoc_renders_offline_in_chromium(live: str, tmp_path: Path) -> None:
    done = offline_chromium(f"{live}/redoc", tmp_path / "profile")
    # ReDoc 2's sidebar footer always shows a Redocly logo from its CDN (and hides it when it
    # does not load): the CSP refuses it, so no request leaves the machine. Nothing else.
    logo = "Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg' violates"
    lines = console_lines(done.stderr)
    assert [line for line in lines if logo not in line] == [], "the page logged to its console"
    html = done.stdout
    assert "Something went wrong" not in html, html[-2000:]
    assert "/api/v1/scheduling-job/storage" in html
    assert html.count('data-section-id="operation/') > 20
