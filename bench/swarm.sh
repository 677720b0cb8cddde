#!/usr/bin/env bash
# Swarm backend benchmark: the same Python web app (examples/python-web, gunicorn) on the local
# backend and on Docker Swarm, in one run, through wharf's router. For each backend:
#
#   deploy → first new response   from starting `wharf deploy` (a new build of the same source)
#                                 to the router's first answer from the new release ("release
#                                 vN" in the body), DEPLOYS times;
#   rollback → first response     from starting `wharf rollback` to the first answer from the
#                                 rollback's release, REPEAT times;
#   failed during deploys         wrk through the router during all DEPLOYS deploys: non-2xx
#                                 answers plus socket errors (target: 0).
#
# The swarm is one engine (Debian's docker.io dockerd) in a network namespace of its own, joined
# to this one by a bridge (10.78.0.0/24), as the tests make them; wharf's API listens on the
# bridge so the node pulls release images from wharf's registry. Both servers build on
# wharf-trixie: the first run makes it (a few minutes; STACK_IMAGES=DIR copies a made one from
# an image store instead), and the swarm's server gets a copy of the local one's.
#
#   sudo bench/swarm.sh                       # DEPLOYS=10 REPEAT=3
#   DEPLOYS=3 REPEAT=2 WHARF_BIN=target/release/wharf bench/swarm.sh
# Needs root, dockerd (docker.io), nsenter, ip, bubblewrap, mmdebstrap, wrk, curl, python3.
# TIMEOUT (1800 s) bounds the whole run, STEP_TIMEOUT (300 s) each wait. Traffic stays on this
# machine: loopback, and the bridge to the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
DEPLOYS=${DEPLOYS:-10}
REPEAT=${REPEAT:-3}
CONNECTIONS=${CONNECTIONS:-8}
TIMEOUT=${TIMEOUT:-1800}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
for v in DEPLOYS REPEAT CONNECTIONS; do
  case "${!v}" in '' | *[!0-9]* | 0) echo "bench: $v must be a positive number" >&2; exit 2 ;; esac
done
[ "$DEPLOYS" -le 50 ] && [ "$REPEAT" -le 20 ] || { echo "bench: DEPLOYS is at most 50, REPEAT at most 20" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench: run as root (it makes a network namespace and starts dockerd)" >&2; exit 2; }
for tool in dockerd nsenter ip wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install docker.io util-linux iproute2 wrk curl python3)" >&2; exit 2; }
done
if [ -z "${WHARF_BIN:-}" ]; then
  cargo build --release -q -p wharf
  WHARF_BIN=target/release/wharf
fi

