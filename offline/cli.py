"""`python -m offline`: run a synthesized stage on this machine (what `make dev` runs).

Reads the stage from a cloud assembly (`cdk.out`), prints what it emulates and what it
does not, then the page's address and the WebSocket URL, each on its own line, then one
log line per connection, reply and error. Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from offline.cloud import OfflineCloud
from offline.template import StageAssembly


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m offline",
        description="Run a synthesized CDK stage locally: its WebSocket API, functions, "
        "tables, secrets and IAM, read from the templates.",
    )
    parser.add_argument("--assembly", type=Path, default=Path("cdk.out"), help="cdk.out folder")
    parser.add_argument("--stage", help="the stage's id (default: the assembly's only stage)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "8787")), help="0 picks a free one"
    )
    parser.add_argument(
        "--post-latency-ms",
        type=float,
        default=0,
        help="added to every @connections call, to see streaming at cloud latency",
    )
    parser.add_argument(
        "--env",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add a variable to every function's environment (a local knob)",
    )
    parser.add_argument(
        "--secret",
        type=_pair,
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="a secret's value instead of the template's (construct path or logical id)",
    )
    parser.add_argument(
        "--no-iam", action="store_true", help="do not enforce the roles' policies (debugging)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="also show every function's own log output"
    )
    args = parser.parse_args(argv)
    if args.stage is None:
        stages = StageAssembly.stages(args.assembly)
        if len(stages) != 1:
            parser.error(f"--stage is needed: {args.assembly} has {', '.join(stages) or 'none'}")
        args.stage = stages[0]
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s.%(msecs)03d %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("offline.function").setLevel(
        logging.DEBUG if args.verbose else logging.WARNING
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    log = logging.getLogger("offline")
    cloud = OfflineCloud(
        assembly=args.assembly,
        stage=args.stage,
        host=args.host,
        port=args.port,
        environment=dict(args.env),
        secrets=dict(args.secret),
        post_latency_ms=args.post_latency_ms,
        enforce_iam=not args.no_iam,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cloud.start()
    for line in cloud.describe():
        log.info("%s", line)
    print(cloud.http_url, flush=True)
    print(cloud.ws_url, flush=True)
    log.info("ready in %.1f s", time.monotonic() - started)
    if args.post_latency_ms:
        log.info("@connections latency %g ms", args.post_latency_ms)
    try:
        while not stop.wait(1):
            pass
    finally:
        log.info("stopping")
        cloud.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
