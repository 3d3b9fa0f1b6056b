"""REST API latency: submit -> result for 96-step battery jobs, and requests/s under load.

    python benchmarks/api_latency.py [--jobs 60] [--concurrency 8] [--seconds 15]
                                     [--poll 0.005] [--write docs/benchmarks.md]

Starts a local Ray (2 CPUs), deploys the API with Serve on 127.0.0.1 (a free port) over a
fresh SQLite database, then measures

1. sequential jobs: POST /scheduling-job/storage, then GET until finished (polling every
   5 ms, or as ``--poll`` says): p50/p95/max of submit -> result;
2. bounded concurrent load: ``--concurrency`` clients each submitting and polling jobs for
   ``--seconds`` (or at most 40 jobs each): finished jobs/s and their latency percentiles;
3. a trivial route (GET /api/v1/health): p50, the floor Serve itself sets.

Traffic stays on 127.0.0.1; loops are bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from report import write_section  # benchmarks/report.py: run as python benchmarks/<script>.py

from api.serve import MAX_ONGOING_REQUESTS

ROOT = Path(__file__).resolve().parent.parent
REQUEST = json.loads((ROOT / "docs" / "examples" / "battery.json").read_text())
TOKEN = "vpp_benchmark-token"
SECTION = "## REST API latency (issue 4)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(port: int, directory: Path) -> str:
    import ray

    from api.serve import deploy
    from store import make_engine, session_factory, upgrade
    from store import repository as repo

    url = f"sqlite:///{directory / 'bench.db'}"
    os.environ["VPP_DATABASE_URL"] = url
    os.environ["VPP_DATA_DIR"] = str(directory)
    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine).begin() as session:
        repo.ensure_admin(session, token=TOKEN)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    deploy("127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    return base


POLL = {"first": 0.005, "max": 0.005}
"""How a client waits: the first GET after ``first`` seconds, doubling up to ``max``
(``--poll``; vpp's Python client waits 0.05 s doubling to 1 s)."""


def one_job(client: httpx.Client) -> float:
    """Seconds from submitting a job to reading its finished result."""
    started = time.perf_counter()
    job = client.post("/api/v1/scheduling-job/storage", json=REQUEST).json()["job"]
    interval = POLL["first"]
    while True:
        time.sleep(interval)
        body = client.get(f"/api/v1/scheduling-job/{job}").json()
        if body["status"] == "finished":
            return time.perf_counter() - started
        if body["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"job {job} ended {body['status']}")
        interval = min(interval * 2, POLL["max"])


def percentiles(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "max": float(ms.max()), "n": float(len(ms))}


def sequential(base: str, jobs: int) -> dict[str, float]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for _ in range(3):  # warm-up: runner start, imports
            one_job(client)
        return percentiles([one_job(client) for _ in range(jobs)])


def concurrent(base: str, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` threads submitting and waiting for jobs; the finished jobs' latencies,
    jobs/s, and ``errors``: jobs that failed or requests that did (each printed)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=60) as client:
            for _ in range(40):
                if time.monotonic() > deadline:
                    return
                try:
                    latency = one_job(client)
                except (httpx.HTTPError, RuntimeError, KeyError) as err:  # counted, reported
                    with lock:
                        errors.append(f"{type(err).__name__}: {err}")
                    continue
                with lock:
                    latencies.append(latency)

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    for error in errors:
        print(f"error under load: {error}")
    return percentiles(latencies) | {
        "jobs_per_s": len(latencies) / elapsed, "errors": float(len(errors))
    }


def trivial(base: str, n: int = 200) -> float:
    with httpx.Client(base_url=base) as client:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            client.get("/api/v1/health")
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def _load_met(load: dict[str, float], concurrency: int) -> str:
    if concurrency != 16:
        return f"not measured here (concurrency {concurrency})"
    return "met" if load["jobs_per_s"] * 60 >= 1000 and load["errors"] == 0 else "NOT met"


def _polling() -> str:
    if POLL["first"] == POLL["max"]:
        return f"Each client polls GET every {POLL['first'] * 1000:g} ms."
    return (f"Each client polls GET after {POLL['first'] * 1000:g} ms, doubling up to "
            f"{POLL['max'] * 1000:g} ms.")


def report(seq: dict[str, float], load: dict[str, float], floor: float, args: Any) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line), "?")
    met = "met" if seq["p50"] < 150 else "NOT met"
    return "\n".join([
        SECTION, "",
        f"Command: `python benchmarks/api_latency.py --jobs {args.jobs} --concurrency "
        f"{args.concurrency} --seconds {args.seconds:g} --poll {args.poll} "
        "--write docs/benchmarks.md`", "",
        f"Machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}; local "
        "Ray (2 CPUs), Serve on 127.0.0.1, SQLite; one API replica taking up to "
        f"{MAX_ONGOING_REQUESTS} requests at once, one job runner actor with "
        f"{os.environ.get('VPP_RUNNER_WORKERS', '4')} worker threads. {_polling()}", "",
        "| measurement | p50 ms | p95 ms | max ms | n | other |",
        "| --- | --: | --: | --: | --: | --- |",
        f"| submit -> result, 96-step battery, sequential | {seq['p50']:.1f} | {seq['p95']:.1f}"
        f" | {seq['max']:.1f} | {seq['n']:.0f} | |",
        f"| submit -> result under load ({args.concurrency} concurrent clients) | "
        f"{load['p50']:.1f} | {load['p95']:.1f} | {load['max']:.1f} | {load['n']:.0f} | "
        f"{load['jobs_per_s']:.1f} jobs/s ({60 * load['jobs_per_s']:,.0f}/min), "
        f"{load['errors']:.0f} errors |",
        f"| GET /api/v1/health (Serve's floor) | {floor:.1f} | | | 200 | |", "",
        f"Target p50 < 150 ms for a 96-step battery job: **{met}**.", "",
        f"Target at least 1,000 finished storage jobs per minute at concurrency 16 with zero "
        f"errors: **{_load_met(load, args.concurrency)}**.", "",
        "Why the replica takes 32 requests at once (`api.serve.MAX_ONGOING_REQUESTS`): with "
        "Serve's default of 5, 16 polling clients made the proxy queue and back off, and the "
        "same run gave 12.7 jobs/s (762/min) on 2026-12-04, against 40 jobs/s with 8 clients.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--poll", default="0.005",
                        help="seconds between GETs: one number (fixed) or FIRST:MAX "
                             "(doubling), e.g. 0.05:1 as vpp's Python client")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    first, _, most = args.poll.partition(":")
    POLL.update(first=float(first), max=float(most or first))
    with tempfile.TemporaryDirectory() as directory:
        base = start(free_port(), Path(directory))
        try:
            seq = sequential(base, args.jobs)
            load = concurrent(base, args.concurrency, args.seconds)
            floor = trivial(base)
        finally:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    text = report(seq, load, floor, args)
    print(text)
    if args.write:
        write_section(args.write, SECTION, text)


if __name__ == "__main__":
    main()
