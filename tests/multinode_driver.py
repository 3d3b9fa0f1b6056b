"""Driver process for tests/test_multinode.py: one portfolio job on Ray, as ``vpp portfolio``
runs it (``actors.run.run_portfolio``: coordinator actor, site shards), in a process of its
own because the test process already holds the session's local Ray.

``python tests/multinode_driver.py REQUEST.json OUT.json --shards K --max-iterations N
[--deadline S] [--progress PROGRESS.jsonl] [--expect-dead NODE]`` joins ``RAY_ADDRESS`` (a
local Ray when unset), appends each ADMM iteration to PROGRESS as a JSON line, and writes
OUT: ``result`` (the job's result JSON), ``shard_nodes`` (the node id of each shard, read
from the coordinator's progress), ``nodes`` (node id -> alive, from ``ray.nodes()`` after
the job, once NODE is dead). A VppError (the job failed) is written as ``error`` and the
exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import ray

from actors.run import ensure_ray, run_portfolio, start_coordinator
from vpp.errors import VppError


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("request")
    parser.add_argument("out")
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--max-iterations", type=int, required=True)
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--progress")
    parser.add_argument("--expect-dead", help="a node id: wait (60 s at most) until Ray says so")
    args = parser.parse_args()
    request = json.loads(Path(args.request).read_text())
    ensure_ray()
    job_id = uuid.uuid4().hex
    coordinator = start_coordinator()
    progress = Path(args.progress) if args.progress else None

    def on_progress(entry: dict[str, Any]) -> None:
        if progress is not None:
            with progress.open("a") as f:
                f.write(json.dumps(entry) + "\n")

    out: dict[str, Any] = {}
    code = 0
    try:
        out["result"] = run_portfolio(
            request,
            job_id=job_id,
            settings={"max_iterations": args.max_iterations},
            pool_options={"shards": args.shards, "deadline": args.deadline},
            on_progress=on_progress,
            coordinator=coordinator,
        )
    except VppError as err:
        out["error"] = err.message
        code = 1
    state = ray.get(coordinator.progress.remote(job_id), timeout=60)
    out["shard_nodes"] = state.get("shard_nodes", [])
    out["nodes"] = _nodes(args.expect_dead)
    Path(args.out).write_text(json.dumps(out))
    ray.kill(coordinator)
    return code


def _nodes(dead: str | None) -> dict[str, bool]:
    """Node id -> alive, after ``dead`` is reported dead (the GCS notices a lost raylet
    only after its health checks fail) or 60 s."""
    until = time.monotonic() + 60
    while True:
        nodes = {n["NodeID"]: bool(n["Alive"]) for n in ray.nodes()}
        if not dead or not nodes.get(dead, False) or time.monotonic() > until:
            return nodes
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
