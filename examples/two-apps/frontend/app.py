"""The frontend app: calls the api app at API_URL (from its config, like any backing service)
and shows what it said. Names under `.localhost` are loopback (RFC 6761), so they are reached at
127.0.0.1 with the name in the Host header: wharf's router sends them to the app."""

import json
import os
import urllib.parse
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def call_api():
    url = urllib.parse.urlsplit(os.environ["API_URL"])
    host = url.hostname
    connect_to = "127.0.0.1" if host == "localhost" or host.endswith(".localhost") else host
    conn = HTTPConnection(connect_to, url.port or 80, timeout=10)
    conn.request("GET", url.path or "/", headers={"Host": url.netloc})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            status, answer = call_api()
            text = f"frontend: the api answered {status}: {answer['message']}\n"
            code = 200
        except Exception as e:  # the backing service is down: say so
            text, code = f"frontend: cannot reach the api at {os.environ.get('API_URL')}: {e}\n", 502
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
