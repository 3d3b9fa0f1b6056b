"""Shared by the benchmark scripts: write one ``## `` section of docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section titled ``heading`` (up to the next heading of level 1 or 2) with
    ``section``, or append it; every other section stays as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == heading), None)
    body = section.rstrip("\n") + "\n"
    if start is None:
        new = text.rstrip("\n") + "\n\n" + body
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if re.match(r"^#{1,2} ", lines[i])),
            len(lines),
        )
        after = "".join(lines[end:])
        new = "".join(lines[:start]) + body + ("\n" + after if after else "")
    path.write_text(new)
