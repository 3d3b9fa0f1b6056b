#!/usr/bin/env bash
# A real two-node Ray cluster on one machine (joined at 127.0.0.1), for trying multi-node vpp.
#
#   deploy/local-cluster.sh start    head + one worker node; prints the line to join it:
#                                    `export RAY_ADDRESS=127.0.0.1:<port> RAY_AUTH_MODE=token`
#   deploy/local-cluster.sh status   `ray status` of this cluster
#   deploy/local-cluster.sh env      that export line again
#   deploy/local-cluster.sh stop     stops exactly the processes of this cluster
#
# Environment:
#   VPP_CLUSTER_DIR   state directory (default: .vpp-cluster in the current directory);
#                     holds state.env (ports, pids, node ids, Ray temp dirs)
#   VPP_CLUSTER_CPUS  CPUs each node declares (default 2)
#
# Why it looks the way it does:
# * Every port is picked free on 127.0.0.1 (6379 belongs to Redis here; Ray's other defaults,
#   10001 client, 8265 dashboard, 52365 agent, would clash with any other Ray on the machine,
#   and the two nodes of this cluster would clash with each other).
# * Each node has its own --temp-dir under a short /tmp directory: its own session dir,
#   sockets and logs (Unix socket paths are limited to 107 bytes, so the state directory's
#   path length does not matter), and `ray start` writes its `ray_current_cluster` there,
#   never to /tmp/ray: a plain `ray.init()` elsewhere on the machine does not join this
#   cluster. Only RAY_ADDRESS (or an explicit address) does. (`ray.init("auto")` still finds
#   any GCS process on the machine; never use "auto" next to other Rays.)
# * Ray advertises a node by the machine's own address even when told 127.0.0.1 (it resolves
#   loopback to the address it would be reached at, ray-project/ray#26293, #59110), so both
#   nodes advertise that address and its servers listen on all interfaces; RAY_ADDRESS is
#   still 127.0.0.1:<port> (Ray maps it the same way) and all traffic stays on this host.
#   Keep the ports firewalled on a shared network; the dashboard listens on 127.0.0.1 only.
# * Ray token authentication (the default for clusters of this Ray version once
#   ~/.ray/auth_token exists): `ray start --head` turns it on by itself, but a joining
#   `ray start` or a driver given an explicit address only with RAY_AUTH_MODE=token. So
#   both nodes get RAY_AUTH_MODE explicitly (token unless it is set), and the printed
#   export line carries it for drivers (vpp serve, vpp portfolio, ray status), which read
#   the token from ~/.ray/auth_token.
# * `ray stop` would stop every Ray on the machine (other sessions, the test suite), so
#   `stop` signals only processes whose command line names this cluster's temp dirs, and
#   their descendants (workers and agents rename themselves `ray::...`). One head process
#   names no temp dir: the Ray Client server (`python -m ray.util.client.server
#   --address=<ip>:<gcs port> --port=<client port> --mode=proxy`), started by `ray start`,
#   which exits, so it is re-parented to PID 1 and descends from nothing of ours; it is
#   matched by its module and this cluster's client or GCS port.
set -euo pipefail

STATE_DIR="${VPP_CLUSTER_DIR:-.vpp-cluster}"
CPUS="${VPP_CLUSTER_CPUS:-2}"
STATE_FILE="$STATE_DIR/state.env"
START_TIMEOUT=120  # seconds one `ray start` may take on a busy machine
STOP_GRACE=5       # seconds between SIGTERM and SIGKILL (a GCS may hang in its shutdown)

die() { echo "local-cluster: $*" >&2; exit 1; }

free_ports() {  # free_ports N: N distinct free TCP ports on 127.0.0.1, one a line
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)  # held open until all are chosen, so they are distinct
print("\n".join(str(s.getsockname()[1]) for s in socks))
EOF
}

