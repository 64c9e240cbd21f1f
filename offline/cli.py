"""`python -m offline`: run a synthesized stage on this machine (what `make dev` runs).

Reads the stage from a cloud assembly (`cdk.out`), prints what it emulates and what it
does not, then the page's address and the WebSocket URL, each on its own line, then one
log line per connection, reply and error. Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from offline.cloud import OfflineCloud
from offline.gateway import GatewayLimits
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
    defaults = GatewayLimits()
    parser.add_argument(
        "--idle-timeout-seconds",
        type=float,
        default=defaults.idle_timeout_seconds,
        help="close a connection this long without a message (API Gateway: 600)",
    )
    parser.add_argument(
        "--max-connection-seconds",
        type=float,
        default=defaults.max_connection_seconds,
        help="close every connection at this age (API Gateway: 7200), to try resuming",
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


class ReplyLog:
    """One console line per reply or error a client is sent.

    It reads the frames as JSON with a `type` (`delta`, `done` with `usage` and `timing`,
    `error` with `code`): the console's view of the app's protocol, not the gateway's.
    """

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._deltas: dict[str, int] = {}

    def __call__(self, connection_id: str, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        kind = message.get("type") if isinstance(message, dict) else None
        short = connection_id[:8]
        if kind == "delta":
            self._deltas[connection_id] = self._deltas.get(connection_id, 0) + 1
        elif kind == "done":
            usage, timing = message.get("usage") or {}, message.get("timing") or {}
            self._log.info(
                "reply    %s  %s, %s tokens in %d deltas, ttft %s ms, %s tokens/s, init %s ms",
                short,
                message.get("reason"),
                usage.get("completion_tokens"),
                self._deltas.pop(connection_id, 0),
                timing.get("ttft_ms"),
                timing.get("tokens_per_s"),
                timing.get("init_ms"),
            )
        elif kind == "error":
            self._deltas.pop(connection_id, None)
            self._log.info(
                "error    %s  %s: %s", short, message.get("code"), message.get("message")
            )


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
        limits=GatewayLimits(
            idle_timeout_seconds=args.idle_timeout_seconds,
            max_connection_seconds=args.max_connection_seconds,
        ),
        enforce_iam=not args.no_iam,
        on_frame=ReplyLog(log),
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cloud.start()
    for line in cloud.describe():
        log.info("%s", line)
    print(cloud.http_url, flush=True)
    print(cloud.ws_url, flush=True)
    for url in cloud.function_urls.values():
        print(url, flush=True)
    if cloud.function_urls:
        # Operator tools that write the stage's items (an API key) reach its DynamoDB here.
        log.info(
            "DynamoDB for operator tools: --endpoint-url %s --region %s (a table above)",
            cloud.moto_url,
            cloud.region,
        )
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
