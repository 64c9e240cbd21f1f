"""The image's runtime loop in a real process against the twin's Runtime API server: a
Function URL request streams (prelude, 8 NULs, body, in pieces as written), any other
event is answered whole, errors go where the Runtime API says (before the first byte to
/error, after it in the trailers), and a cut stream stops the handler within one write."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from offline.runtime_api import Invocation, RuntimeApi

REPO = Path(__file__).resolve().parents[2]
HANDLERS = "tests.runtime.stream_handlers"


class Instance:
    """One runtime-loop process and its Runtime API, served from a thread's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.api, address = self.run(self._start())
        env = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": address,
            "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'lambda_image'}",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llambda.runtime_loop",
                "--stream",
                f"{HANDLERS}.stream",
                f"{HANDLERS}.buffered",
            ],
            env=env,
            cwd=REPO,
        )
        self.run(asyncio.wait_for(asyncio.shield(self.api.first_next), 30))

    async def _start(self):
        api = RuntimeApi()
        return api, await api.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def invoke(self, event, *, on_chunk=None, timeout=30):
        async def go():
            invocation = Invocation(
                request_id=str(uuid.uuid4()),
                payload=json.dumps(event).encode(),
                deadline_ms=int(time.time() * 1000) + 60_000,
                function_arn="arn:aws:lambda:us-east-1:123456789012:function:f:live",
                on_chunk=on_chunk,
            )
            self.api.submit(invocation)
            return invocation, await asyncio.wait_for(invocation.result, timeout)

        return self.run(go(), timeout + 5)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.run(self.api.close())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def instance():
    started = Instance()
    yield started
    started.close()


def url_event(**body):
    return {
        "version": "2.0",
        "rawPath": "/",
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": json.dumps(body),
    }


def collector():
    pieces: list[bytes] = []

    async def on_chunk(data: bytes) -> None:
        pieces.append(data)

    return pieces, on_chunk


def test_any_other_event_is_answered_whole(instance):
    invocation, result = instance.invoke({"hello": "world"})
    assert result["ok"]
    answer = json.loads(result["payload"])
    assert answer["echo"] == {"hello": "world"}
    assert answer["requestId"] == invocation.request_id
    assert answer["arn"].endswith(":live") and answer["timeLeft"]


def test_a_handler_error_goes_to_the_error_endpoint(instance):
    _, result = instance.invoke({"raise": True})
    assert not result["ok"]
    assert result["error"]["errorType"] == "ValueError"
    assert result["error"]["errorMessage"] == "boom"
    _, result = instance.invoke({"hello": 1})  # the instance serves on
    assert result["ok"]


def test_a_function_url_request_streams_prelude_then_body_in_pieces(instance):
    pieces, on_chunk = collector()
    invocation, result = instance.invoke(url_event(pieces=3), on_chunk=on_chunk)
    assert result == {"ok": True, "streamed": True}
    prelude, delimiter, rest = pieces[0].partition(b"\0" * 8)
    assert delimiter and rest == b""
    assert json.loads(prelude) == {
        "statusCode": 201,
        "headers": {"content-type": "text/plain", "x-request": invocation.request_id},
        "cookies": [],
    }
    assert pieces[1:] == [b"piece 0\n", b"piece 1\n", b"piece 2\n"]  # one chunk per write


def test_an_error_before_the_first_byte_is_the_invocations_error(instance):
    pieces, on_chunk = collector()
    _, result = instance.invoke(url_event(mode="fail_before"), on_chunk=on_chunk)
    assert not result["ok"] and pieces == []
    assert result["error"]["errorMessage"] == "nothing sent"


def test_an_error_mid_stream_goes_in_the_trailers(instance):
    pieces, on_chunk = collector()
    _, result = instance.invoke(url_event(mode="fail_mid"), on_chunk=on_chunk)
    assert pieces[1:] == [b"a"]
    assert result["streamed"] and not result["ok"]
    assert result["error"]["errorType"] == "RuntimeError"
    assert result["error"]["errorMessage"] == "mid-stream"


def test_a_cut_stream_stops_the_handler_within_one_write(instance, tmp_path):
    record = tmp_path / "written"
    pieces, collect = collector()
    holder = {}

    async def on_chunk(data: bytes) -> None:
        await collect(data)
        if len(pieces) == 4:  # the prelude and three pieces, then the reader goes
            holder["invocation"].cut()

    async def go():
        invocation = Invocation(
            request_id=str(uuid.uuid4()),
            payload=json.dumps(url_event(mode="endless", record=str(record))).encode(),
            deadline_ms=int(time.time() * 1000) + 60_000,
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
            on_chunk=on_chunk,
        )
        holder["invocation"] = invocation
        instance.api.submit(invocation)
        return await asyncio.wait_for(invocation.result, 30)

    result = instance.run(go(), 35)
    assert result["cut"]  # ended when the runtime asked for its next invocation
    assert int(record.read_text()) - 3 <= 1
    _, result = instance.invoke({"after": "cut"})
    assert result["ok"]
