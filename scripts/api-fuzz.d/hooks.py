"""Schemathesis hooks for scripts/api-fuzz.

- Source archives and git's request bodies are bytes: send what was generated as bytes.
- The run's own token must outlive the run: a DELETE of it (a link from a token list can pick
  it, and so can a mutation) is sent for a spare token instead, so one revocation can't turn the
  rest of the run into 401s. Revoking the token a request carries is allowed and tested in
  crates/wharf-server/tests/it/tokens.rs.
- Likewise the seeded apps that path parameters are bound to: destroying one is sent for a
  doomed app instead (apps the run creates itself are destroyed for real).
- An attached one-off (`POST /apps/{app}/run`) answers as its process runs, until it ends, as
  `heroku run` does. The fuzzer borrows commands from other responses (the seeded worker's
  `exec sleep 86400`), and its read timeout would take such a run for a hang: commands it sends
  there run under `timeout 10`. Empty commands and commands with a NUL are sent as they are, so
  their refusals are still tested.
"""

import os
import shlex

import schemathesis

ADMIN_TOKEN_ID = os.environ["WHARF_FUZZ_ADMIN_TOKEN_ID"]
SPARE_TOKEN_ID = os.environ["WHARF_FUZZ_SPARE_TOKEN_ID"]
KEPT_APPS = set(os.environ["WHARF_FUZZ_KEPT_APPS"].split(","))
DOOMED_APP = os.environ["WHARF_FUZZ_DOOMED_APP"]


schemathesis.serializer.alias(
    [
        "application/gzip",
        "application/x-git-receive-pack-request",
        "application/x-git-upload-pack-request",
    ],
    "application/octet-stream",
)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    bound_attached_runs(case)
    keep_seeded(case)


def keep_seeded(case):
    if case.operation.method.upper() != "DELETE" or not case.path_parameters:
        return
    if (
        case.operation.path == "/oauth/authorizations/{id}"
        and case.path_parameters.get("id") == ADMIN_TOKEN_ID
    ):
        case.path_parameters["id"] = SPARE_TOKEN_ID
    if case.operation.path == "/apps/{app}" and case.path_parameters.get("app") in KEPT_APPS:
        case.path_parameters["app"] = DOOMED_APP


RUN_PATH = "/apps/{app}/run"


def bound_attached_runs(case):
    if case.operation.method.upper() != "POST" or case.operation.path != RUN_PATH:
        return
    query = case.query if isinstance(case.query, dict) else None
    command = query.get("command") if query else None
    if isinstance(command, str) and command.strip() and "\x00" not in command:
        query["command"] = "timeout 10 sh -c " + shlex.quote(command)
