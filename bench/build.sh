#!/usr/bin/env bash
# Build-stage benchmark. In one run, on this machine:
#  1. packing and unpacking a source tree: wharf's deterministic archives (what `wharf deploy`
#     uploads and the server unpacks) against `tar | gzip` on the same tree;
#  2. cold and warm builds of small apps through a real `wharf server` (release build, apps on
#     the stack wharf-1, i.e. the host's /usr, unless step 3 sets another), next to
#     the plain tool doing the same install by hand (pip into a venv, npm ci), with the image
#     size against the source size;
#  3. the same apps on the stack wharf-trixie: the cold stack build (mmdebstrap, both images),
#     then each app's first build on it and its warm rebuild, with the whole image's size (run
#     image included). Needs bubblewrap and mmdebstrap (SKIP_STACK=1 leaves this part out);
#  4. real apps on that stack, examples/python-django (pip, collectstatic) and examples/node-vite
#     (Node.js 22 from the npm registry, npm ci, a Vite build, prune): cold (the server's first
#     build of them, its runtime cache empty, so Node.js is downloaded), warm (the same source
#     again) and a code-only change.
# Prints a table. Needs python3, node/npm and network access to PyPI and npm for the cold builds.
#
#   bench/build.sh            # default sizes
#   FILES=5000 bench/build.sh # a bigger tree for the archive part
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-3000}
RUNS=${RUNS:-3}

cargo build --release -q -p wharf
cargo build --release -q -p wharf-image --example archive
WHARF=$PWD/target/release/wharf
ARCHIVE=$PWD/target/release/examples/archive

