"""The counter's web process. Every request counts a hit in Redis (REDIS_URL, from the app's
config): the count survives restarts, scaling and redeploys, because the state lives in a backing
service. Each request also counts in a file the process writes locally, which shows what a
process keeps across a restart: nothing, since every start begins with an empty scratch
directory."""

import json
import os

import redis

store = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
LOCAL = os.path.join(os.environ.get("HOME", "/tmp"), "hits.local")


def local_hits():
    try:
        with open(LOCAL) as f:
            return int(f.read() or "0")
    except FileNotFoundError:
        return 0


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/favicon.ico":
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    hits = store.incr("counter:hits")
    local = local_hits() + 1
    with open(LOCAL, "w") as f:
        f.write(str(local))
    body = json.dumps(
        {
            "hits": hits,
            "local_hits": local,
            "worker_ticks": int(store.get("counter:ticks") or 0),
            "schema": store.get("counter:schema"),
            "dyno": os.environ.get("DYNO"),
            "release": os.environ.get("WHARF_RELEASE_VERSION"),
        }
    ).encode() + b"\n"
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
