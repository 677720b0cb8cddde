#!/usr/bin/env bash
# Zero-downtime benchmark: requests lost while an app is redeployed under load. A real `wharf
# server` (release build, --sandbox none) runs a small Python web app with web=2; wrk sends
# requests through wharf's router for the whole run while the script makes DEPLOYS releases one
# after another — alternately a build of changed code and a config change — each waited for until
# every web instance runs it. Prints a table: requests, failed (non-2xx plus socket errors), and
# the share lost. Target: 0 failed.
#
#   bench/deploys.sh                       # 10 deploys
#   DEPLOYS=4 CONNECTIONS=8 bench/deploys.sh
#   WHARF_BIN=/path/to/wharf bench/deploys.sh   # no build
# Needs wrk (installed with apt-get when missing) and python3. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPLOYS=${DEPLOYS:-10}
CONNECTIONS=${CONNECTIONS:-16}
TIMEOUT=${TIMEOUT:-600}  # the whole run, seconds

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
if [ -z "${WHARF_BIN:-}" ]; then
  cargo build --release -q -p wharf
  WHARF_BIN=target/release/wharf
fi

work=$(mktemp -d /tmp/wharf-deploys.XXXXXX)
chmod 755 "$work"
cp "$WHARF_BIN" "$work/wharf"
WHARF=$work/wharf
server_pid=""
wrk_pid=""
cleanup() {
  touch "$work/stop" 2>/dev/null || true
  [ -n "$wrk_pid" ] && wait "$wrk_pid" 2>/dev/null || true
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
deadline=$(($(date +%s) + TIMEOUT))
check_deadline() {
  [ "$(date +%s)" -lt "$deadline" ] || { echo "bench: deadline ($TIMEOUT s) passed" >&2; exit 1; }
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

api_port=$(free_port)
router_port=$(free_port)
token=bench-token-$RANDOM$RANDOM
"$WHARF" server --data-dir "$work/data" --api-addr "127.0.0.1:$api_port" \
  --router-addr "127.0.0.1:$router_port" --sandbox none --admin-token "$token" \
  --port-range 33000-33999 2>"$work/server.log" &
server_pid=$!
export WHARF_URL=http://127.0.0.1:$api_port WHARF_TOKEN=$token WHARF_CONFIG_DIR=$work/cli
until curl -fs "$WHARF_URL/healthz" >/dev/null 2>&1; do
  check_deadline
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done

app=$work/app
mkdir -p "$app"
cat > "$app/app.py" <<'PY'
import os, http.server
CODE = "0"
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("code %s config %s %s\n" % (CODE, os.environ.get("N", "0"), os.environ["DYNO"])).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
PY
echo "web: python3 app.py" > "$app/Procfile"
"$WHARF" apps create bench >/dev/null
"$WHARF" deploy "$app" -a bench >/dev/null 2>&1
"$WHARF" scale web=2 -a bench >/dev/null

# Waits until every web instance runs the app's current release and is up, and there are 2.
settled() {
  local current
  current=$("$WHARF" releases -a bench --json | python3 -c 'import json,sys; print(next(r["version"] for r in json.load(sys.stdin) if r["current"]))')
  until "$WHARF" ps -a bench --json | python3 -c '
import json, sys
want = int(sys.argv[1])
web = [d for d in json.load(sys.stdin) if d["type"] == "web"]
sys.exit(0 if len(web) == 2 and all(d["state"] == "up" and d["release"]["version"] == want for d in web) else 1)' "$current"; do
    check_deadline
    sleep 0.2
  done
}
settled

# wrk in back-to-back 2-second rounds until told to stop (wrk prints nothing when interrupted).
(
  while [ ! -e "$work/stop" ] && [ "$(date +%s)" -lt "$deadline" ]; do
    wrk -t2 -c"$CONNECTIONS" -d2s -H "Host: bench.localhost" "http://127.0.0.1:$router_port/" \
      >>"$work/wrk.txt" 2>&1 || true
  done
) &
wrk_pid=$!
sleep 2 # load before the first deploy
started=$(date +%s)
for i in $(seq "$DEPLOYS"); do
  check_deadline
  if [ $((i % 2)) = 1 ]; then
    sed -i "s/^CODE = .*/CODE = \"$i\"/" "$app/app.py"
    "$WHARF" deploy "$app" -a bench >/dev/null 2>&1
  else
    "$WHARF" config set "N=$i" -a bench >/dev/null
  fi
  settled
done
took=$(($(date +%s) - started))
sleep 2 # load after the last deploy
touch "$work/stop"
wait "$wrk_pid" 2>/dev/null || true
wrk_pid=""

requests=$(awk '/requests in/ {n += $1} END {print n + 0}' "$work/wrk.txt")
non2xx=$(awk -F: '/Non-2xx/ {gsub(/ /, "", $2); n += $2} END {print n + 0}' "$work/wrk.txt")
socket=$(awk '/Socket errors/ {for (i=1; i<=NF; i++) if ($i ~ /^[0-9]+,?$/) {gsub(/,/, "", $i); n += $i}} END {print n + 0}' "$work/wrk.txt")
failed=$((non2xx + socket))
releases=$("$WHARF" releases -a bench --json | python3 -c 'import json,sys; print(max(r["version"] for r in json.load(sys.stdin)))')
echo
echo "wharf $( "$WHARF" --version | awk '{print $2}' ), $(nproc) cores, $DEPLOYS deploys in ${took}s under wrk -c$CONNECTIONS (app: python3 ThreadingHTTPServer, web=2), up to v$releases"
printf '%-22s %10s %8s %8s\n' "run" "requests" "failed" "lost"
printf '%-22s %10s %8s %8s\n' "$DEPLOYS deploys under load" "$requests" "$failed" \
  "$(python3 -c "print(f'{$failed / max($requests, 1) * 100:.3f}%')")"
if [ "$failed" != 0 ] || [ "$requests" = 0 ]; then
  echo "(wrk's report:)"; cat "$work/wrk.txt"
fi
