"""Seeds a fresh wharf server for scripts/api-fuzz and writes the schemathesis config for it.

Schemathesis can't guess app names, ids or signed URLs, so this makes real objects over the API
(apps with config vars and domains, a deployed app with releases and a build, spare tokens, a
source waiting for its upload, a log session) and binds the path and query parameters of the
OpenAPI document to them. Usage: seed.py URL TOKEN CONFIG_OUT (appended to). Prints the ids hooks.py needs as KEY=VALUE.
"""

import io
import json
import sys
import tarfile
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

URL, TOKEN, CONFIG_OUT = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]

# The deployed app runs cheap processes only: the fuzzer may scale a type to 100 instances.
PROCFILE = "worker: exec sleep 86400\nrelease: echo release phase ran\n"


def call(method, path, body=None, *, data=None, content_type=None, auth=True, expect=(200, 201)):
    url = path if path.startswith("http") else URL + path
    headers = {"Accept": "application/vnd.heroku+json; version=3"}
    if auth:
        headers["Authorization"] = f"Bearer {TOKEN}"
    if body is not None:
        data = json.dumps(body).encode()
        content_type = "application/json"
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if status not in expect:
        sys.exit(f"seed: {method} {path} answered {status}: {text[:500]!r}")
    return json.loads(text) if text else None


