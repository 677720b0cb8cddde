"""The counter's release phase: runs once before each release goes live, with that release's
config. Here it "migrates" the data: records the schema version the release expects."""

import os

import redis

SCHEMA = "2"
store = redis.Redis.from_url(os.environ["REDIS_URL"])
before = store.get("counter:schema")
store.set("counter:schema", SCHEMA)
print(f"schema {before.decode() if before else 'none'} -> {SCHEMA}", flush=True)
