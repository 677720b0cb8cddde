#!/usr/bin/env bash
# Run-stage benchmark: wharf's process supervisor next to honcho and node-foreman (`nf`), in one
# run, on the same Procfile and the same app commands. For each tool:
#  1. start-up: seconds from the start command until N instances of a web process all accept TCP
#     connections on their $PORT (for wharf also until `wharf ps --json` shows all N `up`);
#  2. memory: the supervisor's RSS with N instances up against its RSS with 1 up, per instance
#     (and the same for the supervisor's own helper processes, by PSS, where it has any);
#  3. logs: one process prints $LINES lines as fast as it can; how long until they reach the
#     supervisor's output (wharf: the app's log files; honcho, nf: their stdout, to a file), and how
#     many were lost (wharf drops under overload and says so with a `Log overflow` notice).
# Prints a table. Needs python3 (/usr/bin/python3 for the apps, runnable by `nobody`), node/npm,
# and network access to PyPI and npm the first time (honcho, foreman). wharf runs with
# `--sandbox none`, as the peers do; as root it runs the apps as `nobody`.
# With STACK=1 (and bubblewrap and mmdebstrap) two more wharf rows measure start-up and memory
# in namespaces, each app as its own user: "wharf in namespaces" on the host's /usr (stack
# wharf-1, the default before stacks) and "wharf on a stack" with the stack's run image as `/`
# (wharf-trixie, the default now; made first and not counted; STACK_DATA=DIR keeps its data
# directory between runs so the stack is made once). Their instances can't write port files to
# the host, so both wait for the ports `wharf ps --json` names to accept connections.
#
#   bench/supervisor.sh                    # N = 50 and 200, 200000 log lines
#   SIZES="50" LINES=50000 bench/supervisor.sh
#   WHARF_BIN=/path/to/wharf bench/supervisor.sh  # no build
#   STACK=1 STACK_DATA=/var/tmp/wharf-bench-stack bench/supervisor.sh  # also on wharf-trixie
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"50 200"}
LINES=${LINES:-200000}
TIMEOUT=${TIMEOUT:-600}            # the whole measurement, seconds (the build is not counted)
PHASE_TIMEOUT=${PHASE_TIMEOUT:-120} # one start-up or one log run, seconds
APP_PY=${APP_PY:-/usr/bin/python3}  # runs the apps, for every tool
# Below the kernel's ephemeral range (32768-), where the poller's own connections could take one.
WHARF_PORTS=31000-31999
HONCHO_PORT=32000 # 32000-32099 web, 32100-32199 web2
NF_PORT=30000     # 30000-30099 web, 30100-30199 web2

# WHARF_BIN=path skips the build and measures that binary instead (when the tree is mid-edit).
if [ -z "${WHARF_BIN:-}" ]; then
  cargo build --release -q -p wharf
  WHARF_BIN=target/release/wharf
fi
PY=$(python3 -c 'import sys; print(sys.executable)') # the real interpreter, not a pyenv shim
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

work=$(mktemp -d /tmp/wharf-bench.XXXXXX)
chmod 755 "$work" # the apps run as `nobody` under a root wharf and write into $work/ports
cp "$WHARF_BIN" "$work/wharf" # the tree may be rebuilt while this runs
WHARF=$work/wharf
HELP=$work/help.py
started=() # every process started here (each a session and process-group leader: setsid)
cleanup() {
  local pid
  for pid in "${started[@]}"; do kill_tree "$pid" || true; done
  rm -rf "$work"
}
trap cleanup EXIT
deadline=$(($(date +%s) + TIMEOUT))
# Seconds left for one phase: PHASE_TIMEOUT, or less when the global deadline is nearer.
phase_deadline() {
  local d=$(($(date +%s) + PHASE_TIMEOUT))
  [ "$d" -gt "$deadline" ] && d=$deadline
  [ "$d" -le "$(date +%s)" ] && { echo "bench: global deadline ($TIMEOUT s) passed" >&2; exit 1; }
  echo "$d"
}
now() { date +%s.%N; }

