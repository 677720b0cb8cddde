#!/usr/bin/env bash
# Time to first page: seconds from starting the README's first command, `wharf up
# examples/python-web` (wharf already built), to the first 200 through wharf's router, and to
# the line that says the release it just built is up (`=====> APP is up at …`).
#
#   cold   an empty data directory: the app is created, pip downloads and installs gunicorn,
#          the image is packed, released and started;
#   warm   the same data directory again: the app exists, so its last release serves at once
#          while the build restores its virtualenv from the build cache (pip skipped) and the
#          new release replaces it without downtime.
#
# Cold means an empty data directory on a machine where wharf's stack is made (`wharf up` makes
# it once per machine, in ~/.local/share/wharf/up/.stacks, and copies it into each data
# directory): a round 0, not counted, makes it if it is not made yet.
#
# Each round starts `wharf up` on a fresh data directory (cold), stops it with SIGINT, then
# starts it again on that directory (warm). curl polls the router, and the script polls wharf
# up's output, every 20 ms from the moment the command starts. The table shows each round and
# the median.
#
#   bench/first-run.sh                       # ROUNDS=3, target/release/wharf (built if missing)
#   ROUNDS=5 WHARF_BIN=/path/to/wharf bench/first-run.sh
#   APP_DIR=examples/node-web APP=node-web bench/first-run.sh
#
# STEP_TIMEOUT (300 s) bounds each start. Needs curl. Traffic stays on 127.0.0.1; the cold build
# reaches PyPI (or the registry pip is configured with).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # EPOCHREALTIME with a '.' decimal point
ROUNDS=${ROUNDS:-3}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
APP_DIR=${APP_DIR:-examples/python-web}
APP=${APP:-$(basename "$APP_DIR")}
case "$ROUNDS" in '' | *[!0-9]* | 0) echo "bench: ROUNDS must be a positive number" >&2; exit 2 ;; esac
[ "$ROUNDS" -le 20 ] || { echo "bench: ROUNDS is at most 20" >&2; exit 2; }
command -v curl >/dev/null || { echo "bench: curl is needed (apt-get install curl)" >&2; exit 1; }

if [ -z "${WHARF_BIN:-}" ]; then
  cargo build --release --quiet --bin wharf
  WHARF_BIN=target/release/wharf
fi
WHARF_BIN=$(realpath "$WHARF_BIN")

work=$(mktemp -d /tmp/wharf-first-run.XXXXXX)
chmod 711 "$work"
up_pid=""
cleanup() {
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -INT "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs COMMAND every 20 ms until it succeeds; fails the bench with WHAT and wharf up's log (LOG)
# if DEADLINE (epoch seconds) passes or wharf up exits first.
poll_until() {
  local deadline=$1 log=$2 what=$3 now
  shift 3
  until "$@"; do
    now=$EPOCHREALTIME
    if [ "${now%.*}" -ge "$deadline" ] || ! kill -0 "$up_pid" 2>/dev/null; then
      echo "bench: $what within ${STEP_TIMEOUT}s; wharf up said:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
    sleep 0.02
  done
}

# Starts `wharf up` on data dir $1, prints the seconds to the first 200 and to "is up at", then
# stops it.
time_to_first_page() {
  local data=$1 log=$2 port start now page
  port=$(free_port)
  start=$EPOCHREALTIME
  "$WHARF_BIN" up "$APP_DIR" --data-dir "$data" --router-addr "127.0.0.1:$port" \
    </dev/null >/dev/null 2>"$log" &
  up_pid=$!
  local deadline=$((${start%.*} + STEP_TIMEOUT))
  poll_until "$deadline" "$log" "no page from $APP" \
    curl -fs -o /dev/null --max-time 2 -H "Host: $APP.localhost" "http://127.0.0.1:$port/"
  page=$EPOCHREALTIME
  poll_until "$deadline" "$log" "$APP's new release was not up" grep -q "is up at" "$log"
  now=$EPOCHREALTIME
  kill -INT "$up_pid"
  if ! wait "$up_pid"; then
    echo "bench: wharf up did not exit cleanly on SIGINT; it said:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  up_pid=""
  awk -v a="$start" -v p="$page" -v b="$now" 'BEGIN { printf "%.2f %.2f\n", p - a, b - a }'
}

median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Round 0, not counted: makes the machine's stack if it isn't made yet (minutes, once).
STEP_TIMEOUT=$((STEP_TIMEOUT > 900 ? STEP_TIMEOUT : 900)) time_to_first_page "$work/data-0" "$work/round-0.log" >/dev/null

cold_page=() cold_up=() warm_page=() warm_up=()
for round in $(seq 1 "$ROUNDS"); do
  data="$work/data-$round"
  read -r page up < <(time_to_first_page "$data" "$work/cold-$round.log")
  cold_page+=("$page") cold_up+=("$up")
  read -r page up < <(time_to_first_page "$data" "$work/warm-$round.log")
  warm_page+=("$page") warm_up+=("$up")
  echo "bench: round $round: cold ${cold_page[-1]}/${cold_up[-1]} s, warm ${warm_page[-1]}/${warm_up[-1]} s" >&2
done

sandbox=$(grep -m1 'Sandbox:' "$work/cold-1.log" | sed 's/^ *//')
stack=$(grep -m1 'Stack:' "$work/cold-1.log" | sed 's/^ *//')
echo "wharf up $APP_DIR: seconds from the start to the first 200 through the router (page),"
echo "and to its new release being up (release); medians of $ROUNDS rounds, then each round"
echo "$(nproc) cores, $(id -un), $(uname -r); $sandbox"
echo "$stack"
printf '%-14s%8s  %s\n' run median rounds
for kind in cold_page cold_up warm_page warm_up; do
  declare -n figures=$kind
  label=${kind/_up/ release}
  printf '%-14s%8s  %s\n' "${label/_/ }" "$(echo "${figures[*]}" | median)" "${figures[*]}"
done
