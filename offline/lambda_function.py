"""One Lambda function, locally: what the template says of it, and how it is invoked.

`FunctionSpec` is a function as the twin read it (from the template, or a test's own);
`LocalFunction` joins its instances (`offline.instance_pool`) and its event queue
(`offline.event_queue`). A synchronous invoke above reserved concurrency is throttled
(429), as in Lambda; an asynchronous one waits in the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.event_queue import (
    AsyncConfig,
    Attempt,
    Destination,
    EventQueue,
    QueuedEvent,
    utc_now,
)
from offline.instance_pool import InstancePool, Worker
from offline.runtime_worker import RuntimeApiWorker, StreamSink
from offline.trace import RUN, Trace, maybe_span
from offline.worker_process import InitFailed, WorkerGone

log = logging.getLogger("offline")

# Variables a Python process needs to start at all; everything else comes from the spec.
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """One Lambda function as the template (or a test) defines it."""

    name: str
    handler: str  # "package.module.function"
    environment: Mapping[str, str]
    timeout_seconds: float
    memory_mb: int = 128
    # The function's sys.path ahead of the standard library: code, layers, runtime.
    code_paths: tuple[str, ...] = ()
    # Reserved concurrency caps instances and throttles synchronous invokes beyond it;
    # without it, `local_cap` bounds instances here and extra invokes wait for one.
    reserved_concurrency: int | None = None
    local_cap: int = 4
    # Alias name → provisioned concurrency (0 for none)
    aliases: Mapping[str, int] = field(default_factory=dict)
    # Qualifier ("$LATEST", an alias) → asynchronous invocation settings
    async_configs: Mapping[str, AsyncConfig] = field(default_factory=dict)
    role_arn: str | None = None
    description: str = ""
    # An image's own runtime, ENTRYPOINT then CMD (empty: Lambda's runtime runs `handler`).
    entrypoint: tuple[str, ...] = ()

    @property
    def capacity(self) -> int:
        return self.reserved_concurrency if self.reserved_concurrency else self.local_cap

    def async_config(self, qualifier: str) -> AsyncConfig:
        return self.async_configs.get(qualifier) or AsyncConfig()


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
    # Added to every Invoke call before it is answered (AWS's hand-off, for the bench).
    latency_ms: float = 0
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
    streamed: bool = False  # the payload went to the stream's reader instead
    duration_ms: float = 0.0
    cold_start: bool = False

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class Throttled(Exception):
    """The function is at its reserved concurrency (Lambda's TooManyRequestsException)."""


class LocalFunction:
    """A function's instances and event queue, and the environment each instance gets."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        region: str,
        account_id: str,
        cwd: Path,
        credentials: Mapping[str, str],
        destination: Destination,
        trace: Trace | None = None,
    ) -> None:
        self.spec = spec
        self.trace = trace
        self.region = region
        self.account_id = account_id
        self.arn = f"arn:aws:lambda:{region}:{account_id}:function:{spec.name}"
        self._credentials = dict(credentials)
        self.throttles = 0
        # The recent output of the function's instances (its logs), for diagnostics.
        self.output: deque[str] = deque(maxlen=2000)
        self.instances = InstancePool(
            name=spec.name,
            handler=spec.handler,
            code_paths=list(spec.code_paths),
            cwd=cwd,
            capacity=spec.capacity,
            init_timeout=max(30.0, spec.timeout_seconds),
            environment_for=self.environment,
            output=self.output,
            entrypoint=spec.entrypoint,
        )
        self.events = EventQueue(function_arn=self.arn, destination=destination)
        self.instances.on_room = self._pump_events
        self._tasks: set[asyncio.Task] = set()

    # -- introspection (tests, logs) ------------------------------------------------
    @property
    def instance_count(self) -> int:
        return len(self.instances.workers)

    @property
    def busy(self) -> int:
        return self.instances.busy

    @property
    def queued_events(self) -> int:
        return len(self.events)

    @property
    def cold_starts(self) -> int:
        return self.instances.cold_starts

    @property
    def expired_events(self) -> int:
        return self.events.expired

    def pids(self) -> list[int]:
        return [w.pid for w in self.instances.workers]

    def workers(self) -> list[Worker]:
        return list(self.instances.workers)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Initialize the provisioned instances before any invoke, as Lambda does."""
        for alias, count in self.spec.aliases.items():
            if count:
                await self.instances.provision(alias, count)

    async def close(self) -> None:
        await self.events.close()
        for task in list(self._tasks):
            task.cancel()
        await self.instances.close()

    # -- invocation -------------------------------------------------------------------
    def qualifier_of(self, invoked_arn: str) -> str:
        """The qualifier an invoked ARN names ("$LATEST" when none)."""
        tail = invoked_arn.split(":function:", 1)[-1]
        _, _, qualifier = tail.partition(":")
        return qualifier or "$LATEST"

    async def invoke(self, payload: bytes, *, invoked_arn: str | None = None) -> InvokeResult:
        """RequestResponse: run now on a warm or new instance, or raise Throttled."""
        result, _ = await self._run_now(payload, invoked_arn or self.arn)
        return result

    async def invoke_stream(
        self,
        payload: bytes,
        *,
        invoked_arn: str,
        on_chunk: StreamSink,
        cut: asyncio.Event,
    ) -> InvokeResult:
        """A response-streaming invoke (a RESPONSE_STREAM Function URL): the answer goes to
        `on_chunk(data, content_type)` as the runtime sends it; `cut` ends it early. A
        function run by Lambda's own Python runtime answers whole, in one chunk."""
        result, streamed = await self._run_now(payload, invoked_arn, stream=(on_chunk, cut))
        if not streamed and not result.function_error:
            await on_chunk(result.payload, "application/json")
            result.streamed = True
        return result

    async def _run_now(
        self,
        payload: bytes,
        invoked_arn: str,
        *,
        stream: tuple[StreamSink, asyncio.Event] | None = None,
    ) -> tuple[InvokeResult, bool]:
        """Run on a warm or new instance now (or raise Throttled); the result, and whether
        `stream` was handed to the instance (only a runtime under the Runtime API streams)."""
        throttle = self.spec.reserved_concurrency is not None
        try:
            worker, cold = await self.instances.acquire(
                self.qualifier_of(invoked_arn), wait=not throttle
            )
        except InitFailed as failure:
            failed = InvokeResult(json.dumps(failure.error).encode(), "Unhandled", cold_start=True)
            return failed, False
        if worker is None:
            self.throttles += 1
            raise Throttled(self.spec.name)
        if not isinstance(worker, RuntimeApiWorker):
            stream = None
        # The call runs to completion even if our caller goes away: the instance is busy
        # until its handler returns, exactly as in Lambda.
        task = asyncio.ensure_future(
            self._run(worker, str(uuid.uuid4()), payload, invoked_arn, cold, stream=stream)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task), stream is not None

    def submit_event(
        self, payload: bytes, *, invoked_arn: str | None = None, expire: bool = False
    ) -> str:
        """Event: queue the payload (202) and run it when an instance is free."""
        invoked_arn = invoked_arn or self.arn
        qualifier = self.qualifier_of(invoked_arn)
        request_id = self.events.submit(
            payload,
            invoked_arn=invoked_arn,
            qualifier=qualifier,
            config=self.spec.async_config(qualifier),
            expire=expire,
        )
        self._pump_events()
        return request_id

    def expire_old_events(self) -> None:
        self.events.expire_old()

    def _pump_events(self) -> None:
        """Start queued events while an instance is idle or can be started."""
        if self.instances.closed:
            return
        while (event := self.events.head()) is not None:
            worker = self.instances.take_idle(event.qualifier)
            if worker is None and not self.instances.claim_room():
                return
            self.events.pop()
            self.events.run(event, self._attempt(event, worker), self._pump_events)

    def _attempt(self, event: QueuedEvent, worker: Worker | None) -> Attempt:
        """One attempt at `event`: on `worker`, or on a new instance (room claimed)."""

        async def attempt() -> dict[str, Any] | None:
            try:
                running = worker if worker is not None else await self.instances.start()
            except InitFailed as failure:
                return failure.error
            result = await self._run(
                running, event.request_id, event.payload, event.invoked_arn, worker is None
            )
            return result.json() if result.function_error else None

        return attempt

    async def _run(
        self,
        worker: Worker,
        request_id: str,
        payload: bytes,
        invoked_arn: str,
        cold: bool,
        *,
        stream: tuple[StreamSink, asyncio.Event] | None = None,
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
            with maybe_span(self.trace, RUN, self.spec.name):
                if stream is not None:
                    assert isinstance(worker, RuntimeApiWorker)
                    on_chunk, cut = stream
                    reply = await worker.call(request, timeout, on_chunk=on_chunk, cut=cut)
                else:
                    reply = await worker.call(request, timeout)
        except TimeoutError:
            worker.kill()
            error = {
                "errorMessage": f"{utc_now()} {request_id} Task timed out after "
                f"{timeout:.2f} seconds",
                "errorType": "Sandbox.Timedout",
            }
            log.warning("%s: timed out after %.0f s; instance replaced", self.spec.name, timeout)
            return self._finish(worker, error, started, cold)
        except (WorkerGone, ConnectionError):
            how = worker.exit_description()
            worker.kill()
            error = {
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {how}",
                "errorType": "Runtime.ExitError",
            }
            log.warning("%s: instance %d died mid-invocation (%s)", self.spec.name, worker.pid, how)
            return self._finish(worker, error, started, cold)
        except asyncio.CancelledError:
            worker.kill()
            self.instances.release(worker)
            raise
        if reply.get("ok"):
            result = InvokeResult(reply.get("payload", "").encode(), None)
            result.streamed = bool(reply.get("streamed"))
            result.duration_ms = (time.perf_counter() - started) * 1000
            result.cold_start = cold
            self.instances.release(worker)
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
        self.instances.release(worker)
        return InvokeResult(
            json.dumps(error).encode(),
            "Unhandled",
            duration_ms=(time.perf_counter() - started) * 1000,
            cold_start=cold,
        )

    # -- instances ----------------------------------------------------------------------
    def environment(self, initialization_type: str = "on-demand") -> dict[str, str]:
        """An instance's whole environment: the function's variables plus Lambda's own."""
        env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
        env.update(
            {
                "TZ": ":UTC",
                "LAMBDA_TASK_ROOT": self.spec.code_paths[0] if self.spec.code_paths else "",
                "_HANDLER": self.spec.handler,
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                "AWS_LAMBDA_FUNCTION_NAME": self.spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{utc_now()[:10]}/[$LATEST]{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                **self._credentials,
            }
        )
        env.update(self.spec.environment)
        return env
