#!/usr/bin/env bash
# Release-switch benchmark: how fast a rollback and a config change reach the running app, and
# whether any request fails meanwhile. A real `wharf server` (release build, --sandbox none) runs
# a small Python web app that answers GET with its VERSION config var and its DYNO; for each web
# count in WEB_COUNTS (1 and 10 instances by default) the script measures, REPEAT times each:
#
#   rollback → first old response    from starting `wharf rollback vK` (vK: the deploy, VERSION=1)
#                                    while VERSION=2 runs, to the first answer through the router
#                                    that says VERSION 1 (curl polled in a tight loop);
#   config set → all instances new   from starting `wharf config set VERSION=3` to every web
#                                    instance in GET /apps/{app}/dynos being up on the new
#                                    release, with no older instance left (N of them, all "up").
#
# wrk sends requests through wharf's router (Host: APP.localhost) during each timed window, from
# shortly before it starts to the end of the wrk round in which it ended; failed = non-2xx plus
# socket errors (target: 0). Between windows the app is settled again (untimed): every web
# instance up on the current release and the router answering its VERSION. The table shows the
# median seconds (and the range) of the REPEAT runs and the requests and failures summed over them.
#
#   bench/release.sh                            # WEB_COUNTS="1 10" REPEAT=3
#   WEB_COUNTS="1 10" REPEAT=3 CONNECTIONS=16 bench/release.sh
#   WHARF_BIN=/path/to/wharf bench/release.sh   # no build
# TIMEOUT (600 s) bounds the whole run and STEP_TIMEOUT (120 s) each wait. Needs wrk (installed
# with apt-get when missing), curl, jq and python3. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # EPOCHREALTIME and printf with a '.' decimal point
WEB_COUNTS=${WEB_COUNTS:-"1 10"}
REPEAT=${REPEAT:-3}
CONNECTIONS=${CONNECTIONS:-16}
TIMEOUT=${TIMEOUT:-600}          # the whole run, seconds
STEP_TIMEOUT=${STEP_TIMEOUT:-120} # each wait (deploy, settle, timed window), seconds

case "$REPEAT" in '' | *[!0-9]* | 0) echo "bench: REPEAT must be a positive number" >&2; exit 2 ;; esac
[ "$REPEAT" -le 50 ] || { echo "bench: REPEAT is at most 50" >&2; exit 2; }
for n in $WEB_COUNTS; do
  case "$n" in '' | *[!0-9]* | 0) echo "bench: WEB_COUNTS holds positive numbers" >&2; exit 2 ;; esac
done

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
command -v jq >/dev/null || { apt-get install -y -qq jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }; }
if [ -z "${WHARF_BIN:-}" ]; then
  cargo build --release -q -p wharf
  WHARF_BIN=target/release/wharf
fi

