"""Benchmark: a reading committed to its signed webhook received, p50/p95.

In a throwaway PostgreSQL database: ``exhale serve`` and ``exhale worker`` run as real processes;
a local HTTP receiver is the stop-smoking service's destination and checks each webhook's
Standard Webhooks signature. Readings that refer are posted one at a time, at ``--rate`` per
second; each one's latency runs from the moment its POST answered 201 (the transaction had
committed) to the moment the receiver got its ``referral.created`` webhook. The worker wakes on
PostgreSQL's NOTIFY (``referral/delivery/jobs.py``); polling stays as its fallback.

    python bench/bench_delivery.py [--quick] [--readings 200] [--rate 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
from standardwebhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from bench_ingest import body

P95_TARGET_S = 1.0


class Receiver(BaseHTTPRequestHandler):
    """Records when each referral's first webhook arrived; refuses a bad signature (401)."""

    secret: ClassVar[str] = ""
    received: ClassVar[dict[int, float]] = {}
    bad: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        arrived = time.perf_counter()
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            payload: Any = Webhook(self.secret).verify(raw, dict(self.headers.items()))
        except Exception as error:
            self.bad.append(type(error).__name__)
            self.send_response(401)
            self.end_headers()
            return
        referral_id = int(payload["data"]["referral_id"])
        self.received.setdefault(referral_id, arrived)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def run(args: argparse.Namespace) -> dict[str, float]:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks"
    women = common.synthetic_nhs_numbers(random.randrange(0, 50_000_000))
    committed: dict[int, float] = {}
    with common.throwaway_database() as url:
        world = common.seed(url)
        Receiver.secret = common.seed_destination(url, service_id=world.service_id, target=target)
        print(f"machine: {common.machine(url)}")
        worker = common.ExhaleProcess("worker", ["worker"], common.exhale_env(url))
        try:
            with (
                common.web_server(url, workers=1) as (base, _web),
                httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {world.api_key}"}
                ) as client,
            ):
                time.sleep(1.0)  # the worker's listener is connected
                started = time.perf_counter()
                for n in range(args.readings):
                    time.sleep(max(0.0, started + n / args.rate - time.perf_counter()))
                    now = dt.datetime.now(dt.UTC)
                    answer = client.post("/api/v1/readings", json=body(next(women), now))
                    done = time.perf_counter()
                    assert answer.status_code == 201, answer.text
                    committed[answer.json()["referral"]["id"]] = done
                deadline = time.perf_counter() + 30
                while len(Receiver.received) < len(committed) and time.perf_counter() < deadline:
                    time.sleep(0.05)
        finally:
            worker.stop()
    receiver.shutdown()
    latencies = [Receiver.received[r] - t for r, t in committed.items() if r in Receiver.received]
    missing = len(committed) - len(latencies)
    p95 = common.percentile(latencies, 95)
    print(
        f"delivery reading committed -> signed webhook received, {args.readings} readings at "
        f"{args.rate:.0f}/s: {common.summary_ms(latencies)} "
        f"(target p95 <= {P95_TARGET_S * 1000:.0f} ms)"
    )
    if missing or Receiver.bad:
        print(f"WARNING  {missing} webhooks not received in 30 s; bad signatures: {Receiver.bad}")
    return {"p50_ms": common.percentile(latencies, 50) * 1000, "p95_ms": p95 * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, for development")
    parser.add_argument("--readings", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    if args.quick:
        args.readings = 40
    run(args)


if __name__ == "__main__":
    main()
