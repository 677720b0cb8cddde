#!/usr/bin/env bash
# Router benchmark: wharf's HTTP router next to nginx and HAProxy as reverse proxies, in one run,
# on this machine, in front of the same backend. An nginx backend on 127.0.0.1 answers every
# request with `200 Hello, world!` (13 bytes, access log off). wrk then measures, one after the
# other, each with a short warm-up first:
#   direct   the backend itself (the ceiling),
#   wharf    crates/wharf-router/examples/route: one app, one upstream, keep-alive pool of
#            up to 64 idle connections (`--max-idle 64`, like nginx's `keepalive 64`; wharf's
#            default is 32); every request becomes a router log line in a wharf log store (a
#            temp dir),
#   wharf-nolog  the same without a log store: what the log writing costs,
#   nginx    proxy_pass to an upstream block with `keepalive 64`; its access log is on
#            (combined format, buffer=64k flush=1s, as wharf's log writer batches too),
#   haproxy  mode http, keep-alive and `http-reuse always` to the server; no request log
#            (HAProxy logs only to syslog, and none is configured here).
# Each proxy gets 2 worker threads/processes (wharf: tokio's default, one per core); the backend
# gets 1 nginx worker. Every request sends `Host: bench.local`. wrk, proxy and backend share the
# machine's cores, so the figures compare the proxies with each other more than they measure
# any of them alone.
#
# Prints a table: requests/s, latency p50 and p99, and throughput as a ratio of direct, each the
# median of ROUNDS (3) rounds that measure every path in turn; then a second one
# (bench/deploys.sh): requests that failed during DEPLOYS (10) deploys under load.
#
#   bench/router.sh                              # wrk -t2 -c64 -d10s
#   THREADS=2 CONNECTIONS=128 DURATION=20s ROUNDS=5 bench/router.sh
#   ROUTE_BIN=/path/to/route bench/router.sh     # no build
#   ROUTE_BIN_B=/path/to/other/route bench/router.sh
#                                                # also measures a second build of the route
#                                                # example (`wharf-b`, `wharf-b-nolog`), each
#                                                # right after its counterpart, to compare two
#                                                # versions of the router in one run
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
TIMEOUT=${TIMEOUT:-900} # the whole measurement, seconds (the build is not counted)
HOST=bench.local

export DEBIAN_FRONTEND=noninteractive
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}" >&2
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

if [ -z "${ROUTE_BIN:-}" ]; then
  cargo build --release -q -p wharf-router --example route
  ROUTE_BIN=${CARGO_TARGET_DIR:-target}/release/examples/route
fi

work=$(mktemp -d /tmp/wharf-router-bench.XXXXXX)
chmod 755 "$work"
started=() # every server started here, each the leader of its own process group (setsid)
cleanup() {
  local pid
  for pid in "${started[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
deadline=$(($(date +%s) + TIMEOUT))
check_deadline() {
  [ "$(date +%s)" -lt "$deadline" ] || { echo "bench: deadline ($TIMEOUT s) passed" >&2; exit 1; }
}

# Free ports, chosen by the kernel (bound to port 0, then released).
read -r BACKEND_PORT WHARF_PORT NOLOG_PORT NGINX_PORT HAPROXY_PORT B_PORT B_NOLOG_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)

# Starts a server in its own session; its pid (= process group) goes into `started`.
start() {
  local name=$1
  shift
  setsid "$@" >"$work/$name.out" 2>&1 </dev/null &
  started+=("$!")
}

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench: $name did not listen on $port; its output:" >&2
  cat "$work/$name.out" >&2 || true
  exit 1
}

mkdir -p "$work/tmp" "$work/logs"
chmod 777 "$work/tmp" # nginx workers run as an unprivileged user under root
# nginx_conf NAME WORKERS HTTP-BLOCK: an nginx config in the foreground, its files in $work.
nginx_conf() {
  local name=$1 workers=$2 http=$3
  cat >"$work/$name.conf" <<EOF
worker_processes $workers;
daemon off;
pid $work/$name.pid;
error_log $work/$name-error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path $work/tmp/$name-body;
  proxy_temp_path $work/tmp/$name-proxy;
  fastcgi_temp_path $work/tmp/$name-fastcgi;
  uwsgi_temp_path $work/tmp/$name-uwsgi;
  scgi_temp_path $work/tmp/$name-scgi;
  keepalive_requests 10000000;
$http
}
EOF
}

nginx_conf backend 1 "
  access_log off;
  server {
    listen 127.0.0.1:$BACKEND_PORT;
    location / { return 200 'Hello, world!'; }
  }"

nginx_conf nginx 2 "
  access_log $work/logs/nginx-access.log combined buffer=64k flush=1s;
  upstream backend {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection '';
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Request-Id \$request_id;
    }
  }"

cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  option forwardfor
  default_backend be
backend be
  server backend 127.0.0.1:$BACKEND_PORT
EOF

start backend "$NGINX" -c "$work/backend.conf"
wait_port "$BACKEND_PORT" backend
start wharf "$ROUTE_BIN" --listen "127.0.0.1:$WHARF_PORT" --host "$HOST" \
  --upstream "127.0.0.1:$BACKEND_PORT" --log-dir "$work/logs/wharf" --max-idle 64
wait_port "$WHARF_PORT" wharf
start wharf-nolog "$ROUTE_BIN" --listen "127.0.0.1:$NOLOG_PORT" --host "$HOST" \
  --upstream "127.0.0.1:$BACKEND_PORT" --max-idle 64
