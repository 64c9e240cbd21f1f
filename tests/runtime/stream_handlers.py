"""Handlers the runtime loop tests run in a real process under the Runtime API."""

from __future__ import annotations

import json
import time
from pathlib import Path

from llambda.runtime_loop import ClientGone


def buffered(event, context):
    if event.get("raise"):
        raise ValueError("boom")
    return {
        "echo": event,
        "requestId": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "timeLeft": context.get_remaining_time_in_millis() > 0,
    }


def stream(event, context, stream):
    body = json.loads(event.get("body") or "{}")
    mode = body.get("mode")
    if mode == "fail_before":
        raise ValueError("nothing sent")
    stream.start(201, {"content-type": "text/plain", "x-request": context.aws_request_id})
    if mode == "fail_mid":
        stream.write(b"a")
        raise RuntimeError("mid-stream")
    if mode == "endless":
        written = 0
        try:
            while not stream.cut():
                stream.write(f"piece {written}\n".encode())
                written += 1
                time.sleep(0.02)
        except ClientGone:
            pass
        Path(body["record"]).write_text(str(written))
        return
    for i in range(body.get("pieces", 3)):
        stream.write(f"piece {i}\n".encode())
