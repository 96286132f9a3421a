"""Errors reach Sentry without personal data: a real SDK sends to a collector on loopback, and what arrives
is read back."""

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import sentry_sdk

from core.error_reports import start


class Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 (the standard library's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":
            import brotli

            body = brotli.decompress(body)
        Collector.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Collector.received = []
    yield f"http://public@127.0.0.1:{server.server_port}/1"
    sentry_sdk.init()  # no DSN: reporting off again for the other tests
    server.shutdown()


def test_an_error_report_carries_the_error_but_not_the_members_data(collector):
    start(collector, environment="test")
    # Built at run time, so that only a leak (not the source lines shown with a frame) could carry them.
    email, name = "ada" + "@example.test", " ".join(["Ada", "Lovelace"])
    with sentry_sdk.new_scope() as scope:
        scope.set_context("request", {"email": email, "full_name": name, "state": "sent"})
        scope.set_extra("member", {"postal_address": "1 High St", "reference": "M-1"})
        try:
            raise ValueError("could not render request R-1")
        except ValueError as error:
            sentry_sdk.capture_exception(error)
    sentry_sdk.flush(timeout=5)
    sent = b"".join(Collector.received).decode()
    event = next(json.loads(line) for line in sent.splitlines() if '"exception"' in line)
    for frame in event["exception"]["values"][0]["stacktrace"]["frames"]:
        assert "vars" not in frame  # no local variables
        for source in ("pre_context", "context_line", "post_context"):
            frame.pop(source, None)  # the lines of this file, not data
    report = json.dumps(event)
    assert "could not render request R-1" in report and event["environment"] == "test"
    assert "ada@example.test" not in report and "Ada Lovelace" not in report and "1 High St" not in report
    assert event["contexts"]["request"]["state"] == "sent" and event["extra"]["member"]["reference"] == "M-1"
