"""What the twin did and when: timestamped spans for a first-token waterfall.

Off unless a `Trace` is given to `OfflineCloud`. Times are `time.perf_counter()` seconds
in the twin's process, so a client in the same process can line its own readings up with
them. The twin records only what it does itself (frames in, function runs, AWS calls,
Invoke calls, @connections posts); it never reads the application's messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

FRAME = "frame"  # a client frame reached the gateway (name: the route)
RUN = "run"  # a function ran an invocation (name: the function)
AWS_CALL = "aws"  # an SDK call to an emulated service (name: service operation)
INVOKE = "invoke"  # Lambda's Invoke API took a call (name: the function)
POST = "post"  # an @connections post, received to delivered (name: bytes posted)


@dataclass(frozen=True)
class Span:
    kind: str
    name: str
    start: float
    end: float

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


class Trace:
    def __init__(self) -> None:
        self._spans: list[Span] = []
        self._lock = threading.Lock()

    def add(self, kind: str, name: str, start: float, end: float | None = None) -> None:
        end = start if end is None else end
        with self._lock:
            self._spans.append(Span(kind, name, start, end))

    @contextmanager
    def span(self, kind: str, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(kind, name, start, time.perf_counter())

    def spans(self, since: float = 0.0) -> list[Span]:
        """The spans that started at or after `since`, in start order."""
        with self._lock:
            return sorted((s for s in self._spans if s.start >= since), key=lambda s: s.start)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()


@contextmanager
def maybe_span(trace: Trace | None, kind: str, name: str) -> Iterator[None]:
    """A span when tracing, nothing otherwise."""
    if trace is None:
        yield
        return
    with trace.span(kind, name):
        yield
