"""The counter's worker: counts a tick in Redis every second, so the web process can show that a
background process of the same release runs next to it."""

import os
import signal
import sys
import time

import redis

store = redis.Redis.from_url(os.environ["REDIS_URL"])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("worker started", flush=True)
while True:
    store.incr("counter:ticks")
    time.sleep(1)