work=$(mktemp -d /tmp/wharf-bench.XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
# Best of $RUNS runs of a command (after one warm-up run), in seconds.
best_of() {
  local best="" start end t
  "$@" >/dev/null 2>&1 || { echo "bench: '$*' failed" >&2; return 1; }
  for _ in $(seq "$RUNS"); do
    start=$(now); "$@" >/dev/null 2>&1; end=$(now)
    t=$(echo "$end - $start" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  echo "$best"
}
mib() { echo "scale=1; $1 / 1048576" | bc; }

# --- 1. archives -------------------------------------------------------------------------------
tree=$work/tree
python3 - "$tree" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
words = [("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))) for _ in range(2000)]
for i in range(n):
    d = os.path.join(root, f"pkg{i % 40}", f"mod{i % 7}")
    os.makedirs(d, exist_ok=True)
    size = rng.choice([200, 1000, 4000, 16000, 64000])
    text = []
    while sum(map(len, text)) < size:
        text.append(" ".join(rng.choice(words) for _ in range(12)) + "\n")
    with open(os.path.join(d, f"file{i}.py"), "w") as f:
        f.write("".join(text))
PY
tree_bytes=$(du -sb "$tree" | cut -f1)

pack_wharf() { rm -f "$work/w.tgz"; "$ARCHIVE" pack "$tree" "$work/w.tgz"; }
pack_tar() { tar -C "$tree" --sort=name -cf - . | gzip -6 > "$work/t.tgz"; }
unpack_wharf() { rm -rf "$work/wu"; "$ARCHIVE" unpack "$work/w.tgz" "$work/wu"; }
unpack_tar() { rm -rf "$work/tu"; mkdir "$work/tu"; tar -C "$work/tu" -xzf "$work/t.tgz"; }

t_pack_wharf=$(best_of pack_wharf)
t_pack_tar=$(best_of pack_tar)
t_unpack_wharf=$(best_of unpack_wharf)
t_unpack_tar=$(best_of unpack_tar)
w_size=$(stat -c %s "$work/w.tgz")
t_size=$(stat -c %s "$work/t.tgz")

# --- 2. builds ---------------------------------------------------------------------------------
apps=$work/apps
mkdir -p "$apps/static" "$apps/procfile" "$apps/python" "$apps/node"
printf '<!doctype html><h1>hello</h1>\n' > "$apps/static/index.html"
printf 'web: python3 -m http.server $PORT\n' > "$apps/procfile/Procfile"
printf 'print("hi")\n' > "$apps/procfile/app.py"
printf 'six==1.16.0\n' > "$apps/python/requirements.txt"
printf 'import six\nprint(six.__version__)\n' > "$apps/python/app.py"
printf 'web: python app.py\n' > "$apps/python/Procfile"
cat > "$apps/node/package.json" <<'JSON'
{"name": "bench-node", "version": "1.0.0", "main": "index.js", "dependencies": {"is-number": "7.0.0"}}
JSON
printf 'console.log(require("is-number")(3));\n' > "$apps/node/index.js"
(cd "$apps/node" && npm install --package-lock-only --silent >/dev/null 2>&1)

export WHARF_CONFIG_DIR=$work/config
"$WHARF" server --data-dir "$work/data" --api-addr 127.0.0.1:0 --stack wharf-1 2> "$work/server.log" &
server_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$work/server.log" 2>/dev/null && break; sleep 0.05; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/server.log" | head -n 1)
export WHARF_URL=$url
"$WHARF" login --token-file "$work/data/admin-token" >/dev/null 2>&1

image_size() { # the image's manifest digest → bytes of its config and layers
  python3 - "$work/data/images" "$1" <<'PY'
import json, os, sys
root, digest = sys.argv[1], sys.argv[2]
blob = lambda d: os.path.join(root, "blobs", *d.split(":"))
m = json.load(open(blob(digest)))
print(m["config"]["size"] + sum(l["size"] for l in m["layers"]))
PY
}
deploy_time() { # app dir → seconds for `wharf deploy`
  local start end
  start=$(now); "$WHARF" deploy "$2" -a "$1" >/dev/null 2>&1 || { echo "bench: deploy of $1 failed" >&2; return 1; }; end=$(now)
  echo "$end - $start" | bc
}
plain_time() { # what the build does, by hand, cold
  local dir=$work/plain-$1 start end
  rm -rf "$dir"; cp -r "$apps/$1" "$dir"
  start=$(now)
  case $1 in
    python) (cd "$dir" && python3 -m venv .venv && .venv/bin/pip install -q --no-cache-dir -r requirements.txt) >/dev/null 2>&1 ;;
    node) (cd "$dir" && npm ci --omit=dev --cache "$dir/.npm" --silent) >/dev/null 2>&1 ;;
    *) : ;;
  esac
  end=$(now)
  echo "$end - $start" | bc
}

rows=()
for app in static procfile python node; do
  "$WHARF" apps create "bench-$app" >/dev/null
  cold=$(deploy_time "bench-$app" "$apps/$app")
  warm=$(deploy_time "bench-$app" "$apps/$app")
  plain=$(plain_time "$app")
  digest=$("$WHARF" builds info -a "bench-$app" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["slug"]["id"])')
  src=$(du -sb "$apps/$app" | cut -f1)
  img=$(image_size "$digest")
  rows+=("$(printf '%-9s %9.2f %9.2f %12.2f %12s %12s' "$app" "$cold" "$warm" "$plain" "$src" "$img")")
done

