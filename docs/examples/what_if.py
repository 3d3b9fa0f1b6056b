"""What if the grid limit were tighter, the batteries bigger, or the portfolio traded instead?

Builds a portfolio of mixed homes (``vpp.examples.mixed_portfolio``) behind one congestion
point, schedules it and five variants side by side on a vpp server's Ray cluster, and prints
one comparison table::

    vpp serve                                    # prints the admin token on first start
    python docs/examples/what_if.py --url http://127.0.0.1:8000 --token <token>

``--token`` defaults to ``$VPP_TOKEN``, ``--url`` to ``$VPP_URL`` (else 127.0.0.1:8000).
"""

from __future__ import annotations

import argparse
import os
import sys

from vpp.client import (
    Client,
    bigger_batteries,
    more_batteries,
    what_if,
    with_congestion_limit,
    with_market_target,
)
from vpp.errors import VppError
from vpp.examples import mixed_portfolio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("VPP_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("VPP_TOKEN"))
    parser.add_argument("--sites", type=int, default=20, help="homes in the portfolio")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per job")
    parser.add_argument("--sequential", action="store_true", help="one job at a time")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token (or set VPP_TOKEN): `vpp serve` prints one on first start")

    # the base case: homes behind a limit at 70 % of their unconstrained peak
    portfolio = mixed_portfolio(args.sites)
    limit_kw = float(portfolio["target"]["max-consumption"].split()[0])
    scenarios = {
        "limit -20%": with_congestion_limit(round(0.8 * limit_kw, 1)),
        "no limit": {"target": None},  # a dict is merged into the request
        "batteries x2": bigger_batteries(2.0),
        "+batteries": more_batteries(0.5, size_kwh=10),  # half the homes without one
        "market": with_market_target(0.8 * args.sites, deviation_price="200 EUR/MWh"),
    }
    print(
        f"{args.sites} homes, limit {limit_kw:g} kW; {len(scenarios) + 1} portfolio jobs on "
        f"{args.url}",
        file=sys.stderr,
    )
    with Client(args.url, token=args.token) as client:
        try:
            client.me()  # fail early on a wrong URL or token
            table = what_if(
                portfolio,
                scenarios,
                client=client,
                parallel=not args.sequential,
                timeout=args.timeout,
                progress=not args.quiet,
            )
        except VppError as err:  # unreachable, bad token, a job failed...
            print(f"error: {err}", file=sys.stderr)
            return 1
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
