"""The inference image's build-time self-check, run by the Dockerfile's last `RUN`:

    python image_check.py /opt/models/<model file>

Loads both engines' native libraries as the handler will (llama.cpp's on import, picoLLM's
through its public `available_devices()`, which needs no AccessKey), and checks that the
model is a file Lambda's non-root user can read. It prints what failed and exits 1, so a
missing shared library fails `docker build` instead of the first reply.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable


def check_llama_cpp() -> str | None:
    """None when llama.cpp's libraries load; else why not (e.g. a missing libgomp.so.1)."""
    try:
        import llama_cpp  # noqa: F401 - the import loads libllama and libggml with ctypes
    except Exception as error:  # OSError for a library, ImportError for a package
        return f"llama.cpp could not load: {error}"
    return None


def check_picollm() -> str | None:
    """None when picoLLM's library loads and answers; else why not."""
    try:
        import picollm

        picollm.available_devices()
    except Exception as error:
        return f"picoLLM could not load: {error}"
    return None


def check_model(path: str) -> str | None:
    """None when `path` is a regular file every user may read; else what is wrong."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f"model: {error}"
    if not stat.S_ISREG(mode):
        return f"model: {path} is not a regular file"
    if not mode & stat.S_IROTH:
        return (
            f"model: {path} has mode {stat.S_IMODE(mode):04o}; Lambda's non-root user "
            "could not read it (COPY it with --chmod=0644)"
        )
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python image_check.py MODEL_PATH", file=sys.stderr)
        return 2
    # Lambda's bootstrap imports from the task root first; do the same.
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", "/var/task"))
    checks: list[Callable[[], str | None]] = [
        check_llama_cpp,
        check_picollm,
        lambda: check_model(argv[0]),
    ]
    problems = [problem for check in checks if (problem := check()) is not None]
    for problem in problems:
        print(f"image check FAILED: {problem}", file=sys.stderr)
    if not problems:
        print("image check: llama.cpp and picoLLM load, the model is readable")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
