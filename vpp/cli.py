"""The ``vpp`` command line.

``vpp schedule REQUEST.json [-o RESULT.json]``
    solve one site's request in-process and print (or write) the result JSON.
``vpp demo [--chart PATH]``
    schedule the bundled example site, store it (SQLite by default, ``VPP_DATABASE_URL``
    otherwise), print a summary against the unscheduled baseline and write a chart.

Errors in the request are printed as ``error: <field>: <message>`` lines, exit code 2;
an infeasible request exits 3. No tracebacks for anything the user can fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from vpp.errors import InfeasibleError, RequestValidationError, VppError

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except RequestValidationError as err:
        for issue in err.issues:
            print(f"error: {issue}", file=sys.stderr)
        return 2
    except InfeasibleError as err:
        print(f"infeasible: {err.message}", file=sys.stderr)
        return 3
    except VppError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpp", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("schedule", help="schedule one site's request (JSON)")
    p.add_argument("request", help="request JSON file, or - for standard input")
    p.add_argument("-o", "--output", help="write the result here instead of printing it")
    p.set_defaults(func=_schedule)

    p = sub.add_parser("demo", help="schedule, store and chart the bundled example site")
    p.add_argument("--chart", default="vpp-demo.png", help="where to write the PNG chart")
    p.add_argument("-o", "--output", help="also write the result JSON here")
    p.set_defaults(func=_demo)
    return parser


def _read_json(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as err:
        raise VppError(f"cannot read {source}: {err.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestValidationError.single(
            "", f"{source} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


def _write_json(data: Any, output: str | None) -> None:
    text = json.dumps(data, indent=2)
    if output:
        Path(output).write_text(text + "\n")
    else:
        print(text)


def _schedule(args: argparse.Namespace) -> int:
    from vpp.site import schedule

    _write_json(schedule(_read_json(args.request)), args.output)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from vpp.chart import plot_schedule
    from vpp.demo import baseline, demo_request
    from vpp.jobs import run_site_job
    from vpp.settings import get_settings
    from vpp.store import make_engine, session_factory, upgrade

    settings = get_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    run = run_site_job(
        session_factory(engine), demo_request(), account_name="demo", site_name="demo-home"
    )
    schedule, problem = run.schedule, run.problem
    base = baseline(problem)
    dt = problem.horizon.dt
    print(
        "vpp demo: a home with battery, EV, heat pump, PV and a washing machine, "
        f"{problem.horizon.steps} quarter-hours from {problem.horizon.start.isoformat()}"
    )
    print(f"  cost, scheduled:    {schedule.cost:8.2f} EUR")
    print(
        f"  cost, unscheduled:  {base.cost:8.2f} EUR   (saving {base.cost - schedule.cost:.2f} EUR)"
    )
    print(
        f"  peak import:        {schedule.site_power.max():8.2f} kW  (unscheduled "
        f"{base.site_power.max():.2f} kW)"
    )
    print("  energy per device (kWh, + consumed / - produced):")
    for name, power in schedule.device_power.items():
        before = base.device_power[name]
        print(f"    {name:16s} {power.sum() * dt:8.2f}   (unscheduled {before.sum() * dt:.2f})")
    chart = plot_schedule(
        schedule,
        Path(args.chart),
        consumption_price=np.asarray(problem.inputs.consumption_price),
        baseline=base,
        title="vpp demo: scheduled home",
    )
    print(f"  stored as job {run.job_id} in {_safe_url(settings.database_url)}")
    print(f"  chart: {chart}")
    if args.output:
        _write_json(schedule.to_json(), args.output)
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
