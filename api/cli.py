"""The ``vpp`` command line.

``vpp schedule REQUEST.json [-o RESULT.json]``
    solve one site's request in-process and print (or write) the result JSON.
``vpp portfolio PORTFOLIO.json [--method auto|admm|centralised] [--compare] [-o RESULT.json]``
    schedule a portfolio toward its target: ADMM over site actors on Ray (a local Ray, or
    the cluster at ``--address`` / ``RAY_ADDRESS``), or as one HiGHS model (``--centralised``
    is ``--method centralised``); ``auto`` picks by size (docs/portfolio.md).
``vpp serve [--host H] [--port N] [--dashboard-port N] [--address A]``
    the REST API on Ray Serve (docs/api.md); ``--dashboard-port 0``: no Ray dashboard.
``vpp admin token [--name LABEL]``
    mint a new API token for the admin, straight in the database (``VPP_DATABASE_URL``):
    the way back in after the admin's tokens are lost or revoked.
``vpp uftp keygen``
    print a new UFTP signing key pair (``VPP_UFTP_SIGNING_KEY`` and the public key).
``vpp forecast backtest [--csv FILE | --tmy3 FILE --kwp KW] [--horizon H] [--folds N] ...``
    rolling-origin backtest of the forecast model against seasonal-naive: MAE, RMSE and
    interval coverage (docs/forecasting.md).
``vpp demo [--chart PATH] [--sites N]``
    schedule the bundled example home, store it (SQLite by default, ``VPP_DATABASE_URL``
    otherwise), print a summary against the unscheduled baseline and write a chart; then
    schedule a portfolio of N mixed homes under a congestion limit on local Ray.

Errors in the request are printed as ``error: <field>: <message>`` lines, exit code 2;
an infeasible request exits 3. No tracebacks for anything the user can fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from vpp.errors import InfeasibleError, RequestValidationError, VppError

__all__ = ["main", "solve_portfolio"]


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

    p = sub.add_parser(
        "robust", help="a two-stage schedule of one site over scenarios (docs/scenarios.md)"
    )
    p.add_argument("request", help="request JSON file with scenarios, or - for standard input")
    p.add_argument("-o", "--output", help="write the result here instead of printing it")
    p.add_argument("--ray", action="store_true", help="solve the scenarios as Ray tasks")
    p.set_defaults(func=_robust)

    p = sub.add_parser(
        "headroom", help="up/down capacity a portfolio (JSON) can hold per ISP (docs/markets.md)"
    )
    p.add_argument("request", help="portfolio JSON file, or - for standard input")
    p.add_argument("-o", "--output", help="write the result here instead of printing it")
    p.set_defaults(func=_headroom)

    p = sub.add_parser(
        "simulate",
        help="closed-loop re-planning of a home over a historical period (docs/mpc.md)",
    )
    p.add_argument(
        "--start", default="2026-04-01", help="first day, YYYY-MM-DD (default %(default)s)"
    )
    p.add_argument("--days", type=int, default=7, help="days simulated (default %(default)s)")
    p.add_argument("--history-days", type=int, default=7, help="days forecasts learn from")
    p.add_argument("--horizon-hours", type=int, default=24, help="each plan's horizon")
    p.add_argument(
        "--forecast", default="seasonal-naive", choices=["perfect", "seasonal-naive", "model"]
    )
    p.add_argument("--commit", type=int, default=1, help="steps ordered ahead (1: none held)")
    p.add_argument("-o", "--output", help="write the result here instead of printing it")
    p.set_defaults(func=_simulate)

    p = sub.add_parser(
        "replan", help="re-plan a stored site or portfolio every ISP (docs/mpc.md)"
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--site", type=int, help="the stored site's id")
    which.add_argument("--portfolio", type=int, help="the stored portfolio's id (centralised)")
    p.add_argument("--target", help="a portfolio's target as JSON (docs/portfolio.md)")
    p.add_argument(
        "--soc-sensor",
        action="append",
        default=[],
        metavar="DEVICE=SENSOR",
        help="a storage's measured-SoC sensor id (repeat per storage; a portfolio's as "
        "SITE/DEVICE=SENSOR)",
    )
    p.add_argument("--horizon", default="PT24H", help="each plan's horizon (ISO 8601)")
    p.add_argument("--resolution", default="PT15M", help="the ISP (ISO 8601)")
    p.add_argument("--commit", type=int, default=1, help="steps ordered ahead (1: none held)")
    p.add_argument("--once", action="store_true", help="plan the current ISP and stop")
    p.set_defaults(func=_replan)

    p = sub.add_parser(
        "bids", help="day-ahead step bid curves of a portfolio (JSON) per hour (docs/markets.md)"
    )
    p.add_argument("request", help="portfolio JSON file, or - for standard input")
    p.add_argument("-o", "--output", help="write the result here instead of printing it")
    p.add_argument(
        "--prices",
        help="the ladder, EUR/MWh, comma-separated and increasing (default: the request's "
        "'prices' if it has them, else 21 prices over the request's own prices); a negative "
        "first price needs the = form: --prices=-20,25,75",
    )
    p.set_defaults(func=_bids)

    p = sub.add_parser("portfolio", help="schedule a portfolio (JSON) toward its target")
    p.add_argument("request", help="portfolio JSON file, or - for standard input")
    p.add_argument("-o", "--output", help="write the result here instead of printing it")
    p.add_argument(
        "--method",
        choices=["auto", "admm", "centralised"],
        help="ADMM on Ray, one HiGHS model, or auto: by portfolio size (default: the "
        "request's method, else auto)",
    )
    p.add_argument(
        "--centralised",
        action="store_true",
        help="the same as --method centralised",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="also solve centralised and report the gap to the exact optimum",
    )
    p.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS or local)")
    p.add_argument(
        "--gap-tolerance",
        type=float,
        help="ADMM stops once its certified gap is at most this (default 0.001 = 0.1 %%)",
    )
    p.add_argument(
        "--max-iterations", type=int, help="ADMM iteration cap, a safety net (default 100)"
    )
    p.add_argument(
        "--time-limit",
        type=float,
        help="seconds: ADMM stops iterating, a centralised MILP returns its incumbent",
    )
    p.add_argument(
        "--tolerance", type=float, help="ADMM residuals' relative tolerance (default 1e-4)"
    )
    p.set_defaults(func=_portfolio)

    p = sub.add_parser("serve", help="the REST API on Ray Serve, with the Ray dashboard")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS or local)")
    p.add_argument(
        "--dashboard-port",
        type=int,
        metavar="N",
        help="port of the local Ray's dashboard on 127.0.0.1 (default 8265; 0: no dashboard; "
        "not with --address or RAY_ADDRESS)",
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("admin", help="administration straight in the database")
    admin = p.add_subparsers(required=True, metavar="TOOL")
    a = admin.add_parser(
        "token",
        help="mint a new API token for the admin and print it (VPP_DATABASE_URL)",
        description="Mint a new API token for the admin user (created if missing) and print "
        "it on standard output, once: the way back in when the admin's tokens are lost or "
        "revoked. Needs the database the server uses (VPP_DATABASE_URL).",
    )
    a.add_argument(
        "--name", default="vpp admin token", help="the token's label in the token list"
    )
    a.set_defaults(func=_admin_token)

    p = sub.add_parser("demo", help="the example home, then a portfolio of homes on Ray")
    p.add_argument("--chart", default="vpp-demo.png", help="where to write the PNG chart")
    p.add_argument("-o", "--output", help="also write the home's result JSON here")
    p.add_argument("--sites", type=int, default=50, help="homes in the portfolio demo")
    p.set_defaults(func=_demo)

    p = sub.add_parser("uftp", help="UFTP (ShapeShifter) tools")
    uftp = p.add_subparsers(required=True, metavar="TOOL")
    k = uftp.add_parser("keygen", help="print a new Ed25519 signing key pair (base64)")
    k.set_defaults(func=_uftp_keygen)
    _add_forecast(sub)
    return parser


def _uftp_keygen(args: argparse.Namespace) -> int:
    """The key pair in shapeshifter-uftp's form: base64 of NaCl's 64-byte secret key (set it
    as VPP_UFTP_SIGNING_KEY) and of the 32-byte public key (give it to the peers)."""
    from base64 import b64encode

    from nacl.bindings import crypto_sign_keypair

    public, private = crypto_sign_keypair()
    print(f"VPP_UFTP_SIGNING_KEY={b64encode(private).decode()}")
    print(f"public-key: {b64encode(public).decode()}")
    return 0


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


def _headroom(args: argparse.Namespace) -> int:
    from vpp.headroom import headroom

    _write_json(headroom(_read_json(args.request)), args.output)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from datetime import date

    from vpp.mpc import simulate_home

    try:
        first_day = date.fromisoformat(args.start)
    except ValueError:
        raise RequestValidationError.single("start", "a date, YYYY-MM-DD") from None
    result = simulate_home(
        first_day,
        args.days,
        history_days=args.history_days,
        horizon_hours=args.horizon_hours,
        forecaster=args.forecast,
        commit=args.commit,
    )
    _write_json(result.to_json(), args.output)
    return 0


def _replan(args: argparse.Namespace) -> int:
    import threading
    from datetime import UTC, datetime

    from pydantic import TypeAdapter, ValidationError

    from api.replanning import Replanner, Replanning
    from store import make_engine, session_factory, upgrade
    from vpp.settings import get_settings

    sensors: dict[str, int] = {}
    for item in args.soc_sensor:
        name, _, sensor = item.partition("=")
        if not name or not sensor.isdigit():
            raise RequestValidationError.single("soc-sensor", f"{item!r} is not DEVICE=SENSOR_ID")
        sensors[name] = int(sensor)
    durations = []
    for key in ("horizon", "resolution"):
        try:
            durations.append(TypeAdapter(timedelta).validate_python(getattr(args, key)))
        except ValidationError:
            raise RequestValidationError.single(key, "an ISO 8601 duration") from None
    try:
        target = json.loads(args.target) if args.target is not None else None
    except json.JSONDecodeError:
        raise RequestValidationError.single("target", "must be a JSON object") from None
    plan = Replanning(
        args.site, sensors, durations[0], durations[1], args.commit,
        portfolio_id=args.portfolio, target=target,
    )  # fmt: skip
    engine = make_engine(get_settings().database_url)
    upgrade(engine)
    replanner = Replanner(session_factory(engine), plan)
    try:
        if args.once:
            print(replanner.tick(datetime.now(UTC)))
        else:
            replanner.run(threading.Event())
    finally:
        engine.dispose()
    return 0


def _bids(args: argparse.Namespace) -> int:
    from vpp.bids import bid_curves, validate_prices
    from vpp.errors import RequestValidationError

    request = _read_json(args.request)
    prices: Any = request.pop("prices", None) if isinstance(request, dict) else None
    if args.prices is not None:
        try:
            prices = [float(p) for p in args.prices.split(",")]
        except ValueError:
            raise RequestValidationError.single(
                "prices", f"--prices {args.prices!r}: give numbers separated by commas"
            ) from None
    ladder = None if prices is None else validate_prices(prices)
    _write_json(bid_curves(request, prices=ladder), args.output)
    return 0


def _robust(args: argparse.Namespace) -> int:
    request = _read_json(args.request)
    if args.ray:
        import ray

        from actors.scenarios import solve_robust_on_ray
        from vpp.settings import get_settings

        ray.init(address=get_settings().ray_address, log_to_driver=False)
        try:
            result = solve_robust_on_ray(request)
        finally:
            ray.shutdown()
    else:
        from vpp.stochastic import solve_robust

        result = solve_robust(request)
    _write_json(result, args.output)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from api.serve import run_forever

    run_forever(args.host, args.port, args.address, args.dashboard_port)
    return 0


def _admin_token(args: argparse.Namespace) -> int:
    """The token alone on stdout (for scripts), what it is on stderr."""
    from sqlalchemy.exc import OperationalError

    from store import make_engine, session_factory, upgrade
    from store.admin import database_unreachable, mint_admin_token
    from vpp.settings import get_settings

    if not args.name.strip():
        raise VppError("--name must not be empty")
    url = get_settings().database_url
    engine = make_engine(url)
    try:
        upgrade(engine)
        with session_factory(engine).begin() as session:
            row, token = mint_admin_token(session, args.name)
            token_id, user, account = row.id, row.user.name, row.user.account.name
    except OperationalError as err:
        raise VppError(database_unreachable(url, err)) from None
    finally:
        engine.dispose()
    print(token, flush=True)
    print(
        f"new API token {args.name!r} (id {token_id}) of user {user!r} of account {account!r} "
        f"in {_safe_url(url)}; it is not shown again. Revoke it with "
        f"DELETE /api/v1/tokens/{token_id}.",
        file=sys.stderr,
    )
    return 0


def _portfolio(args: argparse.Namespace) -> int:
    request = _read_json(args.request)
    if isinstance(request, dict):  # flags override the request's own fields
        flags = {
            "method": "centralised" if args.centralised else args.method,
            "gap-tolerance": args.gap_tolerance,
            "max-iterations": args.max_iterations,
            "time-limit": args.time_limit,
            "compare": args.compare or None,
        }
        request |= {k: v for k, v in flags.items() if v is not None}
    result = solve_portfolio(
        request,
        address=args.address,
        tolerance=args.tolerance,
        show_progress=args.output is not None,
    )
    _write_json(result, args.output)
    if args.output:
        _summary(result)
    return 0


def solve_portfolio(
    request: Any,
    *,
    address: str | None = None,
    tolerance: float | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Schedule a portfolio by its ``method`` (ADMM on Ray, or centralised), with the gap
    to the centralised optimum when it asks to ``compare``."""
    from actors.run import run_portfolio
    from vpp.admm import settings_for
    from vpp.client.progress import ProgressBar
    from vpp.portfolio import choose_method, validate_portfolio

    portfolio = validate_portfolio(request)  # field errors before any Ray start-up
    settings: dict[str, Any] = {}
    if tolerance is not None:
        settings["eps_rel"] = tolerance
    admm = choose_method(portfolio) == "admm"
    total = settings_for(portfolio).max_iterations
    bar = ProgressBar(" ", total) if show_progress and admm else None
    result = run_portfolio(
        request, address=address, settings=settings, on_progress=bar.step if bar else None
    )
    if bar:
        bar.close()
    return result


