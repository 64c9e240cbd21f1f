"""Start an image's own runtime (its ENTRYPOINT, `python3 -m MODULE ARGS...`) isolated as
`offline.lambda_worker` starts a handler: run by `offline.runtime_worker` as
`python -I -S runtime_bootstrap.py PATHS -m MODULE ARGS...`, with `sys.path` exactly the
image's (PATHS, JSON) ahead of the standard library. Standard library only."""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
import time


def _watch_parent() -> None:
    """Exit when the twin dies, however it died: no orphaned instances."""
    parent = os.getppid()
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def main(argv: list[str]) -> None:
    paths, flag, module, *args = argv
    if flag != "-m":
        raise SystemExit("usage: runtime_bootstrap.py PATHS -m MODULE [ARGS...]")
    sys.path[:0] = json.loads(paths)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the twin decides when instances stop
    threading.Thread(target=_watch_parent, daemon=True, name="parent-watch").start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
