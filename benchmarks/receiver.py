"""A customer's webhook receiver for the benchmarks: answers 200 at once and writes each arrival
as a line, the webhook-id and the time.

It runs in a process of its own, as a customer's would: in the benchmark's it would share an
interpreter lock with the producer's threads and answer late.
"""

import subprocess
import sys
from pathlib import Path

from shared import embedded_redis

SERVER = """
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[1], "a", buffering=1)
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection open between requests, as servers do
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        out.write(f"{self.headers['webhook-id']} {time.time()}\\n")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
server.daemon_threads = True
server.serve_forever()
"""


class Receiver:
    def __init__(self, folder: Path) -> None:
        self.log = folder / "arrivals"
        self.log.touch()
        port = embedded_redis.free_port()
        self.url = f"http://127.0.0.1:{port}/"
        self.process = subprocess.Popen([sys.executable, "-c", SERVER, str(self.log), str(port)])

    def arrivals(self) -> dict[str, list[float]]:
        """Each event's arrival times (more than one if it came again)."""
        found: dict[str, list[float]] = {}
        for line in self.log.read_text().splitlines():
            event_id, at = line.split()
            found.setdefault(event_id, []).append(float(at))
        return found

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
