"""The benchmark scripts stay readable and runnable (issue 12, item 8).

Every function in ``benchmarks/*.py`` is at most ``MAX_LINES`` long (the few older ones
listed in ``KNOWN_LONG`` may not grow); each benchmark's command line answers ``--help``;
``portfolio_admm.py --from-raw`` renders its report from saved measurements, without Ray;
and the x-update profile (``admm_profile.py``) still runs against vpp's x-update.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
MAX_LINES = 60
# (file, function) -> its length today: not split yet, must not grow
KNOWN_LONG = {("site_schedule.py", "site_request"): 80, ("site_schedule.py", "report"): 69}
CLIS = ["api_latency.py", "portfolio_admm.py", "portfolio_scale.py", "site_schedule.py"]


def function_lengths(path: Path) -> dict[str, int]:
    """Lines of every function and method in ``path`` (decorators excluded), by name;
    methods as ``Class.name``."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                lengths[name] = (child.end_lineno or child.lineno) - child.lineno + 1
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), filename=str(path)), "")
    return lengths


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_no_long_functions(path: Path) -> None:
    too_long = {
        name: n
        for name, n in function_lengths(path).items()
        if n > KNOWN_LONG.get((path.name, name), MAX_LINES)
    }
    assert not too_long, f"functions over {MAX_LINES} lines in {path.name}: {too_long}"


@pytest.mark.parametrize("script", CLIS)
def test_help(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def run(n: int, layout: str, cap: int, wall: float, cost: float) -> dict[str, object]:
    """A ``Run`` of admm_measure.py as ``--raw`` saves it."""
    return {
        "n": n,
        "method": "admm",
        "layout": layout,
        "cap": cap,
        "actors": 2,
        "wall": wall,
        "cost": cost,
        "violation": 0.0,
        "iterations": cap,
        "converged": False,
        "feasibility_cost": -0.01,
        "admm_objective": cost + 0.01,
        "peak_workers_mib": 500.0,
        "peak_all_mib": 1100.0,
        "s_per_iter": 0.05,
        "coordinator_up": 1.0,
        "startup": 0.2,
        "after": 2.0,
        "rho_changes": 3,
        "other_cores": 0.5,
        "degraded": 0,
        "final_residuals": [0.3, 0.1, 0.02, 0.01],
        "extra": {},
    }


def test_portfolio_admm_from_raw(tmp_path: Path) -> None:
    central = {
        "wall": 0.2,
        "build": 0.05,
        "cost": 5.0,
        "violation": 0.0,
        "mip_gap": 0.0,
        "time_limit": False,
        "limit_s": 60.0,
        "cols": 2556,
        "rows": 1249,
        "ints": 56,
        "rss_mib": 160.0,
        "other_cores": 0.25,
    }
    raw = {
        "central": {"3": central},
        "runs": [run(3, "2 shards", 5, 10.0, 5.001), run(3, "2 shards", 3, 9.0, 5.002)],
        "profile": None,
        "command": "python benchmarks/portfolio_admm.py --sizes 3 --max-iterations 5",
        "machine": dict.fromkeys(
            ("nproc", "cpu", "mem", "python", "ray", "highspy", "clarabel", "numpy", "os"), "x"
        ),
        "cap": 5,
        "elapsed": 60.0,
    }
    saved = tmp_path / "raw.json"
    saved.write_text(json.dumps(raw))
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    script = "benchmarks/portfolio_admm.py"
    done = subprocess.run(
        [sys.executable, script, "--from-raw", str(saved), "--write", str(doc)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = doc.read_text()
    assert "## Other\n\nkept\n" in text
    assert "## Portfolio ADMM (issue 3)" in text
    gap = 100 * (5.001 - 5.0) / 5.0
    assert f"| 3 | ADMM on Ray | 2 shards (2) | 5 | **10.0** | {10.0 / 0.2:.1f} |" in text
    assert f"**{gap:+.4f} %**" in text
    assert "| ADMM wall ≤ 3x centralised at N = 3 (cap 5, fastest layout) | 50.0x" in text
    assert "Gap/time trade-off at N = 3 (lower iteration caps):" in text


PROFILE_SMOKE = """
from admm_measure import SEED, SHIFTABLE_SHARE
from admm_profile import profile_shard
from admm_report import profile_paragraphs, suggestions
from vpp.examples import mixed_portfolio

prof = profile_shard(mixed_portfolio(4, seed=SEED, shiftable_share=SHIFTABLE_SHARE), 2, None, 1, 1)
prof.pop("cprofile_text")
central = {4: {"cost": 1.0, "mip_gap": 0.0, "wall": 1.0}}
text = "\\n\\n".join(profile_paragraphs(prof, []) + suggestions(central, [], prof, 5))
assert "OSQP `solve()`, native" in text, text
print(prof["phases"]["steady"]["whole"])
"""


def test_admm_profile_runs() -> None:
    """The profiler calls vpp's x-update as it is now (it once broke on a new argument
    unnoticed) and the report renders what it measures."""
    done = subprocess.run(
        [sys.executable, "-c", PROFILE_SMOKE],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