cat > "$HELP" <<'PY'
import os, re, socket, subprocess, sys, time, json, glob

def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids

def descendants(root):
    kids, out, todo = children_map(), [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out

def kib(pid, field, path):
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None

def mem(root):
    # The supervisor's RSS; and the PSS of it plus its descendants running the same executable
    # (honcho forks one helper per instance; the apps run /usr/bin/python3 via /bin/sh).
    me = exe(root)
    helpers = [p for p in descendants(root) if exe(p) == me]
    pss = sum(kib(p, "Pss", "smaps_rollup") for p in [root] + helpers)
    print(kib(root, "VmRSS", "status"), pss, len(helpers))

def ps_ports(ps_cmd):
    try:
        dynos = json.loads(subprocess.run(ps_cmd, capture_output=True, check=True).stdout)
    except Exception:
        return []
    return [str(d["port"]) for d in dynos if d.get("port")]

def wait_up(ports_dir, n, until, ps_cmd):
    # Until n port files exist (ports_dir "-": n ports named by `ps --json`) and each port accepts
    # a connection (and, for wharf, `ps --json` shows n dynos up). Prints "ok|timeout <epoch>
    # <ports accepting> <dynos up>".
    ok, up = set(), -1
    while True:
        names = ps_ports(ps_cmd) if ports_dir == "-" else os.listdir(ports_dir)
        for name in names:
            if name in ok:
                continue
            try:
                socket.create_connection(("127.0.0.1", int(name)), timeout=0.5).close()
                ok.add(name)
            except OSError:
                pass
        if len(ok) >= n:
            if not ps_cmd:
                break
            try:
                dynos = json.loads(subprocess.run(ps_cmd, capture_output=True, check=True).stdout)
                up = sum(1 for d in dynos if d.get("state") == "up")
            except Exception:
                up = -1
            if up >= n:
                break
        if time.time() > until:
            print("timeout", time.time(), len(ok), up)
            return
        time.sleep(0.02)
    print("ok", time.time(), len(ok), up)

def wait_gone(n_cmd, until):
    # Until `wharf ps --json` lists no dyno.
    while time.time() < until:
        try:
            if not json.loads(subprocess.run(n_cmd, capture_output=True, check=True).stdout):
                print("ok")
                return
        except Exception:
            pass
        time.sleep(0.1)
    print("timeout")

def wait_lines(pattern, needle, until):
    # Follows the files matching `pattern`, counting lines that contain `needle` (bytes); stops
    # at "spew done" (printed by the app a second after its last line) or at `until`. Prints
    # "<done 0|1> <lines> <dropped per overflow notices> <epoch first seen> <epoch last grew>".
    needle, offsets, count, dropped, first, last, done = needle.encode(), {}, 0, 0, 0.0, 0.0, False
    overflow = re.compile(rb"Log overflow: (\d+) lines? dropped")
    while not done and time.time() < until:
        grew = False
        for path in sorted(glob.glob(pattern)):
            with open(path, "rb") as f:
                f.seek(offsets.get(path, 0))
                chunk = f.read()
            cut = chunk.rfind(b"\n") + 1
            chunk = chunk[:cut]
            offsets[path] = offsets.get(path, 0) + cut
            if not chunk:
                continue
            c = chunk.count(needle)
            if c:
                count += c
                grew = True
            dropped += sum(int(m) for m in overflow.findall(chunk))
            if b"spew done" in chunk:
                done = True
        if grew:
            last = time.time()
            first = first or last
        if not done:
            time.sleep(0.02)
    print(int(done), count, dropped, first, last)

cmd = sys.argv[1]
if cmd == "descendants":
    print(" ".join(map(str, descendants(int(sys.argv[2])))))
elif cmd == "mem":
    mem(int(sys.argv[2]))
elif cmd == "wait-up":
    wait_up(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:])
