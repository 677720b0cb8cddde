"""Schemathesis hooks for scripts/api-fuzz.

- Source archives and git's request bodies are bytes: send what was generated as bytes.
- The run's own token must outlive the run: a DELETE of it (a link from a token list can pick
  it, and so can a mutation) is sent for a spare token instead, so one revocation can't turn the
  rest of the run into 401s. Revoking the token a request carries is allowed and tested in
  crates/wharf-server/tests/it/tokens.rs.
- Likewise the seeded apps that path parameters are bound to: destroying one is sent for a
  doomed app instead (apps the run creates itself are destroyed for real).
"""

import os

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
    if case.operation.method.upper() != "DELETE" or not case.path_parameters:
        return
    if (
        case.operation.path == "/oauth/authorizations/{id}"
        and case.path_parameters.get("id") == ADMIN_TOKEN_ID
    ):
        case.path_parameters["id"] = SPARE_TOKEN_ID
    if case.operation.path == "/apps/{app}" and case.path_parameters.get("app") in KEPT_APPS:
        case.path_parameters["app"] = DOOMED_APP