# --- 3. on a stack ------------------------------------------------------------------------------
stack_rows=()
real_rows=()
stack_note=""
if [ "${SKIP_STACK:-0}" != 1 ]; then
  start=$(now)
  if "$WHARF" stacks build wharf-trixie >/dev/null 2>&1; then
    end=$(now)
    stack_cold=$(echo "$end - $start" | bc)
    run_size=$("$WHARF" stacks info wharf-trixie --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_image"]["size"])')
    build_size=$("$WHARF" stacks info wharf-trixie --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["build_image"]["size"])')
    stack_note=$(printf 'stack wharf-trixie made in %.1f s; run image %s MiB, build image %s MiB (compressed)' "$stack_cold" "$(mib "$run_size")" "$(mib "$build_size")")
    for app in static procfile python node; do
      "$WHARF" apps create "stack-$app" >/dev/null
      "$WHARF" stack:set wharf-trixie -a "stack-$app" >/dev/null
      first=$(deploy_time "stack-$app" "$apps/$app")
      warm=$(deploy_time "stack-$app" "$apps/$app")
      digest=$("$WHARF" builds info -a "stack-$app" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["slug"]["id"])')
      img=$(image_size "$digest")
      stack_rows+=("$(printf '%-9s %9.2f %9.2f %12s' "$app" "$first" "$warm" "$img")")
    done
    # --- 4. real apps on the stack ---
    for example in python-django node-vite; do
      src=$work/real-$example
      cp -r "examples/$example" "$src"
      "$WHARF" apps create "real-$example" >/dev/null
      "$WHARF" stack:set wharf-trixie -a "real-$example" >/dev/null
      cold=$(deploy_time "real-$example" "$src")
      warm=$(deploy_time "real-$example" "$src")
      case $example in
        python-django) echo "# changed $(now)" >> "$src/hello/views.py" ;;
        node-vite) echo "// changed $(now)" >> "$src/src/main.js" ;;
      esac
      code=$(deploy_time "real-$example" "$src")
      digest=$("$WHARF" builds info -a "real-$example" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["slug"]["id"])')
      runtime=$("$WHARF" builds info -a "real-$example" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["runtime"])')
      img=$(image_size "$digest")
      real_rows+=("$(printf '%-14s %-13s %9.2f %9.2f %11.2f %12s' "$example" "$runtime" "$cold" "$warm" "$code" "$img")")
    done
  else
    stack_note="the stack could not be made here (bubblewrap and mmdebstrap are needed): $("$WHARF" stacks info wharf-trixie 2>&1 | tail -n 1)"
  fi
fi

# --- table ---------------------------------------------------------------------------------------
echo
echo "wharf build-stage benchmark ($(nproc) cores, $(date -u +%Y-%m-%d), bench/build.sh, best of $RUNS for archives)"
echo
echo "Archives: a generated tree of $FILES files, $(mib "$tree_bytes") MiB"
printf '%-22s %10s %12s %12s\n' "" "seconds" "MiB/s" "archive MiB"
printf '%-22s %10.3f %12.1f %12s\n' "wharf pack" "$t_pack_wharf" "$(echo "$tree_bytes / 1048576 / $t_pack_wharf" | bc -l)" "$(mib "$w_size")"
printf '%-22s %10.3f %12.1f %12s\n' "tar --sort | gzip -6" "$t_pack_tar" "$(echo "$tree_bytes / 1048576 / $t_pack_tar" | bc -l)" "$(mib "$t_size")"
printf '%-22s %10.3f %12.1f %12s\n' "wharf unpack (checked)" "$t_unpack_wharf" "$(echo "$tree_bytes / 1048576 / $t_unpack_wharf" | bc -l)" ""
printf '%-22s %10.3f %12.1f %12s\n' "tar -xzf" "$t_unpack_tar" "$(echo "$tree_bytes / 1048576 / $t_unpack_tar" | bc -l)" ""
echo
echo "Builds through wharf deploy (pack, upload, build, image, release), seconds; plain = the install by hand"
printf '%-9s %9s %9s %12s %12s %12s\n' "app" "cold" "warm" "plain cold" "source B" "image B"
for row in "${rows[@]}"; do echo "$row"; done
if [ -n "$stack_note" ]; then
  echo
  echo "On a stack: $stack_note; seconds, image B = the whole image (run image included)"
  printf '%-9s %9s %9s %12s\n' "app" "first" "warm" "image B"
  for row in "${stack_rows[@]}"; do echo "$row"; done
  echo
  echo "Real apps on wharf-trixie (examples/), seconds for wharf deploy; code = a code-only change"
  printf '%-14s %-13s %9s %9s %11s %12s\n' "app" "runtime" "cold" "warm" "code" "image B"
  for row in "${real_rows[@]}"; do echo "$row"; done
fi