def _summary(result: dict[str, Any]) -> None:
    p = result["portfolio"]
    print(
        f"  portfolio cost {p['cost']['value']:.2f} EUR ({p['method']}), {p['iterations']} "
        f"iterations (converged: {p['converged']}), limit violation "
        f"{p['target-violation-kw']:g} kW",
        file=sys.stderr,
    )
    if p.get("certified-gap") is not None:
        print(
            f"  lower bound {p['lower-bound']['value']:.2f} EUR: certified gap "
            f"{100 * p['certified-gap']:.4f} %",
            file=sys.stderr,
        )
    if "gap" in p:
        print(f"  gap to the centralised optimum: {100 * p['gap']:.4f} %", file=sys.stderr)
    for site, reason in p.get("degraded-reasons", {}).items():
        print(f"  degraded site {site}: {reason}", file=sys.stderr)


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from actors.job_service import run_site_job
    from store import make_engine, session_factory, upgrade
    from vpp.chart import plot_schedule
    from vpp.demo import baseline, demo_request
    from vpp.settings import get_settings

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
    if args.sites > 0:
        _portfolio_demo(args.sites)
    return 0


def _portfolio_demo(n: int) -> None:
    import numpy as np

    from vpp.examples import mixed_portfolio

    request = mixed_portfolio(n, seed=7)
    limit = float(request["target"]["max-consumption"].split()[0])
    print(
        f"\nportfolio demo: {n} mixed homes behind congestion point "
        f"{request['target']['congestion-point']}, limit {limit:g} kW, on local Ray"
    )
    # ADMM on purpose (auto would solve this size centralised): the demo shows the actors
    result = solve_portfolio({**request, "method": "admm", "compare": True})
    p = result["portfolio"]
    alone = solve_portfolio(
        {**request, "target": None, "method": "centralised"}, show_progress=False
    )["portfolio"]
    print(
        f"  cost:        {p['cost']['value']:8.2f} EUR   (centralised optimum "
        f"{p['centralised-cost']:.2f} EUR, gap {100 * p['gap']:.4f} %)"
    )
    print(
        f"  lower bound: {p['lower-bound']['value']:8.2f} EUR   (certified gap "
        f"{100 * p['certified-gap']:.4f} %, from the ADMM's own prices)"
    )
    print(
        f"  iterations:  {p['iterations']:8d}       (converged: {p['converged']}, "
        f"stopped by {p['stopped-by']})"
    )
    print(
        f"  peak:        {max(p['power']['values']):8.2f} kW    (without the limit "
        f"{float(np.max(alone['power']['values'])):.2f} kW; limit {limit:g} kW)"
    )
    print(
        f"  limit violation: {p['target-violation-kw']:g} kW; "
        f"feasibility step cost {p.get('feasibility-cost', 0.0):+.4f} EUR"
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- vpp forecast (docs/forecasting.md) ---------------------------------------------------------


def _add_forecast(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("forecast", help="forecasting tools (docs/forecasting.md)")
    tools = p.add_subparsers(required=True, metavar="TOOL")
    b = tools.add_parser(
        "backtest",
        help="MAE, RMSE and interval coverage of the forecast model against seasonal-naive",
    )
    data = b.add_mutually_exclusive_group()
    data.add_argument(
        "--tmy3",
        default="723170TYA.CSV",
        help="pvlib's TMY3 weather file the PV series is built from (default 723170TYA.CSV, "
        "Greensboro NC)",
    )
    data.add_argument(
        "--csv", help="your own series instead: CSV of timestamp (with offset),value rows"
    )
    b.add_argument("--kwp", type=float, default=5.0, help="PV system size (default 5 kWp)")
    b.add_argument("--horizon", type=float, default=24.0, help="hours ahead (default 24)")
    b.add_argument("--folds", type=int, default=48, help="forecast origins (default 48)")
    b.add_argument("--step", type=float, default=168.0, help="hours between origins (default 168)")
    b.add_argument("--coverage", type=float, default=0.8, help="interval coverage (0.8)")
    b.add_argument("--country", help="holidays of this country as a feature, e.g. NL")
    b.add_argument("--json", action="store_true", help="print the scores as JSON")
    b.set_defaults(func=_forecast_backtest)
    f = tools.add_parser(
        "sensor", help="forecast a stored sensor and store the forecast on it (as the REST job)"
    )
    f.add_argument("sensor", type=int, help="the sensor's id")
    f.add_argument("--start", help="first step, ISO 8601 (default: after the last measurement)")
    f.add_argument("--duration", default="PT24H", help="ISO 8601 (default PT24H)")
    f.add_argument("--history", default="P28D", help="ISO 8601 (default P28D)")
    f.add_argument("--coverage", type=float, default=0.8, help="interval coverage (0.8)")
    f.add_argument("--timezone", default="UTC", help="IANA zone of the calendar features")
    f.add_argument("--country", help="its public holidays as a feature, e.g. NL")
    f.add_argument("-o", "--output", help="write the result here instead of printing it")
    f.set_defaults(func=_forecast_sensor)


def _forecast_sensor(args: argparse.Namespace) -> int:
    from api.forecasting import ForecastingIn, run_forecast
    from api.references import AccountScope
    from store import make_engine, session_factory, upgrade
    from store import repository as repo
    from vpp.request import validate
    from vpp.settings import get_settings

    fields = ("start", "duration", "history", "coverage", "timezone", "country")
    raw = {k: getattr(args, k) for k in fields if getattr(args, k) is not None}
    body = validate(ForecastingIn, {"sensor": args.sensor, **raw})
    engine = make_engine(get_settings().database_url)
    upgrade(engine)
    try:
        with session_factory(engine).begin() as session:
            owner = repo.get_sensor(session, args.sensor).account_id
            job_id, result = run_forecast(session, AccountScope((owner,)), body)
    finally:
        engine.dispose()
    _write_json({"forecasting-job": job_id, "status": "finished", "result": result}, args.output)
    return 0


def _forecast_backtest(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from vpp.forecast import MODEL, NAIVE, backtest

    series, label = _backtest_series(args)
    result = backtest(
        series,
        horizon=timedelta(hours=args.horizon),
        folds=args.folds,
        step=timedelta(hours=args.step),
        coverage=args.coverage,
        country=args.country,
    )
    rows = {MODEL: result.model, NAIVE: result.naive}
    if args.json:
        scores = {name: vars(s) for name, s in rows.items()}
        _write_json({"data": label, "folds": len(result.origins), **scores}, None)
        return 0
    print(f"data: {label}")
    print(
        f"backtest: {len(result.origins)} origins every {args.step:g} h from "
        f"{result.origins[0].isoformat()} to {result.origins[-1].isoformat()}, "
        f"{args.horizon:g} h ahead, {args.coverage:.0%} intervals"
    )
    print(f"{'model':<20}{'MAE':>10}{'RMSE':>10}{'coverage':>10}{'steps':>8}")
    for name, s in rows.items():
        print(f"{name:<20}{s.mae:>10.4f}{s.rmse:>10.4f}{s.coverage:>10.1%}{s.n:>8d}")
    print(f"MAE skill over seasonal-naive: {result.mae_skill:.1%}")
    return 0


def _backtest_series(args: argparse.Namespace) -> tuple[Any, str]:
    """The series to backtest and a line describing it."""
    if args.csv:
        return _read_series_csv(args.csv), f"{args.csv}"
    from vpp.solar import TMY3_FILES, pv_power

    series = pv_power(args.tmy3, kwp=args.kwp)
    station = TMY3_FILES[args.tmy3]
    return series, (
        f"AC power (kW) of a {args.kwp:g} kWp PV system (pvlib PVWatts, 30 deg tilt, south) "
        f"under pvlib's TMY3 {args.tmy3} ({station}), {len(series)} hourly values"
    )


def _read_series_csv(path: str) -> Any:
    import pandas as pd

    try:
        frame = pd.read_csv(path, header=None, comment="#")
    except (OSError, ValueError) as err:
        raise RequestValidationError.single("csv", f"cannot read {path}: {err}") from None
    if frame.shape[1] != 2:
        raise RequestValidationError.single("csv", "needs two columns: timestamp,value")
    if not pd.api.types.is_numeric_dtype(frame[1]):  # a header row
        frame = frame.iloc[1:]
    try:
        index = pd.DatetimeIndex(pd.to_datetime(frame[0], utc=True))
        values = pd.to_numeric(frame[1]).to_numpy(dtype=float)
    except (ValueError, TypeError) as err:
        raise RequestValidationError.single("csv", f"{path}: {err}") from None
    return pd.Series(values, index=index)


if __name__ == "__main__":
    sys.exit(main())
