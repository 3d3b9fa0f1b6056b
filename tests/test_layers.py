"""The floors hold: vpp/ (the pure core) imports no httpx, Ray, FastAPI or SQLAlchemy, and
only the client's transport imports httpx. ruff's TID251 (pyproject.toml) enforces it; these
tests show the rule bites where it should and nowhere else. Nothing is written to the tree:
ruff reads the code from stdin under the path it pretends to lint."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BANNED = ("httpx", "ray", "fastapi", "sqlalchemy")
HEADER = "from __future__ import annotations\n\n"


def ruff(path: str, source: str) -> subprocess.CompletedProcess[str]:
    """``ruff check`` of ``source`` as if it were the file at ``path`` (under the root)."""
    ruff_bin = shutil.which("ruff")
    command = [ruff_bin] if ruff_bin else [sys.executable, "-m", "ruff"]
    return subprocess.run(
        [*command, "check", "--no-cache", "--select", "TID251", "--stdin-filename", path, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize("module", BANNED)
@pytest.mark.parametrize("path", ["vpp/site.py", "vpp/client/operations.py", "vpp/new/x.py"])
def test_the_core_may_not_import_io_libraries(path: str, module: str) -> None:
    for statement in (f"import {module}\n", f"from {module} import something\n"):
        checked = ruff(path, HEADER + statement)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert f"TID251 `{module}` is banned: vpp/ is the pure core" in checked.stdout


@pytest.mark.parametrize(
    "path", ["vpp/client/transport.py", "api/app.py", "store/x.py", "actors/x.py", "tests/x.py"]
)
def test_the_transport_and_the_upper_floors_may(path: str) -> None:
    source = HEADER + "".join(f"import {module}\n" for module in BANNED)
    source += "\n__all__ = " + repr(list(BANNED)) + "\n"
    checked = ruff(path, source)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_httpx_is_imported_only_by_the_transport() -> None:
    """Also at run time: no other module of vpp/ names a banned library in an import
    (inside functions too, which the lint rule sees as well)."""
    offenders = []
    for file in sorted((ROOT / "vpp").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            for name in names:
                if name.split(".")[0] in BANNED:
                    offenders.append((file.relative_to(ROOT).as_posix(), name))
    assert offenders == [("vpp/client/transport.py", "httpx")]