elif cmd == "wait-gone":
    wait_gone(sys.argv[3:], float(sys.argv[2]))
elif cmd == "wait-lines":
    wait_lines(sys.argv[2], sys.argv[3], float(sys.argv[4]))
PY

# Stops a process started with setsid, and everything under it (found by walking /proc: honcho
# puts each app in a session of its own, wharf in a process group of its own): SIGTERM to the
# group and to every descendant, SIGKILL to whatever is left after 10 s, then checks that nothing
# is left.
alive() { # pids → those still running (not gone, not zombies)
  local p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] && echo "$p"
  done
  return 0
}
kill_tree() {
  local root=$1 pids left
  pids="$root $("$PY" "$HELP" descendants "$root")"
  kill -TERM -- "-$root" 2>/dev/null || true
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 100); do
    # shellcheck disable=SC2086
    left=$(alive $pids)
    [ -z "$left" ] && break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  [ -n "$left" ] && { kill -KILL $left 2>/dev/null || true; }
  wait "$root" 2>/dev/null || true
  sleep 0.2
  # shellcheck disable=SC2086
  left=$(alive $pids)
  local kept=()
  for p in "${started[@]}"; do [ "$p" != "$root" ] && kept+=("$p"); done
  started=("${kept[@]}")
  if [ -n "$left" ]; then
    echo "bench: processes left after stopping $root: $left" >&2
    return 1
  fi
}

# --- the apps (the same files for all three tools) ---------------------------------------------
ports=$work/ports
mkdir -p "$ports" "$work/app-web" "$work/app-log"
chmod 1777 "$ports"
cat > "$work/app-web/web.py" <<'PY'
import os, socket, sys
port = os.environ["PORT"]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(port)))
s.listen(128)
open(os.path.join(sys.argv[1], port), "w").close()
while True:
    s.accept()[0].close()
PY
cat > "$work/app-log/spew.py" <<'PY'
import sys, time
n = int(sys.argv[1])
w = sys.stdout.write
for i in range(n):
    w(f"line {i}\n")
sys.stdout.flush()
time.sleep(1)
print("spew done", flush=True)
time.sleep(3600)
PY
printf 'web: %s web.py %s\nweb2: %s web.py %s\n' "$APP_PY" "$ports" "$APP_PY" "$ports" > "$work/app-web/Procfile"
# On a stack: the same app, its port files in its own scratch (the host's $work is not there).
mkdir -p "$work/app-web-stack"
cp "$work/app-web/web.py" "$work/app-web-stack/"
printf 'web: /usr/bin/python3 web.py /tmp\nweb2: /usr/bin/python3 web.py /tmp\n' > "$work/app-web-stack/Procfile"
printf 'spew: %s spew.py %s\n' "$APP_PY" "$LINES" > "$work/app-log/Procfile"
split() { # N → "web web2": at most 100 per process type (wharf's limit), the same for every tool
  local n=$1 a
  a=$((n < 100 ? n : 100))
  echo "$a $((n - a))"
}

# --- the peers ----------------------------------------------------------------------------------
"$PY" -c 'import honcho' 2>/dev/null || "$PY" -m pip install -q honcho >/dev/null 2>&1
npm install --prefix "$work/nf" --silent --no-audit --no-fund foreman >/dev/null 2>&1
NF=$work/nf/node_modules/foreman/nf.js
honcho_version=$("$PY" -m honcho --version 2>&1 | awk '{print $NF}')
nf_version=$(node -p "require('$work/nf/node_modules/foreman/package.json').version")