wait_port "$NOLOG_PORT" wharf-nolog
if [ -n "${ROUTE_BIN_B:-}" ]; then
  start wharf-b "$ROUTE_BIN_B" --listen "127.0.0.1:$B_PORT" --host "$HOST" \
    --upstream "127.0.0.1:$BACKEND_PORT" --log-dir "$work/logs/wharf-b" --max-idle 64
  wait_port "$B_PORT" wharf-b
  start wharf-b-nolog "$ROUTE_BIN_B" --listen "127.0.0.1:$B_NOLOG_PORT" --host "$HOST" \
    --upstream "127.0.0.1:$BACKEND_PORT" --max-idle 64
  wait_port "$B_NOLOG_PORT" wharf-b-nolog
fi
start nginx "$NGINX" -c "$work/nginx.conf"
wait_port "$NGINX_PORT" nginx
start haproxy "$HAPROXY" -db -f "$work/haproxy.cfg"
wait_port "$HAPROXY_PORT" haproxy

entries=("direct:$BACKEND_PORT" "wharf:$WHARF_PORT")
[ -z "${ROUTE_BIN_B:-}" ] || entries+=("wharf-b:$B_PORT")
entries+=("wharf-nolog:$NOLOG_PORT")
[ -z "${ROUTE_BIN_B:-}" ] || entries+=("wharf-b-nolog:$B_NOLOG_PORT")
entries+=("nginx:$NGINX_PORT" "haproxy:$HAPROXY_PORT")

# Every path answers the backend's body before anything is measured.
for entry in "${entries[@]}"; do
  port=${entry##*:}
  body=$(curl -sS --max-time 5 -H "Host: $HOST" "http://127.0.0.1:$port/")
  [ "$body" = "Hello, world!" ] || { echo "bench: port $port answered '$body'" >&2; exit 1; }
done

# Runs wrk; prints "requests/s p50 p99", the latencies in microseconds.
measure() {
  local port=$1 out
  check_deadline
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -H "Host: $HOST" "http://127.0.0.1:$port/" >/dev/null
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Host: $HOST" \
    "http://127.0.0.1:$port/")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "bench: non-2xx answers on port $port:" >&2
    echo "$out" >&2
    exit 1
  fi
  awk '
    function us(v) {
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1000
      if (v ~ /s$/) return v * 1000000
      return v + 0
    }
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    END { print rps, p50, p99 }
  ' <<<"$out"
}

# Microseconds as wrk shows them.
show_us() {
  awk -v v="$1" 'BEGIN {
    if (v >= 1000000) printf "%.2fs", v / 1000000
    else if (v >= 1000) printf "%.2fms", v / 1000
    else printf "%.0fus", v
  }'
}

# The median of the numbers given.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ROUNDS rounds, each measuring every path once; each round starts one path further down the
# list, so that no path is always measured right after the same neighbour or at the same point
# of a drift in the machine's load. The table shows each path's median over the rounds, and the
# lowest and highest requests/s it had.
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION (after a $WARMUP warm-up), $ROUNDS rounds, medians; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A results # name -> "rps p50 p99" lines, one per round
n=${#entries[@]}
for ((round = 0; round < ROUNDS; round++)); do
  for ((i = 0; i < n; i++)); do
    entry=${entries[$(((i + round) % n))]}
    name=${entry%%:*}
    port=${entry##*:}
    results[$name]+="$(measure "$port")"$'\n'
  done
done
printf '%-14s %12s %10s %10s %9s %17s\n' proxy requests/s p50 p99 vs-direct "rounds' range"
direct_rps=
for entry in "${entries[@]}"; do
  name=${entry%%:*}
  mapfile -t rows < <(printf '%s' "${results[$name]}")
  rps=$(median $(printf '%s\n' "${rows[@]}" | cut -d' ' -f1))
  p50=$(median $(printf '%s\n' "${rows[@]}" | cut -d' ' -f2))
  p99=$(median $(printf '%s\n' "${rows[@]}" | cut -d' ' -f3))
  low=$(printf '%s\n' "${rows[@]}" | cut -d' ' -f1 | sort -g | head -1)
  high=$(printf '%s\n' "${rows[@]}" | cut -d' ' -f1 | sort -g | tail -1)
  [ -n "$direct_rps" ] || direct_rps=$rps
  ratio=$(awk -v a="$rps" -v b="$direct_rps" 'BEGIN { printf "%.2f", a / b }')
  printf '%-14s %12.0f %10s %10s %9s %8.0f-%-8.0f\n' "$name" "$rps" "$(show_us "$p50")" \
    "$(show_us "$p99")" "$ratio" "$low" "$high"
done

# Every log line has an id, one more than the line before (older segments may be gone already);
# lines dropped under overload are counted in `Log overflow: N lines dropped` notices.
for name in wharf wharf-b; do
  last_segment=$(ls "$work"/logs/$name/bench/*.log 2>/dev/null | sort | tail -1)
  if [ -n "$last_segment" ]; then
    written=$(tail -n 1 "$last_segment" | cut -f1)
    dropped=$(cat "$work"/logs/$name/bench/*.log |
      { grep -o 'Log overflow: [0-9]* lines dropped' || true; } |
      awk '{ n += $3 } END { print n + 0 }')
    echo "$name's log: $written lines written, $dropped dropped (in the segments still kept)"
  fi
done

# The second table: requests lost while an app behind the router is redeployed under load
# (a real `wharf server`; see bench/deploys.sh). DEPLOYS=0 skips it.
if [ "${DEPLOYS:-10}" != 0 ]; then
  echo
  DEPLOYS=${DEPLOYS:-10} bench/deploys.sh
fi