node_pids() {  # node_pids TEMP_DIR: pids of that node's processes and their descendants
  # (with this cluster's Ray Client server: RAY_PORT and RAY_CLIENT_PORT, when set)
  python3 - "$1" "${RAY_PORT:-}" "${RAY_CLIENT_PORT:-}" <<'EOF'
import os, sys
mark = sys.argv[1].rstrip("/") + "/"
gcs_port, client_port = sys.argv[2], sys.argv[3]


def client_server(argv):
    """The Ray Client server of this cluster (its command line names no temp dir)."""
    if "ray.util.client.server" not in argv:
        return False
    return (bool(client_port) and f"--port={client_port}" in argv) or (
        bool(gcs_port)
        and any(a.startswith("--address=") and a.endswith(f":{gcs_port}") for a in argv)
    )


children, matched = {}, set()
for entry in os.listdir("/proc"):
    if not entry.isdigit():
        continue
    try:
        with open(f"/proc/{entry}/stat") as f:
            stat = f.read()
        with open(f"/proc/{entry}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        continue
    cmd = raw.replace(b"\0", b" ").decode(errors="replace")
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # a zombie is already dead
        continue
    children.setdefault(int(fields[1]), []).append(int(entry))
    if mark in cmd or cmd.rstrip().endswith("=" + mark[:-1]):
        matched.add(int(entry))
    elif client_server(raw.decode(errors="replace").split("\0")):
        matched.add(int(entry))
todo, seen = list(matched), set()
while todo:
    pid = todo.pop()
    if pid not in seen and pid != os.getpid():
        seen.add(pid)
        todo.extend(children.get(pid, []))
print(" ".join(str(p) for p in sorted(seen)))
EOF
}

raylet_of() {  # raylet_of TEMP_DIR: "pid node_id" of that node's raylet
  local pid cmd
  for pid in $(node_pids "$1"); do
    cmd=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null || true)
    if [[ "$(head -n1 <<<"$cmd")" == */raylet ]]; then
      echo "$pid $(sed -n 's/^--node_id=//p' <<<"$cmd")"
      return 0
    fi
  done
  return 1
}