# start_tool TOOL web|log N OUT → the supervisor's pid (its own session and process group)
start_tool() {
  local tool=$1 app=$2 n=$3 out=$4 a b conc
  read -r a b <<<"$(split "$n")"
  case $tool/$app in
    honcho/web) setsid env -C "$work/app-web" "$PY" -m honcho start -p "$HONCHO_PORT" -c "web=$a,web2=$b" web web2 >"$out" 2>&1 </dev/null & ;;
    honcho/log) setsid env -C "$work/app-log" "$PY" -m honcho start spew >"$out" 2>&1 </dev/null & ;;
    nf/web)
      conc="web=$a"; [ "$b" -gt 0 ] && conc="$conc,web2=$b"
      setsid env -C "$work/app-web" node "$NF" -p "$NF_PORT" start "$conc" >"$out" 2>&1 </dev/null & ;;
    nf/log) setsid env -C "$work/app-log" node "$NF" start spew=1 >"$out" 2>&1 </dev/null & ;;
  esac
  started+=("$!")
  last_pid=$!
}

declare -A up_s mem_kib pss_kib helpers rss_one pss_one log_done log_lines log_dropped log_total log_rate
status_of() { # "ok EPOCH ..." → EPOCH - $2, or "timeout (k/N up)"
  local st t k u
  read -r st t k u <<<"$1"
  if [ "$st" = ok ]; then printf '%.2f' "$(echo "$t - $2" | bc)"; else echo "timeout($k/$3)"; fi
}
per_instance() { # rss_N rss_1 N → KiB per instance beyond the first
  echo "scale=1; ($1 - $2) / ($3 - 1)" | bc
}
measure_logs() { # TOOL START_EPOCH RESULT-OF-wait-lines
  local done count dropped first last
  read -r done count dropped first last <<<"$3"
  log_done[$1]=$done
  log_lines[$1]=$count
  log_dropped[$1]=$dropped
  if [ "$count" -gt 0 ]; then
    log_total[$1]=$(printf '%.2f' "$(echo "$last - $2" | bc)")
    log_rate[$1]=$(echo "scale=0; $count / ($last - $2)" | bc)
  else
    log_total[$1]=-; log_rate[$1]=0
  fi
}

