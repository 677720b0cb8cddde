"""A WSGI app: answers every request with a greeting, the process that served it and the
release it belongs to. gunicorn serves it (see the Procfile)."""

import os


def app(environ, start_response):
    body = "Hello from python-web! (served by {} of release v{}, greeting: {})\n".format(
        os.environ.get("DYNO", "?"),
        os.environ.get("WHARF_RELEASE_VERSION", "?"),
        os.environ.get("GREETING", "none set"),
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
