#!/usr/bin/env python3
"""A model server with exactly the contract of Allora's basic-coin-prediction-node, plus the
ground truth a reputer asks for. Standard library only.

  GET /inference/<token>         200, text/html, the prediction as a plain number, when
                                 token.upper() is the served token; 400 and
                                 {"error": "Token not supported"} otherwise (as app.py does)
  GET /truth/<token>/<unix s>    the price `--horizon` seconds after that time, once known;
                                 204 before

The "market" is a deterministic price curve p(t) (two sines around 2000), so every node and
every run sees the same truth; the model predicts the current price for `--horizon` seconds
ahead (a persistence forecast). With --log FILE every answer is appended as a JSON line
({"path", "value"}): tests compare it with what the network finalized.
"""

import argparse
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def price(t):
    """The market's price at Unix time t (seconds)."""
    return 2000.0 + 50.0 * math.sin(2 * math.pi * t / 3600.0) + 10.0 * math.sin(2 * math.pi * t / 300.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--token", default="ETH", help="the one token served (default ETH)")
    ap.add_argument("--horizon", type=float, default=60.0, help="seconds ahead predicted (default 60)")
    ap.add_argument("--log", help="append every answer to this file as a JSON line")
    args = ap.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status, body, content_type):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def record(self, value):
            if args.log:
                with lock, open(args.log, "a") as f:
                    f.write(json.dumps({"path": self.path, "value": value}) + "\n")

        def do_GET(self):
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) == 2 and parts[0] == "inference":
                if parts[1].upper() != args.token.upper():
                    return self.answer(400, '{"error": "Token not supported"}', "application/json")
                value = price(time.time())
                self.record(value)
                return self.answer(200, str(value), "text/html; charset=utf-8")
            if len(parts) == 3 and parts[0] == "truth" and parts[1].upper() == args.token.upper():
                try:
                    at = float(parts[2]) + args.horizon
                except ValueError:
                    return self.answer(400, '{"error": "bad time"}', "application/json")
                if at > time.time():
                    return self.answer(204, "", "text/plain")
                value = price(at)
                self.record(value)
                return self.answer(200, str(value), "text/plain")
            return self.answer(404, '{"error": "not found"}', "application/json")

        def log_message(self, fmt, *a):
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"model server on http://{args.host}:{server.server_port} serving {args.token}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