peer() { # TOOL
  local tool=$1 n r st t0 m rss pss h pid
  for n in 1 $SIZES; do
    rm -f "$ports"/*
    t0=$(now)
    start_tool "$tool" web "$n" "$work/$tool-web-$n.out"
    pid=$last_pid
    r=$("$PY" "$HELP" wait-up "$ports" "$n" "$(phase_deadline)")
    sleep 1
    read -r rss pss h <<<"$("$PY" "$HELP" mem "$pid")"
    kill_tree "$pid"
    if [ "$n" = 1 ]; then
      rss_one[$tool]=$rss; pss_one[$tool]=$pss
    else
      up_s[$tool/$n]=$(status_of "$r" "$t0" "$n")
      mem_kib[$tool/$n]=$(per_instance "$rss" "${rss_one[$tool]}" "$n")
      pss_kib[$tool/$n]=$(per_instance "$pss" "${pss_one[$tool]}" "$n")
      helpers[$tool/$n]=$h
    fi
  done
  t0=$(now)
  start_tool "$tool" log 1 "$work/$tool-log.out"
  pid=$last_pid
  r=$("$PY" "$HELP" wait-lines "$work/$tool-log.out" " line " "$(phase_deadline)")
  kill_tree "$pid"
  measure_logs "$tool" "$t0" "$r"
}

# --- wharf ----------------------------------------------------------------------------------------
wharf_run() { # TOOL: wharf (no sandbox), wharf-ns (namespaces, the host's /usr) or wharf-stack (on wharf-trixie)
  local tool=$1 n r t0 a b rss pss h id until data app_web ports_arg
  export WHARF_CONFIG_DIR=$work/config-$tool
  data=$work/data-$tool
  local server_args=(--sandbox none --stack wharf-1)
  app_web=$work/app-web
  ports_arg=$ports
  if [ "$tool" = wharf-stack ]; then
    data=${STACK_DATA:-$data}
    server_args=(--sandbox namespaces --stack wharf-trixie)
  elif [ "$tool" = wharf-ns ]; then
    server_args=(--sandbox namespaces --stack wharf-1)
  fi
  if [ "$tool" != wharf ]; then
    app_web=$work/app-web-stack
    ports_arg=-
  fi
  # wharf makes a new data dir 0700; a root server without a sandbox runs apps as `nobody`, who
  # must reach the release trees under it, so the bench makes the dir itself, traversable.
  mkdir -p -m 711 "$data"
  setsid "$WHARF" server --data-dir "$data" --api-addr 127.0.0.1:0 "${server_args[@]}" \
    --port-range "$WHARF_PORTS" >"$work/server-$tool.log" 2>&1 </dev/null &
  server_pid=$!
  started+=("$server_pid")
  until=$(phase_deadline)
  while ! grep -q "listening on" "$work/server-$tool.log" 2>/dev/null; do
    [ "$(date +%s)" -ge "$until" ] && { echo "bench: wharf server did not start" >&2; cat "$work/server-$tool.log" >&2; exit 1; }
    sleep 0.05
  done
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/server-$tool.log" | head -n 1)
  "$WHARF" login --url "$url" --token-file "$data/admin-token" >"$work/login.out" 2>&1 \
    || { cat "$work/login.out" >&2; exit 1; }
  if [ "$tool" = wharf-stack ]; then
    # Made before anything is timed (once, with STACK_DATA); not counted.
    if ! "$WHARF" stacks --json | "$PY" -c 'import json,sys; sys.exit(not any(s["name"] == "wharf-trixie" and s["status"] == "ready" for s in json.load(sys.stdin)))'; then
      echo "bench: making wharf-trixie (not counted)" >&2
      "$WHARF" stacks build wharf-trixie >"$work/stack.out" 2>&1 \
        || { echo "bench: making wharf-trixie failed" >&2; tail -n 20 "$work/stack.out" >&2; exit 1; }
    fi
  fi
  "$WHARF" apps destroy -a bench-web --confirm bench-web >/dev/null 2>&1 || true
  "$WHARF" apps create bench-web >/dev/null
  "$WHARF" deploy "$app_web" -a bench-web >"$work/deploy-web.out" 2>&1 \
    || { echo "bench: deploy of bench-web failed" >&2; cat "$work/deploy-web.out" >&2; exit 1; }
  if [ "$tool" = wharf ]; then
    "$WHARF" apps create bench-log >/dev/null
    "$WHARF" deploy "$work/app-log" -a bench-log >"$work/deploy-log.out" 2>&1 \
      || { echo "bench: deploy of bench-log failed" >&2; cat "$work/deploy-log.out" >&2; exit 1; }
    "$WHARF" scale spew=0 -a bench-log >/dev/null
    wharf_gone bench-log
  fi
  for n in 1 $SIZES; do
    "$WHARF" scale web=0 web2=0 -a bench-web >/dev/null
    wharf_gone bench-web
    rm -f "$ports"/*
    read -r a b <<<"$(split "$n")"
    t0=$(now)
    "$WHARF" scale "web=$a" "web2=$b" -a bench-web >/dev/null
    r=$("$PY" "$HELP" wait-up "$ports_arg" "$n" "$(phase_deadline)" "$WHARF" ps -a bench-web --json)
    sleep 1
    read -r rss pss h <<<"$("$PY" "$HELP" mem "$server_pid")"
    if [ "$n" = 1 ]; then
      rss_one[$tool]=$rss; pss_one[$tool]=$pss
    else
      up_s[$tool/$n]=$(status_of "$r" "$t0" "$n")
      mem_kib[$tool/$n]=$(per_instance "$rss" "${rss_one[$tool]}" "$n")
      pss_kib[$tool/$n]=$(per_instance "$pss" "${pss_one[$tool]}" "$n")
      helpers[$tool/$n]=$h
    fi
  done
  "$WHARF" scale web=0 web2=0 -a bench-web >/dev/null
  wharf_gone bench-web
  if [ "$tool" = wharf ]; then
    id=$("$WHARF" apps info -a bench-log --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    t0=$(now)
    "$WHARF" scale spew=1 -a bench-log >/dev/null
    r=$("$PY" "$HELP" wait-lines "$data/logs/apps/$id/*.log" $'\tline ' "$(phase_deadline)")
    measure_logs wharf "$t0" "$r"
    "$WHARF" scale spew=0 -a bench-log >/dev/null
  fi
  kill_tree "$server_pid"
}
wharf_gone() { # APP: until its ps is empty
  local r
  r=$("$PY" "$HELP" wait-gone "$(phase_deadline)" "$WHARF" ps -a "$1" --json)
  [ "$r" = ok ] || { echo "bench: $1's processes did not stop" >&2; exit 1; }
}

wharf_run wharf
if [ "${STACK:-0}" = 1 ]; then
  wharf_run wharf-ns
  wharf_run wharf-stack
fi
peer honcho
peer nf
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)
# Every app command names $work; nothing may be left running once each tool was stopped.
if leftover=$(pgrep -a -f -- "$work/"); then echo "bench: still running: $leftover" >&2; exit 1; fi

# --- table ---------------------------------------------------------------------------------------
names=(wharf honcho nf)
[ "${STACK:-0}" = 1 ] && names=(wharf wharf-ns wharf-stack honcho nf)
declare -A label=([wharf]="wharf" [wharf-ns]="wharf in namespaces" [wharf-stack]="wharf on a stack" [honcho]="honcho $honcho_version" [nf]="foreman (nf) $nf_version")
echo
echo "wharf supervisor benchmark ($(nproc) cores, $(date -u +%Y-%m-%d), bench/supervisor.sh, SIZES=\"$SIZES\" LINES=$LINES)"
echo "load average at start: $load_at_start, at end: $load_at_end (other work on the machine shows here)"
echo
echo "Start-up: seconds from the start command until N web instances all accept connections on \$PORT"
printf '%-20s' "tool"; for n in $SIZES; do printf ' %16s' "N=$n"; done; echo
for t in "${names[@]}"; do
  printf '%-20s' "${label[$t]}"; for n in $SIZES; do printf ' %16s' "${up_s[$t/$n]}"; done; echo
done
echo
echo "Supervisor memory, KiB per instance beyond the first: RSS of the supervisor process;"
echo "PSS of it and its helper processes (honcho forks one per instance)"
printf '%-20s %10s' "tool" "RSS@1 KiB"; for n in $SIZES; do printf ' %10s %10s %8s' "RSS N=$n" "PSS N=$n" "helpers"; done; echo
for t in "${names[@]}"; do
  printf '%-20s %10s' "${label[$t]}" "${rss_one[$t]}"
  for n in $SIZES; do printf ' %10s %10s %8s' "${mem_kib[$t/$n]}" "${pss_kib[$t/$n]}" "${helpers[$t/$n]}"; done; echo
done
echo
echo "Logs: one process prints $LINES lines as fast as it can; seconds from the start command to the last line"
echo "stored; lines/s = stored / seconds; lost = $LINES - stored; notices = the count in wharf's overflow notices"
printf '%-20s %10s %10s %10s %10s %10s\n' "tool" "stored" "lost" "notices" "seconds" "lines/s"
for t in "${names[@]}"; do
  [ -n "${log_lines[$t]:-}" ] || continue # (logs are measured once, without the stack)
  printf '%-20s %10s %10s %10s %10s %10s\n' "${label[$t]}" "${log_lines[$t]}" "$((LINES - ${log_lines[$t]}))" \
    "${log_dropped[$t]}" "${log_total[$t]}" "${log_rate[$t]}"
  [ "${log_done[$t]}" = 1 ] || echo "  (${label[$t]}: the end marker never arrived; stopped at the deadline)"
done
