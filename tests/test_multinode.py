"""Multi-node on one machine: a real two-node Ray cluster (deploy/local-cluster.sh) runs a
portfolio of 200 homes under a congestion limit with its site shards on both nodes, to the
same cost as one node; `vpp portfolio` and `vpp serve` join it through RAY_ADDRESS (the
API's portfolio job runs on it); losing the worker node mid-job still ends in a feasible
result.

The jobs run in driver subprocesses (tests/multinode_driver.py, what ``vpp portfolio`` runs):
this process holds the session's local Ray, and one process cannot join a second cluster.
The single-node reference runs in a fresh local Ray (``RAY_ADDRESS`` unset) with the same
shard count. Feasibility is checked here from the sites' own powers against the limit of
the request. The cluster is stopped at the end even when a test fails; the worker-loss test
runs last (the worker node is gone after it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from vpp.examples import mixed_portfolio

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "local-cluster.sh"
DRIVER = REPO / "tests" / "multinode_driver.py"
SITES = 200
SHARDS = 4  # the cluster's CPUs (2 per node); pinned, so one node computes the same
ITERATIONS = 10
# SPREAD is best effort (4 shards: 2/2 or 3/1 seen, never 4/0); 8 make the worker's share
# all but certain, and the test checks it
KILL_SHARDS = 8
JOB_TIMEOUT = 300  # seconds any driver may take before the test fails (never a hang)


def _read_state(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The two-node cluster's state (ports, node ids, raylet pids), stopped at the end."""
    env = {**os.environ, "VPP_CLUSTER_DIR": str(tmp_path_factory.mktemp("vpp-cluster"))}
    env.pop("RAY_ADDRESS", None)
    began = time.monotonic()
    try:
        started = subprocess.run(
            [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300
        )
        assert started.returncode == 0, started.stderr
        state = _read_state(Path(env["VPP_CLUSTER_DIR"]) / "state.env")
        print(f"two-node cluster started in {time.monotonic() - began:.1f} s")
        auth = f" RAY_AUTH_MODE={state['RAY_AUTH_MODE']}" if state["RAY_AUTH_MODE"] else ""
        assert started.stdout.strip() == f"export RAY_ADDRESS={state['RAY_ADDRESS']}{auth}"
        yield state
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def request_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("portfolio") / "portfolio.json"
    path.write_text(json.dumps({**mixed_portfolio(SITES, seed=11), "method": "admm"}))
    return path


def _driver_env(tmp: Path, state: dict[str, str] | None) -> dict[str, str]:
    env = {**os.environ, "VPP_DATA_DIR": str(tmp)}  # own checkpoints: no warm start
    env.pop("RAY_ADDRESS", None)
    if state is not None:
        env["RAY_ADDRESS"] = state["RAY_ADDRESS"]
        if state["RAY_AUTH_MODE"]:  # Ray versions with token auth
            env["RAY_AUTH_MODE"] = state["RAY_AUTH_MODE"]
    return env


def _driver_args(request: Path, out: Path, **options: Any) -> list[str]:
    args = [sys.executable, str(DRIVER), str(request), str(out), "--shards", str(SHARDS)]
    args += ["--max-iterations", str(options.get("iterations", ITERATIONS))]
    args[args.index("--shards") + 1] = str(options.get("shards", SHARDS))
    for key in ("deadline", "progress", "expect_dead"):
        if key in options:
            args += [f"--{key.replace('_', '-')}", str(options[key])]
    return args


def _run(request: Path, tmp: Path, state: dict[str, str] | None) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / "out.json"
    began = time.monotonic()
    done = subprocess.run(
        _driver_args(request, out),
        env=_driver_env(tmp, state),
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    where = "two nodes" if state else "one node"
    print(f"{SITES} sites on {where}: {time.monotonic() - began:.1f} s (driver process)")
    return dict(json.loads(out.read_text()))


def _limit(request: Path) -> float:
    target = json.loads(request.read_text())["target"]
    assert target["type"] == "congestion"
    return float(target["max-consumption"].split()[0])


def _check_feasible(result: dict[str, Any], request: Path) -> None:
    """Every site answered; the sum of the sites' own powers keeps the limit at every step,
    and the portfolio's cost is the sum of theirs."""
    sites = result["sites"]
    assert sorted(s["id"] for s in sites) == sorted(
        s["id"] for s in json.loads(request.read_text())["sites"]
    )
    total = np.sum([s["site"]["power"]["values"] for s in sites], axis=0)
    assert total.max() <= _limit(request) + 1e-4
    cost = sum(s["cost"]["value"] for s in sites)
    assert result["portfolio"]["cost"]["value"] == pytest.approx(cost, rel=1e-9, abs=1e-6)


def test_shards_on_both_nodes_cost_as_on_one(
    cluster: dict[str, str], request_file: Path, tmp_path: Path
) -> None:
    two = _run(request_file, tmp_path / "cluster", cluster)
    one = _run(request_file, tmp_path / "local", None)

    nodes = {cluster["HEAD_NODE_ID"], cluster["WORKER_NODE_ID"]}  # from the raylets' args
    assert len(nodes) == 2
    assert {node for node, alive in two["nodes"].items() if alive} == nodes  # ray.nodes()
    assert len(two["shard_nodes"]) == SHARDS
    assert set(two["shard_nodes"]) == nodes
    assert len(set(one["shard_nodes"])) == 1 and not set(one["shard_nodes"]) & nodes

    for out in (two, one):
        _check_feasible(out["result"], request_file)
        assert out["result"]["portfolio"]["degraded-sites"] == []
        assert out["result"]["portfolio"]["iterations"] == ITERATIONS
    # the limit binds (the homes would exceed it alone), so the ADMM's prices matter
    total = np.sum([s["site"]["power"]["values"] for s in two["result"]["sites"]], axis=0)
    assert total.max() >= _limit(request_file) - 0.5
    assert two["result"]["portfolio"]["cost"]["value"] == pytest.approx(
        one["result"]["portfolio"]["cost"]["value"], rel=1e-6
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base: str, serve: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        assert serve.poll() is None, log.read_text()[-3000:]
        try:
            ready = httpx.get(f"{base}/api/v1/ready", timeout=5)
            if ready.status_code == 200:
                return dict(ready.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"vpp serve on the cluster not ready within {JOB_TIMEOUT} s")


def test_vpp_portfolio_and_vpp_serve_join_through_ray_address(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    """The two commands users run join the cluster by ``RAY_ADDRESS`` alone."""
    small = tmp_path / "small.json"
    small.write_text(json.dumps({**mixed_portfolio(20, seed=5), "method": "admm"}))
    env = _driver_env(tmp_path, cluster)
    out = tmp_path / "cli.json"
    done = subprocess.run(
        ["vpp", "portfolio", str(small), "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _check_feasible(json.loads(out.read_text()), small)

    port, token = _free_port(), "vpp_multinode-admin-token"
    env |= {"VPP_DATABASE_URL": f"sqlite:///{tmp_path}/vpp.db", "VPP_ADMIN_TOKEN": token}
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        serve = subprocess.Popen(
            ["vpp", "serve", "--port", str(port)], env=env, stdout=sink, stderr=sink, cwd=REPO
        )
    base = f"http://127.0.0.1:{port}"
    try:
        ready = _wait_ready(base, serve, log)
        assert ready["checks"] == {"database": "ok", "ray": "ok", "runner": "ok"}
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            body = json.loads(small.read_text())
            posted = api.post(f"{base}/api/v1/scheduling-job/portfolio", json=body)
            assert posted.status_code == 202, posted.text
            deadline = time.monotonic() + JOB_TIMEOUT
            url = f"{base}/api/v1/scheduling-job/{posted.json()['job']}"
            while (job := api.get(url).json())["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, f"job not done within {JOB_TIMEOUT} s: {job}"
                time.sleep(0.5)
        assert job["status"] == "finished", job
        _check_feasible(job["result"], small)
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()


def _wait_for_iterations(progress: Path, driver: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        assert driver.poll() is None, "the job ended before the worker node could be killed"
        if progress.exists() and len(progress.read_text().splitlines()) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"no {count} ADMM iterations within {JOB_TIMEOUT} s")


def _raylet_cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_worker_node_loss_mid_job_ends_feasible(
    cluster: dict[str, str], request_file: Path, tmp_path: Path
) -> None:
    """Runs last: kills the worker node's raylet after the ADMM iterations began."""
    progress, out = tmp_path / "progress.jsonl", tmp_path / "out.json"
    log = tmp_path / "driver.log"  # a file, not a pipe: a full pipe would block the driver
    with log.open("w") as stderr:
        driver = subprocess.Popen(
            _driver_args(
                request_file,
                out,
                shards=KILL_SHARDS,
                iterations=12,
                deadline=30,
                progress=progress,
                expect_dead=cluster["WORKER_NODE_ID"],
            ),
            env=_driver_env(tmp_path, cluster),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=REPO,
        )
    try:
        _wait_for_iterations(progress, driver, 2)
        pid = int(cluster["WORKER_RAYLET_PID"])
        assert cluster["WORKER_TEMP_DIR"] + "/" in _raylet_cmdline(pid)  # this cluster's
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        driver.wait(timeout=JOB_TIMEOUT)
        recovery = time.monotonic() - killed
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, log.read_text()[-3000:]
    body = json.loads(out.read_text())
    result = body["result"]
    _check_feasible(result, request_file)
    assert body["nodes"][cluster["WORKER_NODE_ID"]] is False
    assert body["nodes"][cluster["HEAD_NODE_ID"]] is True
    # sites of the shards on the lost node were re-run on the head (restarted shards) or
    # are named as degraded; no other site is degraded
    sites = [s["id"] for s in json.loads(request_file.read_text())["sites"]]
    size = -(-SITES // KILL_SHARDS)
    lost = {
        sites[i]
        for k, node in enumerate(body["shard_nodes"])
        if node == cluster["WORKER_NODE_ID"]
        for i in range(k * size, min((k + 1) * size, SITES))
    }
    assert lost
    degraded = set(result["portfolio"]["degraded-sites"])
    assert degraded <= lost
    print(
        f"worker node killed: job finished {recovery:.1f} s later; {len(degraded)} of the "
        f"{len(lost)} sites on it named degraded"
    )
    iterations = [json.loads(line)["iteration"] for line in progress.read_text().splitlines()]
    assert iterations == list(range(1, 13))