gcs_of() {  # gcs_of TEMP_DIR: pid of the head's GCS server
  local pid
  for pid in $(node_pids "$1"); do
    if [[ "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1)" == */gcs_server ]]; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

alive() {  # alive PID...: those still running (not zombies)
  local pid
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    [[ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]] && echo "$pid"
  done
  return 0
}

load_state() {
  [[ -f "$STATE_FILE" ]] || die "no cluster state in $STATE_DIR (start one first)"
  # shellcheck disable=SC1090
  source "$STATE_FILE"
}

start() {
  if [[ -f "$STATE_FILE" ]]; then
    load_state
    if [[ -n "$(node_pids "$HEAD_TEMP_DIR")" ]]; then
      die "a cluster from $STATE_DIR is running at $RAY_ADDRESS; stop it first"
    fi
  fi
  command -v ray >/dev/null || die "the ray command is not installed (pip install -e .)"
  mkdir -p "$STATE_DIR"
  STATE_DIR=$(cd "$STATE_DIR" && pwd)
  STATE_FILE="$STATE_DIR/state.env"
  local tmp
  tmp=$(mktemp -d /tmp/vpp-ray-XXXXXX)
  local ports
  mapfile -t ports < <(free_ports 7)
  local port=${ports[0]} dashboard=${ports[1]} client=${ports[2]} head_metrics=${ports[3]}
  local worker_metrics=${ports[4]} head_agent=${ports[5]} worker_agent=${ports[6]}
  RAY_PORT=$port RAY_CLIENT_PORT=$client  # node_pids finds the client server by them
  local began=$SECONDS

  # Token auth needs the token file before either node starts (a no-op when it exists);
  # a Ray without token auth has no get-auth-token command.
  if ray get-auth-token --help >/dev/null 2>&1; then
    export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
    if [[ "$RAY_AUTH_MODE" == token ]]; then
      ray get-auth-token --generate >/dev/null 2>&1 || die "cannot create the Ray auth token"
    fi
  fi
  # Worker ports 0: random, so the two raylets do not both walk 10002..19999.
  timeout "$START_TIMEOUT" ray start --head --port="$port" --node-ip-address=127.0.0.1 \
    --num-cpus="$CPUS" --temp-dir="$tmp/head" --include-dashboard=true \
    --dashboard-host=127.0.0.1 --dashboard-port="$dashboard" \
    --ray-client-server-port="$client" --metrics-export-port="$head_metrics" \
    --dashboard-agent-listen-port="$head_agent" --min-worker-port=0 --max-worker-port=0 \
    --disable-usage-stats >"$STATE_DIR/head-start.log" 2>&1 \
    || { cat "$STATE_DIR/head-start.log" >&2; stop_dirs "$tmp/head"; rm -rf "$tmp";
         die "the head node did not start"; }
  env -u RAY_ADDRESS timeout "$START_TIMEOUT" ray start --address="127.0.0.1:$port" \
    --num-cpus="$CPUS" --resources='{"worker": 1}' --temp-dir="$tmp/worker" \
    --metrics-export-port="$worker_metrics" --dashboard-agent-listen-port="$worker_agent" \
    --min-worker-port=0 --max-worker-port=0 --disable-usage-stats \
    >"$STATE_DIR/worker-start.log" 2>&1 \
    || { cat "$STATE_DIR/worker-start.log" >&2; stop_dirs "$tmp/worker" "$tmp/head";
         rm -rf "$tmp"; die "the worker node did not start"; }

  RAY_ADDRESS=127.0.0.1:$port
  local head_raylet worker_raylet gcs
  head_raylet=$(raylet_of "$tmp/head") || die "no raylet found for the head node"
  worker_raylet=$(raylet_of "$tmp/worker") || die "no raylet found for the worker node"
  gcs=$(gcs_of "$tmp/head") || die "no GCS server found for the head node"
  cat >"$STATE_FILE" <<EOF
RAY_ADDRESS=127.0.0.1:$port
RAY_PORT=$port
DASHBOARD_URL=http://127.0.0.1:$dashboard
RAY_CLIENT_PORT=$client
HEAD_METRICS_PORT=$head_metrics
WORKER_METRICS_PORT=$worker_metrics
CLUSTER_TMP=$tmp
HEAD_TEMP_DIR=$tmp/head
WORKER_TEMP_DIR=$tmp/worker
HEAD_GCS_PID=$gcs
HEAD_RAYLET_PID=${head_raylet% *}
HEAD_NODE_ID=${head_raylet#* }
WORKER_RAYLET_PID=${worker_raylet% *}
WORKER_NODE_ID=${worker_raylet#* }
CPUS_PER_NODE=$CPUS
RAY_AUTH_MODE=${RAY_AUTH_MODE:-}
STARTED_SECONDS=$((SECONDS - began))
EOF
  echo "two-node Ray cluster up in $((SECONDS - began)) s: head ${head_raylet#* }" >&2
  echo "  worker ${worker_raylet#* } (resource worker=1), $CPUS CPUs each" >&2
  echo "  dashboard http://127.0.0.1:$dashboard, metrics on 127.0.0.1:$head_metrics" \
    "and :$worker_metrics; state in $STATE_FILE" >&2
  export_line
}

export_line() {
  echo "export RAY_ADDRESS=$RAY_ADDRESS${RAY_AUTH_MODE:+ RAY_AUTH_MODE=$RAY_AUTH_MODE}"
}

stop_dirs() {  # stop_dirs TEMP_DIR...: SIGTERM each node's processes in order, then SIGKILL
  local dir pids all=()
  for dir in "$@"; do
    pids=$(node_pids "$dir")
    [[ -n "$pids" ]] || continue
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    all+=($pids)
  done
  [[ ${#all[@]} -gt 0 ]] || return 0
  local waited=0
  while [[ -n "$(alive "${all[@]}")" && $waited -lt $((STOP_GRACE * 10)) ]]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  local left
  left=$(alive "${all[@]}")
  # shellcheck disable=SC2086
  [[ -z "$left" ]] || kill -KILL $left 2>/dev/null || true
  # descendants started while we waited (a raylet restarting a worker)
  for dir in "$@"; do
    pids=$(node_pids "$dir")
    # shellcheck disable=SC2086
    [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
  done
}

stop() {
  if [[ ! -f "$STATE_FILE" ]]; then
    echo "local-cluster: no cluster state in $STATE_DIR; nothing to stop" >&2
    return 0
  fi
  load_state
  # worker first, so the head sees an orderly departure; the GCS last
  stop_dirs "$WORKER_TEMP_DIR" "$HEAD_TEMP_DIR"
  # the temp dirs hold the sessions' logs, sockets and each node's ray_current_cluster
  [[ "$CLUSTER_TMP" == /tmp/vpp-ray-* ]] && rm -rf "$CLUSTER_TMP"
  rm -f "$STATE_FILE" "$STATE_DIR/head-start.log" "$STATE_DIR/worker-start.log"
  rmdir "$STATE_DIR" 2>/dev/null || true
  echo "stopped the cluster at $RAY_ADDRESS" >&2
}

status() {
  load_state
  local role pid node
  for role in HEAD WORKER; do
    pid=${role}_RAYLET_PID node=${role}_NODE_ID
    printf '%-6s raylet pid %s (%s), node %s\n' "${role,,}" "${!pid}" \
      "$([[ -n "$(alive "${!pid}")" ]] && echo running || echo gone)" "${!node}"
  done
  echo "dashboard $DASHBOARD_URL, metrics 127.0.0.1:$HEAD_METRICS_PORT and :$WORKER_METRICS_PORT"
  env ${RAY_AUTH_MODE:+RAY_AUTH_MODE=$RAY_AUTH_MODE} timeout 60 ray status --address "$RAY_ADDRESS"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) load_state; export_line ;;
  *) echo "usage: $0 start|stop|status|env  (state: VPP_CLUSTER_DIR, default .vpp-cluster)" >&2
     exit 2 ;;
esac