work=$(mktemp -d /tmp/wharf-release.XXXXXX)
chmod 755 "$work"
cp "$WHARF_BIN" "$work/wharf"
WHARF=$work/wharf
server_pid=""
load_pid=""
keep_work=""
cleanup() {
  touch "$work/stop" 2>/dev/null || true
  [ -n "$load_pid" ] && wait "$load_pid" 2>/dev/null || true
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$keep_work" ]; then echo "bench: kept $work (server.log, wrk output)" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

run_start=$EPOCHREALTIME
deadline=$((${EPOCHREALTIME%.*} + TIMEOUT))
fail() {
  echo "bench: $*" >&2
  echo "bench: last lines of the server log:" >&2
  tail -n 40 "$work/server.log" >&2 || true
  keep_work=1
  exit 1
}
check_deadline() {
  [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || fail "deadline ($TIMEOUT s) passed"
}
# Seconds left of the whole run, at least 1: the bound for one CLI call.
remaining() { local left=$((deadline - ${EPOCHREALTIME%.*})); echo $((left > 0 ? left : 1)); }
# A step's end: STEP_TIMEOUT from now, or the run's deadline when that is sooner.
step_end() { local end=$((${EPOCHREALTIME%.*} + STEP_TIMEOUT)); echo $((end < deadline ? end : deadline)); }
check_step() { # END WHAT
  check_deadline
  [ "${EPOCHREALTIME%.*}" -lt "$1" ] || fail "$2: not done within $STEP_TIMEOUT s"
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wharf() { timeout "$(remaining)" "$WHARF" "$@"; }

api_port=$(free_port)
router_port=$(free_port)
token=bench-token-$RANDOM$RANDOM
"$WHARF" server --data-dir "$work/data" --api-addr "127.0.0.1:$api_port" \
  --router-addr "127.0.0.1:$router_port" --sandbox none --admin-token "$token" \
  --port-range 34000-34999 --boot-timeout "$STEP_TIMEOUT" 2>"$work/server.log" &
server_pid=$!
export WHARF_URL=http://127.0.0.1:$api_port WHARF_TOKEN=$token WHARF_CONFIG_DIR=$work/cli
until curl -fs --max-time 2 "$WHARF_URL/healthz" >/dev/null 2>&1; do
  check_deadline
  kill -0 "$server_pid" 2>/dev/null || fail "the server exited"
  sleep 0.1
done

src=$work/app
mkdir -p "$src"
cat > "$src/app.py" <<'PY'
import os, http.server
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("VERSION %s %s\n" % (os.environ.get("VERSION", "-"), os.environ["DYNO"])).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
PY
echo "web: python3 app.py" > "$src/Procfile"

api() { # PATH: GET from the API, as JSON
  curl -fsS --max-time 5 -H "Authorization: Bearer $token" \
    -H 'Accept: application/vnd.heroku+json; version=3' "$WHARF_URL$1"
}
current_version() { # APP
  api "/apps/$1/releases" | jq -e '[.[] | select(.current)][0].version'
}
# Whether exactly N web instances run, every one up on release V, none of another release.
all_on() { # APP N V
  api "/apps/$1/dynos" 2>/dev/null | jq -e --argjson n "$2" --argjson v "$3" \
    '[.[] | select(.type == "web")] | length == $n and all(.state == "up" and .release.version == $v)' \
    >/dev/null 2>&1
}
# The router's answer for APP (empty when it fails).
answer() { curl -s --max-time 2 -H "Host: $1.localhost" "http://127.0.0.1:$router_port/" 2>/dev/null || true; }
# Untimed: waits until every web instance is up on the current release and the router answers
# with VERSION.
settle() { # APP N VERSION WHAT
  local end version
  end=$(step_end)
  version=$(current_version "$1") || fail "$4: no current release"
  until all_on "$1" "$2" "$version"; do check_step "$end" "$4"; sleep 0.1; done
  until [[ "$(answer "$1")" == "VERSION $3 "* ]]; do check_step "$end" "$4 (router)"; sleep 0.05; done
}

# wrk in back-to-back 1-second rounds until the stop file exists (wrk prints nothing when
# interrupted, so each round runs to its end).
start_load() { # APP OUT
  rm -f "$work/stop" "$2"
  (
    while [ ! -e "$work/stop" ] && [ "${EPOCHREALTIME%.*}" -lt "$deadline" ]; do
      wrk -t2 -c"$CONNECTIONS" -d1s -H "Host: $1.localhost" "http://127.0.0.1:$router_port/" \
        >>"$2" 2>&1 || true
    done
  ) &
  load_pid=$!
  sleep 0.5 # the first round under way before the clock starts
}
stop_load() {
  touch "$work/stop"
  wait "$load_pid" 2>/dev/null || true
  load_pid=""
}
# Prints "REQUESTS FAILED" of a wrk output file: failed = non-2xx + socket errors.
load_counts() { # OUT
  local requests non2xx socket
  requests=$(awk '/requests in/ {n += $1} END {print n + 0}' "$1")
  non2xx=$(awk -F: '/Non-2xx/ {gsub(/ /, "", $2); n += $2} END {print n + 0}' "$1")
  socket=$(awk '/Socket errors/ {for (i=1; i<=NF; i++) if ($i ~ /^[0-9]+,?$/) {gsub(/,/, "", $i); n += $i}} END {print n + 0}' "$1")
  echo "$requests $((non2xx + socket))"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}'; }

rows=()
for n in $WEB_COUNTS; do
  app=rel-web$n
  echo "bench: web=$n: create, deploy, scale" >&2
  wharf apps create "$app" >/dev/null
  wharf config set VERSION=1 -a "$app" >/dev/null
  wharf deploy "$src" -a "$app" >>"$work/deploy.log" 2>&1 || { cat "$work/deploy.log" >&2; fail "deploy of $app failed"; }
  old=$(current_version "$app") || fail "$app: no current release after its deploy" # the deploy: its image with VERSION=1
  wharf scale "web=$n" -a "$app" >/dev/null
  settle "$app" "$n" 1 "web=$n: scale"

  rb_secs=() rb_req=0 rb_failed=0 cs_secs=() cs_req=0 cs_failed=0
  for rep in $(seq "$REPEAT"); do
    check_deadline
    wharf config set VERSION=2 -a "$app" >/dev/null
    settle "$app" "$n" 2 "web=$n run $rep: config set VERSION=2"

    # Rollback to the deploy: timed until the router's first VERSION 1 answer.
    out=$work/wrk-$n-$rep-rollback.txt
    start_load "$app" "$out"
    end=$(step_end)
    t0=$EPOCHREALTIME
    wharf rollback "v$old" -a "$app" >/dev/null 2>>"$work/cli.log"
    until [[ "$(answer "$app")" == "VERSION 1 "* ]]; do check_step "$end" "web=$n run $rep: rollback"; sleep 0.01; done
    t1=$EPOCHREALTIME
    stop_load
    rb_secs+=("$(elapsed "$t0" "$t1")")
    read -r req failed < <(load_counts "$out")
    rb_req=$((rb_req + req)) rb_failed=$((rb_failed + failed))
    settle "$app" "$n" 1 "web=$n run $rep: rollback"

    # Config change: timed until every instance is up on the new release and no old one is left.
    out=$work/wrk-$n-$rep-config.txt
    start_load "$app" "$out"
    end=$(step_end)
    t0=$EPOCHREALTIME
    wharf config set VERSION=3 -a "$app" >/dev/null
    version=$(current_version "$app") || fail "web=$n run $rep: no current release"
    until all_on "$app" "$n" "$version"; do check_step "$end" "web=$n run $rep: config set VERSION=3"; sleep 0.01; done
    t1=$EPOCHREALTIME
    stop_load
    cs_secs+=("$(elapsed "$t0" "$t1")")
    read -r req failed < <(load_counts "$out")
    cs_req=$((cs_req + req)) cs_failed=$((cs_failed + failed))
    echo "bench: web=$n run $rep: rollback ${rb_secs[-1]} s, config set ${cs_secs[-1]} s" >&2
  done
  # (36: each operation's arrow is 3 bytes wide in printf's count, one column on screen)
  rows+=("$(printf '%-4s %-36s %8s %12s %9s %7s' "$n" "rollback → first old response" \
    "$(median "${rb_secs[@]}")" "$(range "${rb_secs[@]}")" "$rb_req" "$rb_failed")")
  rows+=("$(printf '%-4s %-36s %8s %12s %9s %7s' "$n" "config set → all instances new" \
    "$(median "${cs_secs[@]}")" "$(range "${cs_secs[@]}")" "$cs_req" "$cs_failed")")
  [ "$rb_failed" = 0 ] && [ "$cs_failed" = 0 ] || keep_work=1
  wharf scale web=0 -a "$app" >/dev/null # its instances off the cores for the next web count
done

echo
echo "wharf $("$WHARF" --version | awk '{print $2}'), $(nproc) cores, $0 (WEB_COUNTS=\"$WEB_COUNTS\" REPEAT=$REPEAT), wrk -t2 -c$CONNECTIONS through the router, app: python3 ThreadingHTTPServer, run took $(elapsed "$run_start" "$EPOCHREALTIME") s"
echo "seconds: median of $REPEAT runs (range: fastest-slowest); requests, failed: summed over the $REPEAT runs' load windows"
printf '%-4s %-34s %8s %12s %9s %7s\n' "web" "operation" "seconds" "range" "requests" "failed"
printf '%s\n' "${rows[@]}"