work=$(mktemp -d /tmp/wharf-swarm.XXXXXX)
chmod 755 "$work"
cp "$WHARF_BIN" "$work/wharf"
WHARF=$work/wharf
NS=wbench-0
BRIDGE=wbench
HOST_ADDR=10.78.0.254
NODE_ADDR=10.78.0.1
server_pid=""
dockerd_pid=""
load_pid=""
keep_work=""
docker_() { docker -H "unix://$work/d/d.sock" "$@"; }
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() {
  touch "$work/stop" 2>/dev/null || true
  [ -n "$load_pid" ] && wait "$load_pid" 2>/dev/null || true
  stop_server
  if [ -n "$dockerd_pid" ]; then
    docker_ service ls -q 2>/dev/null | xargs -r docker -H "unix://$work/d/d.sock" service rm >/dev/null 2>&1 || true
    docker_ swarm leave --force >/dev/null 2>&1 || true
    docker_ ps -aq 2>/dev/null | xargs -r docker -H "unix://$work/d/d.sock" rm -f >/dev/null 2>&1 || true
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$dockerd_pid" 2>/dev/null || true
  fi
  grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  if [ -n "$keep_work" ]; then echo "bench: kept $work (server logs, dockerd.log, wrk output)" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

deadline=$((${EPOCHREALTIME%.*} + TIMEOUT))
fail() {
  echo "bench: $*" >&2
  tail -n 30 "$work"/server-*.log >&2 2>/dev/null || true
  keep_work=1
  exit 1
}
check_deadline() { [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || fail "deadline ($TIMEOUT s) passed"; }
remaining() { local left=$((deadline - ${EPOCHREALTIME%.*})); echo $((left > 0 ? left : 1)); }
step_end() { local end=$((${EPOCHREALTIME%.*} + STEP_TIMEOUT)); echo $((end < deadline ? end : deadline)); }
check_step() { check_deadline; [ "${EPOCHREALTIME%.*}" -lt "$1" ] || fail "$2: not done within $STEP_TIMEOUT s"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wharf() { timeout "$(remaining)" "$WHARF" "$@"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}'; }

# The swarm: one engine in a namespace of its own.
ip link show "$BRIDGE" >/dev/null 2>&1 && fail "a bridge $BRIDGE exists already (another run?); remove it first"
ip link add "$BRIDGE" type bridge
ip addr add "$HOST_ADDR/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
ip netns add "$NS"
ip link add wbenchh0 type veth peer name eth0 netns "$NS"
ip link set wbenchh0 master "$BRIDGE" up
ip -n "$NS" addr add "$NODE_ADDR/24" dev eth0
ip -n "$NS" link set eth0 up
ip -n "$NS" link set lo up
mkdir -p "$work/d"
nsenter --net="/run/netns/$NS" unshare --uts sh -c "hostname $NS && exec dockerd \"\$@\"" sh \
  --data-root "$work/d/root" --exec-root "$work/d/x" --pidfile "$work/d/pid" \
  --host "unix://$work/d/d.sock" --containerd-namespace wbench --containerd-plugins-namespace wbench-p \
  --iptables=false --ip6tables=false --bip 172.31.0.1/24 --insecure-registry 10.78.0.0/24 \
  >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
until docker_ version >/dev/null 2>&1; do check_deadline; kill -0 "$dockerd_pid" 2>/dev/null || fail "dockerd exited"; sleep 0.2; done
docker_ swarm init --advertise-addr "$NODE_ADDR" --dispatcher-heartbeat 1s >/dev/null

token=bench-token-$RANDOM$RANDOM
export WHARF_TOKEN=$token WHARF_CONFIG_DIR=$work/cli
start_server() { # NAME API_ADDR ROUTER_PORT ARGS...
  local name=$1 api=$2 router=$3; shift 3
  "$WHARF" server --data-dir "$work/data-$name" --api-addr "$api" --router-addr "127.0.0.1:$router" \
    --admin-token "$token" --stack wharf-trixie --boot-timeout "$STEP_TIMEOUT" "$@" 2>"$work/server-$name.log" &
  server_pid=$!
  export WHARF_URL=http://$api
  until curl -fs --max-time 2 "$WHARF_URL/healthz" >/dev/null 2>&1; do
    check_deadline
    kill -0 "$server_pid" 2>/dev/null || fail "the $name server exited"
    sleep 0.1
  done
}
answer() { curl -s --max-time 2 -H "Host: $1.localhost" "http://127.0.0.1:$router_port/" 2>/dev/null || true; }
current_version() { wharf releases -a "$1" --json | python3 -c 'import json,sys; print([r["version"] for r in json.load(sys.stdin) if r["current"]][0])'; }
until_release() { # APP VERSION WHAT: the router answers from release VERSION
  local end; end=$(step_end)
  until [[ "$(answer "$1")" == *"release v$2,"* ]]; do check_step "$end" "$3"; sleep 0.02; done
}
start_load() { # APP OUT
  rm -f "$work/stop" "$2"
  (
    while [ ! -e "$work/stop" ] && [ "${EPOCHREALTIME%.*}" -lt "$deadline" ]; do
      wrk -t1 -c"$CONNECTIONS" -d1s -H "Host: $1.localhost" "http://127.0.0.1:$router_port/" >>"$2" 2>&1 || true
    done
  ) &
  load_pid=$!
  sleep 0.5
}
stop_load() { touch "$work/stop"; wait "$load_pid" 2>/dev/null || true; load_pid=""; }
load_counts() { # OUT: "REQUESTS FAILED"
  local requests non2xx socket
  requests=$(awk '/requests in/ {n += $1} END {print n + 0}' "$1")
  non2xx=$(awk -F: '/Non-2xx/ {gsub(/ /, "", $2); n += $2} END {print n + 0}' "$1")
  socket=$(awk '/Socket errors/ {for (i=1; i<=NF; i++) if ($i ~ /^[0-9]+,?$/) {gsub(/,/, "", $i); n += $i}} END {print n + 0}' "$1")
  echo "$requests $((non2xx + socket))"
}

src=$work/app
cp -r examples/python-web "$src"
rows=()
measure() { # NAME
  local name=$1 app=bench-$1 version t0 t1 deploy_secs=() rollback_secs=() counts
  echo "bench: $name: first deploy (builds the image; untimed)" >&2
  wharf apps create "$app" >/dev/null
  wharf deploy "$src" -a "$app" >>"$work/deploy-$name.log" 2>&1 || fail "$name: the first deploy failed (see $work/deploy-$name.log)"
  version=$(current_version "$app")
  until_release "$app" "$version" "$name: first deploy"
  start_load "$app" "$work/wrk-$name.txt"
  for i in $(seq "$DEPLOYS"); do
    check_deadline
    t0=$EPOCHREALTIME
    wharf deploy "$src" -a "$app" >>"$work/deploy-$name.log" 2>&1 || fail "$name: deploy $i failed"
    version=$((version + 1))
    until_release "$app" "$version" "$name: deploy $i"
    t1=$EPOCHREALTIME
    deploy_secs+=("$(elapsed "$t0" "$t1")")
    echo "bench: $name: deploy $i: ${deploy_secs[-1]} s" >&2
  done
  stop_load
  counts=$(load_counts "$work/wrk-$name.txt")
  for i in $(seq "$REPEAT"); do
    check_deadline
    t0=$EPOCHREALTIME
    wharf rollback -a "$app" >/dev/null 2>>"$work/cli.log" || fail "$name: rollback $i failed"
    version=$((version + 1))
    until_release "$app" "$version" "$name: rollback $i"
    t1=$EPOCHREALTIME
    rollback_secs+=("$(elapsed "$t0" "$t1")")
  done
  rows+=("$(printf '| %s | %s (%s) | %s (%s) | %s of %s |' "$name" \
    "$(median "${deploy_secs[@]}")" "$(range "${deploy_secs[@]}")" \
    "$(median "${rollback_secs[@]}")" "$(range "${rollback_secs[@]}")" \
    "${counts#* }" "${counts% *}")")
}

router_port=$(free_port)
mkdir -p "$work/data-local"
[ -n "${STACK_IMAGES:-}" ] && cp -a "$STACK_IMAGES" "$work/data-local/images"
start_server local "127.0.0.1:$(free_port)" "$router_port"
measure local
stop_server

router_port=$(free_port)
mkdir -p "$work/data-swarm"
cp -a "$work/data-local/images" "$work/data-swarm/images" # the stack, made once
api_port=$(free_port)
start_server swarm "$HOST_ADDR:$api_port" "$router_port" --backend swarm --docker-host "unix://$work/d/d.sock"
measure swarm
stop_server

echo
echo "bench/swarm.sh: python-web through wharf's router; DEPLOYS=$DEPLOYS REPEAT=$REPEAT CONNECTIONS=$CONNECTIONS"
echo "(median seconds, range in brackets; failed = non-2xx + socket errors of wrk during the deploys)"
echo
echo "| backend | deploy → first new response | rollback → first response | failed requests |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
