"""``deploy/local-cluster.sh stop`` leaves no process of its cluster behind, the Ray Client
server included (``python -m ray.util.client.server --mode=proxy``: ``ray start`` exits
after starting it, so it is re-parented to PID 1 and names none of the cluster's temp dirs),
and nothing listens on the cluster's ports afterwards.

A real two-node cluster (tests/test_multinode.py runs jobs on one; this test only starts and
stops it). Processes are found from /proc, as the script finds them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "local-cluster.sh"
PORT_KEYS = (
    "RAY_PORT",
    "RAY_CLIENT_PORT",
    "HEAD_METRICS_PORT",
    "WORKER_METRICS_PORT",
)

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")


def read_state(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def processes() -> dict[int, tuple[int, list[str]]]:
    """``{pid: (parent pid, argv)}`` of every live (not zombie) process."""
    found: dict[int, tuple[int, list[str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found[int(entry)] = (int(fields[1]), raw.decode(errors="replace").split("\0"))
    return found


def cluster_processes(state: dict[str, str]) -> dict[int, list[str]]:
    """Processes naming this cluster's temp dir, or its GCS or client port as a Ray Client
    server does (``--address=<ip>:<gcs port>``, ``--port=<client port>``)."""
    gcs, client = state["RAY_PORT"], state["RAY_CLIENT_PORT"]
    found = {}
    for pid, (_, argv) in processes().items():
        line = " ".join(argv)
        if (
            state["CLUSTER_TMP"] in line
            or f"--port={client}" in argv
            or any(a.startswith("--address=") and a.endswith(f":{gcs}") for a in argv)
        ):
            found[pid] = argv
    return found


def listening_ports() -> set[int]:
    """Ports with a TCP socket in LISTEN state, IPv4 or IPv6, on any address."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # TCP_LISTEN
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def test_stop_leaves_no_process_of_the_cluster_the_client_server_included(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "VPP_CLUSTER_DIR": str(tmp_path / "cluster")}
    env.pop("RAY_ADDRESS", None)
    state: dict[str, str] = {}
    leftovers: dict[int, list[str]] = {}
    try:
        started = subprocess.run(
            [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300
        )
        assert started.returncode == 0, started.stderr
        state = read_state(tmp_path / "cluster" / "state.env")
        ports = {int(state[key]) for key in PORT_KEYS}
        ports.add(int(state["DASHBOARD_URL"].rsplit(":", 1)[1]))

        running = cluster_processes(state)
        client = [
            pid for pid, argv in running.items()
            if "ray.util.client.server" in argv and "--mode=proxy" in argv
        ]
        assert len(client) == 1, "the cluster runs one Ray Client server"
        # why the temp dirs alone never found it
        assert processes()[client[0]][0] == 1, "re-parented to PID 1"
        assert state["CLUSTER_TMP"] not in " ".join(running[client[0]])
        assert int(state["RAY_CLIENT_PORT"]) in listening_ports()

        stopped = subprocess.run(
            [str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=120
        )
        assert stopped.returncode == 0, stopped.stderr
        # SIGKILLed processes may take a moment to be reaped
        deadline = time.monotonic() + 10
        while (leftovers := cluster_processes(state)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert leftovers == {}, f"left running: {leftovers}"
        assert not ports & listening_ports(), "a port of the cluster still listens"
        assert not Path(state["CLUSTER_TMP"]).exists()
        assert not (tmp_path / "cluster" / "state.env").exists()
    finally:
        if state:
            subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)
            # never leave this test's processes behind, whatever the script did
            for pid in cluster_processes(state):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
