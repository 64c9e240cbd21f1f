"""The kill switch: one SSM parameter per stage, "on" or "off", that an operator flips to
stop new replies without a redeploy (`make generation STATE=off STAGE=Dev`).

The router reads it before every chat through Powertools' parameter cache, so a flip takes
effect within `MAX_AGE_SECONDS` on every warm instance. A read that fails keeps the last
value read (on, before any): an SSM hiccup never stops a stage, and never restarts one.
"""

from __future__ import annotations

import threading
from typing import Any

from llambda.contract import GENERATION_OFF
from llambda.observability import logger

# How stale a warm instance's reading may be: a flip is seen within this many seconds.
MAX_AGE_SECONDS = 5


class GenerationSwitch:
    """`is_on()`: whether new replies may start. With no parameter, always on."""

    def __init__(self, provider: Any, parameter_name: str | None) -> None:
        self._provider = provider  # a Powertools SSMProvider
        self._name = parameter_name
        self._last = True
        self._lock = threading.Lock()

    def is_on(self) -> bool:
        if not self._name:
            return True
        try:
            value = self._provider.get(self._name, max_age=MAX_AGE_SECONDS)
        except Exception:
            logger.exception("generation switch unreadable; keeping its last value")
            return self._last
        on = str(value or "").strip().lower() != GENERATION_OFF
        with self._lock:
            self._last = on
        return on