def signed(url, path_parameters):
    """A signed URL's parameters: path parameters (name → which segment) and its query."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    query = parse_qs(parts.query)
    bound = {f"path.{name}": segments[index] for name, index in path_parameters.items()}
    bound.update({f"query.{name}": query[name][0] for name in ("expires", "signature")})
    return bound


def source_archive():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = PROCFILE.encode()
        info = tarfile.TarInfo("Procfile")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wait_for(what, check, deadline=120):
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > end:
            sys.exit(f"seed: {what} did not happen within {deadline}s")
        time.sleep(0.2)


def main():
    admin_id = call("GET", "/oauth/authorizations")[0]["id"]
    email = call("GET", "/account")["email"]
    spare_tokens = [
        call("POST", "/oauth/authorizations", {"description": f"api-fuzz spare {n}"})["id"]
        for n in range(3)
    ]

    app = call("POST", "/apps", {"name": "fuzz-app"})
    other = call("POST", "/apps", {"name": "fuzz-other"})
    doomed = [call("POST", "/apps", {"name": f"fuzz-doomed-{n}"})["name"] for n in range(3)]
    call("PATCH", f"/apps/{app['id']}/config-vars", {"GREETING": "hello", "EMPTY": ""})
    call("PATCH", f"/apps/{other['id']}/config-vars", {"DATABASE_URL": "postgres://db.invalid/x"})
    domain = call("POST", f"/apps/{app['id']}/domains", {"hostname": "www.fuzz-app.test"})
    call("POST", f"/apps/{other['id']}/domains", {"hostname": "fuzz-other.test"})

    # Deploy fuzz-app: upload a source, build it, wait for its release.
    archive = source_archive()
    source = call("POST", "/sources")["source_blob"]
    uploaded = call("PUT", source["put_url"], data=archive, content_type="application/gzip", auth=False)
    build = call("POST", f"/apps/{app['id']}/builds", {"source_blob": {"url": source["get_url"]}})
    def build_ended():
        ended = call("GET", f"/apps/{app['id']}/builds/{build['id']}")
        return ended if ended["status"] != "pending" else None

    build = wait_for("the seed build", build_ended)
    if build["status"] != "succeeded":
        sys.exit(f"seed: the seed build failed: {build.get('error')}")

    def current_release():
        releases = call("GET", f"/apps/{app['id']}/releases")
        latest = releases[-1]
        return latest if latest["status"] == "succeeded" and latest["current"] else None

    wait_for("the seed release", current_release)
    # One more release after the deploy, so there is something to roll back to.
    call("PATCH", f"/apps/{app['id']}/config-vars", {"GREETING": "hello again"})
    release = wait_for("the config release", current_release)
    # One instance running, so the dyno routes have one to find, restart and stop.
    call("PATCH", f"/apps/{app['id']}/formation/worker", {"quantity": 1})
    releases = call("GET", f"/apps/{app['id']}/releases")
    with_output = next(r for r in releases if r.get("output_stream_url"))

    # A source waiting for its archive, for the fuzzer's uploads.
    waiting = call("POST", "/sources")["source_blob"]
    session = call("POST", f"/apps/{app['id']}/log-sessions", {"lines": 10})

    apps = [app["id"], other["id"], app["name"], other["name"]]
    versions = [str(r["version"]) for r in releases]
    values = {
        "apps": apps,
        "doomed": doomed,
        "tokens": spare_tokens + [admin_id],
        "spare_tokens": spare_tokens,
        "releases": versions + [f"v{v}" for v in versions] + [r["id"] for r in releases],
        "builds": [build["id"]],
        "domains": [domain["id"], domain["hostname"], f"{app['name']}.localhost", app["id"]],
        "types": ["worker", "release", "web"],
        "dynos": ["worker.1", f"{app['id']}.worker.1", "worker", "run.1"],
        "sizes": ["standard-1x", "standard-2x", "performance-m", "256M", "1G"],
        "users": ["~", email],
        "repos": [f"{app['name']}.git", f"{other['name']}.git"],
        "checksums": [uploaded["checksum"]],
        "slugs": [release["slug"]["id"]],
        "hostnames": ["www.fuzz-app.test", "fuzz-other.test", "new.fuzz.test"],
    }

    def dictionaries():
        for name, entries in values.items():
            yield f"[dictionaries.{name}]\nvalues = {json.dumps(entries)}\n"

    def bind(key, dictionary, probability=0.8):
        return f'"{key}" = {{ dictionary = "{dictionary}", probability = {probability} }}'

    def fixed(pairs):
        return "{ " + ", ".join(f'"{k}" = {json.dumps(v)}' for k, v in pairs.items()) + " }"

    # The signed routes' path and query parameters, fixed to a URL the server handed out: a
    # generated signature only ever gets 403.
    signed_ops = {
        "PUT /sources/{id}/blob": signed(waiting["put_url"], {"id": 2}),
        "GET /sources/{id}/blob": signed(source["get_url"], {"id": 2}),
        "GET /builds/{id}/output": signed(build["output_stream_url"], {"id": 2}),
        "GET /releases/{id}/output": signed(with_output["output_stream_url"], {"id": 2}),
        "GET /apps/{app_id}/log-stream/{session}": signed(
            session["logplex_url"], {"app_id": 2, "session": 4}
        ),
    }

    lines = ["# Written by scripts/api-fuzz.d/seed.py for one run; see scripts/api-fuzz.", ""]
    lines.append("[parameters]")
    lines += [
        bind("path.app", "apps"),
        bind("path.release", "releases"),
        bind("path.from", "releases"),
        bind("path.to", "releases"),
        bind("path.build", "builds"),
        bind("path.domain", "domains"),
        bind("path.type", "types"),
        bind("path.dyno", "dynos"),
        bind("path.user", "users"),
        bind("path.repo", "repos"),
        bind("body.source_blob.checksum", "checksums", 0.5),
        bind("body.slug", "slugs", 0.5),
        bind("body.release", "releases", 0.5),
        bind("body.hostname", "hostnames", 0.3),
        bind("body.updates[*].type", "types", 0.7),
        bind("body.updates[*].size", "sizes", 0.5),
        bind("body.size", "sizes", 0.5),
        "",
    ]
    lines += list(dictionaries())
    # Destroying the apps every other operation works on would leave the rest of the run 404s
    # (hooks.py also keeps them from links and mutations).
    lines += [
        "",
        "[[operations]]",
        'include-name = "DELETE /apps/{app}"',
        "parameters = { " + bind("path.app", "doomed", 0.7) + " }",
        "",
        "[[operations]]",
        'include-name = ["GET /oauth/authorizations/{id}"]',
        "parameters = { " + bind("path.id", "tokens") + " }",
        "",
        # The run's own token is also kept by hooks.py, whatever a link or a mutation picks.
        "[[operations]]",
        'include-name = ["DELETE /oauth/authorizations/{id}"]',
        "parameters = { " + bind("path.id", "spare_tokens") + " }",
    ]
    for name, params in signed_ops.items():
        lines += ["", "[[operations]]", f'include-name = "{name}"', f"parameters = {fixed(params)}"]
    with open(CONFIG_OUT, "a") as out:
        out.write("\n".join(lines) + "\n")
    print(
        f"api-fuzz: seeded apps {app['name']} (deployed, v{release['version']}), {other['name']}, "
        f"{len(doomed)} to destroy; {len(spare_tokens)} spare tokens; build {build['id']}",
        file=sys.stderr,
    )
    # For the hooks (hooks.py): the run's own token, and a spare to revoke instead.
    print(f"WHARF_FUZZ_ADMIN_TOKEN_ID={admin_id}")
    print(f"WHARF_FUZZ_SPARE_TOKEN_ID={spare_tokens[0]}")
    # And the apps every other operation works on, kept to the end; a doomed one goes instead.
    print(f"WHARF_FUZZ_KEPT_APPS={','.join(apps)}")
    print(f"WHARF_FUZZ_DOOMED_APP={doomed[0]}")


main()
