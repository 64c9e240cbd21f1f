"""Lambda's execution model, locally: per function, a pool of worker processes.

Each worker (`offline.lambda_worker`) is one execution environment: it imports the
handler module once and serves one invocation at a time. An invocation reuses an idle
worker (warm, most recently used first), starts a new one (cold start) only when every
worker is busy, and never exceeds the function's concurrency: reserved concurrency as
the stack sets it, or a local cap for unreserved functions. Above reserved concurrency a
synchronous invoke is throttled (429) and an asynchronous event waits in the queue, as
in Lambda; events that wait longer than the function's maximum event age are dropped and
sent to the on-failure destination with a Lambda destination record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("offline")

REPO_ROOT = Path(__file__).resolve().parent.parent

# Variables a Python process needs to start at all; everything else comes from the spec.
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """One Lambda function as the stack defines it."""

    name: str
    handler: str  # "package.module.function"
    environment: dict[str, str]
    timeout_seconds: float
    memory_mb: int = 128
    # Reserved concurrency caps instances and throttles synchronous invokes beyond it;
    # without it, `local_cap` bounds instances here and extra invokes wait for one.
    reserved_concurrency: int | None = None
    local_cap: int = 4
    aliases: tuple[str, ...] = ()
    # Asynchronous invocation settings (Lambda's EventInvokeConfig)
    max_event_age_seconds: float = 6 * 3600
    max_retry_attempts: int = 2
    on_failure: str | None = None  # name of the on-failure destination function
    # Directories put on the worker's PYTHONPATH (Lambda's task root)
    code_paths: tuple[str, ...] = ()

    @property
    def capacity(self) -> int:
        return self.reserved_concurrency if self.reserved_concurrency else self.local_cap


@dataclass
class LambdaFaults:
    """Faults the local Invoke API can be told to inject (mutable at run time).

    `throttle_next`: that many following Invoke calls are answered 429
    TooManyRequestsException (note the SDK retries throttling, up to its attempt limit).
    `expire_next`: that many following asynchronous events are dropped as too old,
    as if they had waited past the function's maximum event age.
    """

    throttle_next: int = 0
    expire_next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_throttle(self) -> bool:
        with self._lock:
            if self.throttle_next > 0:
                self.throttle_next -= 1
                return True
            return False

    def take_expiry(self) -> bool:
        with self._lock:
            if self.expire_next > 0:
                self.expire_next -= 1
                return True
            return False


@dataclass
class InvokeResult:
    payload: bytes
    function_error: str | None = None  # "Unhandled" when the handler raised
    duration_ms: float = 0.0
    cold_start: bool = False

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class Throttled(Exception):
    """The function is at its reserved concurrency (Lambda's TooManyRequestsException)."""


class WorkerGone(Exception):
    pass


class Worker:
    """One execution environment (a child process) and its control socket."""

    def __init__(self, pool: FunctionPool, proc: subprocess.Popen, sock: socket.socket) -> None:
        self.pool = pool
        self.proc = proc
        self.pid = proc.pid
        self._sock = sock
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.init_ms = 0.0
        self.invocations = 0
        self.alive = True

    async def connect(self, timeout: float) -> dict[str, Any]:
        self._reader, self._writer = await asyncio.open_connection(sock=self._sock)
        return await asyncio.wait_for(self._read(), timeout)

    async def _read(self) -> dict[str, Any]:
        assert self._reader is not None
        try:
            header = await self._reader.readexactly(4)
            (size,) = struct.unpack(">I", header)
            return json.loads(await self._reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise WorkerGone(str(exc)) from exc

    async def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self._writer is not None
        data = json.dumps(request).encode()
        self._writer.write(struct.pack(">I", len(data)) + data)
        await self._writer.drain()
        self.invocations += 1
        return await asyncio.wait_for(self._read(), timeout)

    def kill(self) -> None:
        self.alive = False
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()

    async def stop(self) -> None:
        """Close the control socket (the worker exits on EOF), then make sure it is gone."""
        self.alive = False
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()
        for _ in range(20):
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)


@dataclass
class _QueuedEvent:
    request_id: str
    payload: bytes
    enqueued_at: float
    invoked_arn: str
    attempts: int = 0


FailureHook = Callable[["FunctionSpec", dict[str, Any]], Awaitable[None]]


class FunctionPool:
    """The execution environments of one function, and its asynchronous event queue."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        region: str,
        account_id: str,
        on_failure: FailureHook | None = None,
    ) -> None:
        self.spec = spec
        self.region = region
        self.account_id = account_id
        self.arn = f"arn:aws:lambda:{region}:{account_id}:function:{spec.name}"
        self._on_failure = on_failure
        self._workers: list[Worker] = []
        self._idle: list[Worker] = []
        self._starting = 0
        self._starting_for_waiters = 0
        self._waiters: deque[asyncio.Future[Worker]] = deque()
        self._events: deque[_QueuedEvent] = deque()
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self.cold_starts = 0
        self.throttles = 0
        self.expired_events = 0
        # The recent output of the function's workers (its logs), for diagnostics.
        self.output: deque[str] = deque(maxlen=2000)

    # -- introspection (tests, logs) ------------------------------------------------
    @property
    def instances(self) -> int:
        return len(self._workers)

    @property
    def busy(self) -> int:
        return len(self._workers) - len(self._idle)

    @property
    def queued_events(self) -> int:
        return len(self._events)

    def pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    # -- invocation -------------------------------------------------------------------
    async def invoke(self, payload: bytes, *, invoked_arn: str | None = None) -> InvokeResult:
        """RequestResponse: run now on a warm or new instance, or raise Throttled."""
        request_id = str(uuid.uuid4())
        throttle = self.spec.reserved_concurrency is not None
        try:
            worker, cold = await self._acquire(wait=not throttle)
        except _InitFailed as failure:
            return InvokeResult(json.dumps(failure.error).encode(), "Unhandled", cold_start=True)
        if worker is None:
            self.throttles += 1
            raise Throttled(self.spec.name)
        # The call runs to completion even if our caller goes away: the instance is busy
        # until its handler returns, exactly as in Lambda.
        task = asyncio.ensure_future(
            self._run(worker, request_id, payload, invoked_arn or self.arn, cold)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    def submit_event(
        self, payload: bytes, *, invoked_arn: str | None = None, expire: bool = False
    ) -> str:
        """Event: queue the payload (202) and run it when an instance is free."""
        event = _QueuedEvent(str(uuid.uuid4()), payload, time.monotonic(), invoked_arn or self.arn)
        if expire:
            self._spawn(self._fail_event(event, "EventAgeExceeded", None))
            return event.request_id
        self._events.append(event)
        self._pump()
        return event.request_id

    async def _acquire(self, *, wait: bool) -> tuple[Worker | None, bool]:
        while self._idle:
            worker = self._idle.pop()  # the most recently used: the warmest
            if worker.alive:
                return worker, False
        if self._has_room():
            self._starting += 1  # claimed now, before any await, so no one overshoots
            return await self._start_worker(), True
        if not wait:
            return None, False
        future: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return await future, False

    def _release(self, worker: Worker) -> None:
        if not worker.alive or self._closed:
            self._discard(worker)
        else:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(worker)
                    return
            self._idle.append(worker)
        self._pump()

    def _discard(self, worker: Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        if worker.alive:
            worker.kill()

    def _pump(self) -> None:
        """Hand free room to waiting invokes (after a lost instance), then to queued events."""
        if self._closed:
            return
        waiting = sum(not w.done() for w in self._waiters)
        while waiting > self._starting_for_waiters and self._has_room():
            self._starting += 1
            self._starting_for_waiters += 1
            self._spawn(self._start_for_waiter())
        while self._events:
            event = self._events[0]
            if self._too_old(event):
                self._events.popleft()
                self._spawn(self._fail_event(event, "EventAgeExceeded", None))
            elif self._idle:
                self._events.popleft()
                self._spawn(self._run_event(event, self._idle.pop()))
            elif self._has_room():
                self._events.popleft()
                self._starting += 1
                self._spawn(self._run_event(event, None))
            else:
                break

    def _has_room(self) -> bool:
        return len(self._workers) + self._starting < self.spec.capacity

    def _too_old(self, event: _QueuedEvent) -> bool:
        return time.monotonic() - event.enqueued_at > self.spec.max_event_age_seconds

    def expire_old_events(self) -> None:
        """Drop queued events past the maximum event age (called about once a second)."""
        for event in [e for e in self._events if self._too_old(e)]:
            self._events.remove(event)
            self._spawn(self._fail_event(event, "EventAgeExceeded", None))

    async def _start_for_waiter(self) -> None:
        try:
            worker = await self._start_worker()
        except _InitFailed as failure:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(failure)
                    break
            return
        finally:
            self._starting_for_waiters -= 1
        self._release(worker)

    async def _run_event(self, event: _QueuedEvent, worker: Worker | None) -> None:
        """Run one event on `worker`, or on a new instance (room already claimed)."""
        cold = worker is None
        try:
            if worker is None:
                worker = await self._start_worker()
        except _InitFailed as failure:
            event.attempts += 1
            result = InvokeResult(json.dumps(failure.error).encode(), "Unhandled")
        else:
            event.attempts += 1
            result = await self._run(
                worker, event.request_id, event.payload, event.invoked_arn, cold
            )
        if result.function_error is None:
            return
        if event.attempts <= self.spec.max_retry_attempts and not self._closed:
            await asyncio.sleep(1.0)  # Lambda waits minutes; locally a second is enough
            self._events.appendleft(event)
            self._pump()
            return
        await self._fail_event(event, "RetriesExhausted", result)

    async def _fail_event(
        self, event: _QueuedEvent, condition: str, result: InvokeResult | None
    ) -> None:
        if condition == "EventAgeExceeded":
            self.expired_events += 1
            log.warning(
                "%s: event %s dropped: older than the maximum event age (%ss)",
                self.spec.name,
                event.request_id[:8],
                self.spec.max_event_age_seconds,
            )
        record = destination_record(
            function_arn=f"{self.arn}:$LATEST",
            request_id=event.request_id,
            condition=condition,
            attempts=event.attempts,
            payload=event.payload,
            result=result,
        )
        if self._on_failure is not None and self.spec.on_failure:
            await self._on_failure(self.spec, record)

    async def _run(
        self, worker: Worker, request_id: str, payload: bytes, invoked_arn: str, cold: bool
    ) -> InvokeResult:
        timeout = self.spec.timeout_seconds
        started = time.perf_counter()
        request = {
            "requestId": request_id,
            "payload": payload.decode("utf-8", errors="replace"),
            "deadlineMs": int(time.time() * 1000 + timeout * 1000),
            "functionArn": invoked_arn,
        }
        try:
            reply = await worker.call(request, timeout)
        except TimeoutError:
            worker.kill()
            error = {
                "errorMessage": f"{_utc_now()} {request_id} Task timed out after "
                f"{timeout:.2f} seconds",
                "errorType": "Sandbox.Timedout",
            }
            log.warning("%s: timed out after %.0f s; instance replaced", self.spec.name, timeout)
            return self._finish(worker, error, started, cold)
        except (WorkerGone, ConnectionError):
            code = worker.proc.poll()
            worker.kill()
            error = {
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                f"exit status {code}",
                "errorType": "Runtime.ExitError",
            }
            log.warning("%s: instance %d died mid-invocation", self.spec.name, worker.pid)
            return self._finish(worker, error, started, cold)
        except asyncio.CancelledError:
            worker.kill()
            self._release(worker)
            raise
        if reply.get("ok"):
            result = InvokeResult(reply["payload"].encode(), None)
            result.duration_ms = (time.perf_counter() - started) * 1000
            result.cold_start = cold
            self._release(worker)
            return result
        error = reply.get("error", {})
        log.warning(
            "%s: handler raised %s: %s",
            self.spec.name,
            error.get("errorType"),
            error.get("errorMessage"),
        )
        return self._finish(worker, error, started, cold)

    def _finish(
        self, worker: Worker, error: dict[str, Any], started: float, cold: bool
    ) -> InvokeResult:
        self._release(worker)
        return InvokeResult(
            json.dumps(error).encode(),
            "Unhandled",
            duration_ms=(time.perf_counter() - started) * 1000,
            cold_start=cold,
        )

    # -- instances ----------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """The worker's whole environment: the function's variables plus Lambda's own."""
        env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
        paths = [*self.spec.code_paths, str(REPO_ROOT), str(REPO_ROOT / "lambda_image")]
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(paths),
                "PYTHONUNBUFFERED": "1",
                "TZ": ":UTC",
                "LAMBDA_TASK_ROOT": str(REPO_ROOT / "lambda_image"),
                "_HANDLER": self.spec.handler,
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                "AWS_LAMBDA_FUNCTION_NAME": self.spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{_utc_now()[:10]}/[$LATEST]{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
            }
        )
        env.update(self.spec.environment)
        return env

    async def _start_worker(self) -> Worker:
        """Start an instance; the caller has already counted it in `_starting`."""
        try:
            parent_sock, child_sock = socket.socketpair()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "offline.lambda_worker",
                    str(child_sock.fileno()),
                    self.spec.handler,
                ],
                env=self.environment(),
                cwd=str(REPO_ROOT),
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            child_sock.close()
            worker = Worker(self, proc, parent_sock)
            threading.Thread(
                target=self._pump_output, args=(proc,), daemon=True, name=f"out-{proc.pid}"
            ).start()
            started = time.perf_counter()
            try:
                ready = await worker.connect(timeout=max(30.0, self.spec.timeout_seconds))
            except (TimeoutError, WorkerGone) as exc:
                worker.kill()
                raise _InitFailed(
                    {"errorMessage": f"init failed: {exc!r}", "errorType": "Runtime.Unknown"}
                ) from exc
            if not ready.get("ready"):
                await worker.stop()
                error = ready.get("error", {})
                log.error("%s: init failed: %s", self.spec.name, error.get("errorMessage"))
                raise _InitFailed(error)
            worker.init_ms = (time.perf_counter() - started) * 1000
            self._workers.append(worker)
            self.cold_starts += 1
            log.info(
                "%s: cold start, instance %d of %d (pid %d), init %.0f ms",
                self.spec.name,
                len(self._workers),
                self.spec.capacity,
                proc.pid,
                worker.init_ms,
            )
            return worker
        finally:
            self._starting -= 1

    def _pump_output(self, proc: subprocess.Popen) -> None:
        fn_log = logging.getLogger(f"offline.function.{self.spec.name}")
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            self.output.append(line)
            fn_log.debug("%s", line)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop every instance; queued events are dropped."""
        self._closed = True
        self._events.clear()
        for waiter in self._waiters:
            waiter.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(w.stop() for w in list(self._workers)), return_exceptions=True)
        self._workers.clear()
        self._idle.clear()


class _InitFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("errorMessage"))
        self.error = error


def destination_record(
    *,
    function_arn: str,
    request_id: str,
    condition: str,
    attempts: int,
    payload: bytes,
    result: InvokeResult | None,
) -> dict[str, Any]:
    """The record Lambda sends to an asynchronous invocation's on-failure destination."""
    try:
        request_payload: Any = json.loads(payload) if payload else None
    except ValueError:
        request_payload = payload.decode("utf-8", errors="replace")
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": _utc_now(),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": request_payload,
    }
    if result is not None:
        record["responseContext"] = {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": result.function_error or "",
        }
        record["responsePayload"] = result.json()
    return record


def _utc_now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
