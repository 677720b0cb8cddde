"""A web app configured by app.json: it shows the config vars app.json set, and counts the
health checks wharf makes on /health before sending it traffic."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

health_checks = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global health_checks
        if self.path == "/health":
            health_checks += 1
            body = b"ok\n"
        else:
            body = (
                f"GREETING={os.environ.get('GREETING')} "
                f"SECRET_KEY={len(os.environ.get('SECRET_KEY', ''))} chars "
                f"health checks={health_checks}\n"
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
