"""Can this machine run the llama.cpp build in `.venv`? Run in a child process first.

A llama.cpp library compiled for another CPU dies with SIGILL (an illegal instruction)
the first time a kernel it picked runs, which is inside a batched decode, not at load.
So this loads the tiny model and decodes a prompt longer than one 64-token batch; the
suite only starts when that child exits cleanly (see `tests/conftest.py`).
"""

from __future__ import annotations

import signal
import subprocess
import sys

# Set to "1" by a runner that checked once and then runs the suite many times (make mutate).
CHECKED = "LLAMBDA_CPU_CHECKED"


def check() -> str | None:
    """None when llama.cpp runs here; otherwise what went wrong, in plain words."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.cpu_check"], capture_output=True, text=True, timeout=300
    )
    if result.returncode == 0:
        return None
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name
        cause = (
            "an instruction this CPU does not allow (SIGILL): the llama-cpp-python in .venv "
            "was compiled for another CPU"
            if name == "SIGILL"
            else f"signal {name}"
        )
    else:
        cause = f"exit status {result.returncode}: {result.stderr.strip()[-800:]}"
    return (
        f"llama.cpp cannot run on this machine: it died with {cause}.\n"
        "The Makefile builds it with the inference image's portable flags (the Dockerfile's "
        "CMAKE_ARGS); rebuild .venv with `rm -rf .venv && make test`."
    )


def _decode() -> None:
    import llama_cpp

    from offline.default_model import default_model_path

    llm = llama_cpp.Llama(
        model_path=str(default_model_path()), n_ctx=512, n_batch=64, n_threads=1, verbose=False
    )
    tokens = llm.tokenize(b"The quick brown fox jumps over the lazy dog. " * 12)
    assert len(tokens) > 64, len(tokens)
    llm.eval(tokens)
    llm.sample()


if __name__ == "__main__":
    _decode()
