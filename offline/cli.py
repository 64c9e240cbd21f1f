"""`python -m offline`: the whole chat on one machine (what `make dev` runs).

Prints the web client's address and the WebSocket URL, each on its own line, then one
log line per connection, reply and error. Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from infra.config import DEV, STAGES
from offline.cloud import OfflineCloud
from offline.default_model import default_model_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m offline",
        description="Run the chat locally on a twin of API Gateway, Lambda and DynamoDB.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "8787")), help="0 picks a free one"
    )
    parser.add_argument("--engine", choices=("llamacpp", "picollm"), default="llamacpp")
    parser.add_argument(
        "--model",
        help="model file: a GGUF for llamacpp (default: SmolLM2-135M), a .pllm for picollm",
    )
    parser.add_argument(
        "--post-latency-ms",
        type=float,
        default=0,
        help="added to every @connections call, to see streaming at cloud latency",
    )
    parser.add_argument("--stage", choices=sorted(STAGES), default=DEV.stage_name)
    parser.add_argument("--token", help="the $connect token (default: a random one)")
    parser.add_argument(
        "--threads", type=int, default=1, help="llama.cpp threads per inference instance"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="also show every function's own log output"
    )
    args = parser.parse_args(argv)
    if args.engine == "picollm" and not args.model:
        parser.error("--engine picollm needs --model PATH to a .pllm file")
    if args.engine == "picollm" and not os.environ.get("PICOVOICE_ACCESS_KEY"):
        parser.error("--engine picollm needs your AccessKey in PICOVOICE_ACCESS_KEY")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s.%(msecs)03d %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("offline.function").setLevel(
        logging.DEBUG if args.verbose else logging.WARNING
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    model = args.model or str(default_model_path())
    cloud = OfflineCloud(
        host=args.host,
        port=args.port,
        config=STAGES[args.stage],
        engine=args.engine,
        model_path=model,
        access_key=os.environ.get("PICOVOICE_ACCESS_KEY") if args.engine == "picollm" else None,
        post_latency_ms=args.post_latency_ms,
        token=args.token,
        llama_threads=args.threads,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cloud.start()
    print(cloud.http_url, flush=True)
    print(cloud.ws_url, flush=True)
    logging.getLogger("offline").info(
        "stage %s, engine %s, model %s%s",
        args.stage,
        args.engine,
        model,
        f", @connections latency {args.post_latency_ms:g} ms" if args.post_latency_ms else "",
    )
    if cloud.config.require_token:
        print(f"token: append ?token={cloud.token} to the WebSocket URL", flush=True)
    try:
        while not stop.wait(1):
            pass
    finally:
        logging.getLogger("offline").info("stopping")
        cloud.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
