"""The execution environments of one function: warm reuse, cold starts, concurrency.

An invocation reuses an idle instance (the most recently used: the warmest), starts a
new one (a cold start) only when every instance is busy, and never exceeds the
function's concurrency: reserved concurrency as the template sets it, or a local cap for
unreserved functions. Provisioned concurrency keeps that many instances of an alias
initialized from the start (`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`);
only invocations of that alias use them, as in Lambda, and when they are all busy the
alias spills over to on-demand instances.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from offline.runtime_worker import RuntimeApiWorker
from offline.worker_process import InitFailed, WorkerGone, WorkerProcess

# An execution environment: the twin's own worker, or an image's runtime under the
# Runtime API; the pool and the function treat both alike.
Worker = WorkerProcess | RuntimeApiWorker

log = logging.getLogger("offline")

EnvironmentFor = Callable[[str], dict[str, str]]


class InstancePool:
    """Idle and busy instances of one function, and invokes waiting for one."""

    def __init__(
        self,
        *,
        name: str,
        handler: str,
        code_paths: list[str],
        cwd: Path,
        capacity: int,
        init_timeout: float,
        environment_for: EnvironmentFor,
        output: deque[str],
        entrypoint: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.handler = handler
        # An image's own runtime (its ENTRYPOINT and CMD): run under the Runtime API.
        self.entrypoint = tuple(entrypoint)
        self.code_paths = code_paths
        self.cwd = cwd
        self.capacity = capacity
        self.init_timeout = init_timeout
        self._environment_for = environment_for
        self._output = output
        self.workers: list[Worker] = []
        self._idle: list[Worker] = []
        self._starting = 0
        self._starting_for_waiters = 0
        self._waiters: deque[tuple[str, asyncio.Future[Worker]]] = deque()
        self.cold_starts = 0
        self.closed = False
        self.on_room: Callable[[], None] = lambda: None
        self._tasks: set[asyncio.Task] = set()

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def busy(self) -> int:
        return len(self.workers) - len(self._idle)

    def has_room(self) -> bool:
        return len(self.workers) + self._starting < self.capacity

    def take_idle(self, qualifier: str) -> Worker | None:
        """An idle instance this invocation may use: its alias's provisioned ones first."""
        for wanted in (qualifier, ""):
            for worker in reversed(self._idle):  # the most recently used: the warmest
                if worker.tag == wanted and worker.alive:
                    self._idle.remove(worker)
                    return worker
        return None

    async def acquire(self, qualifier: str, *, wait: bool) -> tuple[Worker | None, bool]:
        """(instance, cold) for one invocation; (None, False) when full and not waiting."""
        worker = self.take_idle(qualifier)
        if worker is not None:
            return worker, False
        if self.has_room():
            self._starting += 1  # claimed now, before any await, so no one overshoots
            return await self.start(), True
        if not wait:
            return None, False
        future: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append((qualifier, future))
        return await future, False

    def release(self, worker: Worker) -> None:
        if not worker.alive or self.closed:
            self.discard(worker)
        else:
            for entry in list(self._waiters):
                qualifier, waiter = entry
                if waiter.done():
                    self._waiters.remove(entry)
                elif worker.tag in ("", qualifier):
                    self._waiters.remove(entry)
                    waiter.set_result(worker)
                    return
            self._idle.append(worker)
        self.pump()

    def discard(self, worker: Worker) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        if worker.alive:
            worker.kill()

    def pump(self) -> None:
        """Hand free room to waiting invokes (after a lost instance), then to the queue."""
        if self.closed:
            return
        waiting = sum(not w.done() for _, w in self._waiters)
        while waiting > self._starting_for_waiters and self.has_room():
            self._starting += 1
            self._starting_for_waiters += 1
            task = asyncio.ensure_future(self._start_for_waiter())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.on_room()

    def claim_room(self) -> bool:
        """Count a new instance before it starts (the caller then calls `start`)."""
        if not self.has_room():
            return False
        self._starting += 1
        return True

    async def _start_for_waiter(self) -> None:
        try:
            worker = await self.start()
        except InitFailed as failure:
            while self._waiters:
                _, waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(failure)
                    break
            return
        finally:
            self._starting_for_waiters -= 1
        self.release(worker)

    async def provision(self, alias: str, count: int) -> None:
        """Start `count` instances for `alias` now, with init run before any invoke."""
        started = []
        for _ in range(count):
            self._starting += 1
            started.append(self.start(tag=alias))
        for worker in await asyncio.gather(*started):
            self._idle.append(worker)

    async def start(self, *, tag: str = "") -> Worker:
        """Start an instance; the caller has already counted it in `_starting`."""
        try:
            init_type = "provisioned-concurrency" if tag else "on-demand"
            worker: Worker
            if self.entrypoint:
                worker = RuntimeApiWorker.spawn(
                    entrypoint=self.entrypoint,
                    code_paths=self.code_paths,
                    environment=self._environment_for(init_type),
                    cwd=str(self.cwd),
                    tag=tag,
                )
            else:
                worker = WorkerProcess.spawn(
                    handler=self.handler,
                    code_paths=self.code_paths,
                    environment=self._environment_for(init_type),
                    cwd=str(self.cwd),
                    tag=tag,
                )
            threading.Thread(
                target=self._pump_output, args=(worker,), daemon=True, name=f"out-{worker.pid}"
            ).start()
            started = time.perf_counter()
            try:
                ready = await worker.connect(timeout=self.init_timeout)
            except (TimeoutError, WorkerGone) as exc:
                worker.kill()
                how = "timed out" if isinstance(exc, TimeoutError) else worker.exit_description()
                raise InitFailed(
                    {"errorMessage": f"init failed: {how}", "errorType": "Runtime.Unknown"}
                ) from exc
            if not ready.get("ready"):
                await worker.stop()
                error = ready.get("error", {})
                log.error("%s: init failed: %s", self.name, error.get("errorMessage"))
                raise InitFailed(error)
            worker.init_ms = (time.perf_counter() - started) * 1000
            self.workers.append(worker)
            self.cold_starts += 1
            log.info(
                "%s: %s, instance %d of %d (pid %d), init %.0f ms",
                self.name,
                f"provisioned for {tag}" if tag else "cold start",
                len(self.workers),
                self.capacity,
                worker.pid,
                worker.init_ms,
            )
            return worker
        finally:
            self._starting -= 1

    def _pump_output(self, worker: Worker) -> None:
        fn_log = logging.getLogger(f"offline.function.{self.name}")
        assert worker.proc.stdout is not None
        for raw in worker.proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            self._output.append(line)
            fn_log.debug("%s", line)

    async def close(self) -> None:
        self.closed = True
        for _, waiter in self._waiters:
            waiter.cancel()
        await asyncio.gather(*(w.stop() for w in list(self.workers)), return_exceptions=True)
        self.workers.clear()
        self._idle.clear()
