"""Cold start parts: handler import, engine load, and what the image adds to its base."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import median
from infra.config import DEV

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "lambda_image" / "requirements.txt"
MODEL_SUFFIXES = (".gguf", ".pllm", ".bin", ".safetensors")

HANDLERS = {
    "inference": "llambda.handlers.inference",
    "router": "llambda.handlers.router",
}


def handler_environment(model_path: str) -> dict[str, str]:
    """What Lambda gives the functions (infra.config), with the local model, on-demand."""
    env = dict(os.environ)
    env.update(DEV.inference_environment(table_name="BenchTable", access_key_secret_arn=None))
    env.update(
        DEV.router_environment(table_name="BenchTable", inference_function="BenchInference:live")
    )
    env.update(
        {
            "ENGINE": "llamacpp",
            "MODEL_PATH": model_path,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"),
            "AWS_REGION": env.get("AWS_REGION", "us-east-1"),
            "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "bench"),
            "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "bench"),
            "PYTHONDONTWRITEBYTECODE": "0",
        }
    )
    return env


_IMPORT_SNIPPET = """
import sys, time
t = time.perf_counter()
import {module}
print(round((time.perf_counter() - t) * 1000, 3))
"""


def _snippet_ms(code: str, env: dict[str, str], timeout: float) -> float:
    """Run `code` in a fresh interpreter; it prints the milliseconds it measured last."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    return float(out.stdout.strip().splitlines()[-1])


def import_ms(module: str, env: dict[str, str]) -> float:
    """Milliseconds to import `module` in a fresh interpreter (interpreter start excluded)."""
    return _snippet_ms(_IMPORT_SNIPPET.format(module=module), env, timeout=120)


def slowest_imports(module: str, env: dict[str, str], top: int = 5) -> list[dict[str, Any]]:
    """The packages that take longest to import, from `python -X importtime`: each
    package's largest cumulative time (its outermost import)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    packages: dict[str, float] = {}
    pattern = re.compile(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*(\S+)")
    for line in out.stderr.splitlines():
        m = pattern.match(line)
        if m:
            name = m.group(2).split(".")[0]
            packages[name] = max(packages.get(name, 0.0), int(m.group(1)) / 1000)
    ranked = sorted(packages.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [{"package": name, "ms": round(ms, 1)} for name, ms in ranked]


_LOAD_SNIPPET = """
import time
t = time.perf_counter()
from llambda.engines import load_engine
engine = load_engine("llamacpp", {path!r}, None)
print(round((time.perf_counter() - t) * 1000, 3))
"""


def engine_load_ms(model_path: str, env: dict[str, str]) -> float:
    """Milliseconds for `load_engine` in a fresh interpreter (engine imports included)."""
    return _snippet_ms(_LOAD_SNIPPET.format(path=model_path), env, timeout=300)


def folder_bytes(root: Path, *, exclude_suffixes: tuple[str, ...] = MODEL_SUFFIXES) -> int:
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix not in exclude_suffixes:
            total += path.stat().st_size
    return total


def image_added_size(requirements: Path = REQUIREMENTS) -> dict[str, Any]:
    """Install the image's requirements into an empty folder and measure it, model excluded.

    Uses the pip cache, so only a first run downloads from PyPI.
    """
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        target = Path(tmp) / "site"
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-warn-script-location",
                "--target",
                str(target),
                "-r",
                str(requirements),
            ],
            check=True,
            timeout=1800,
            capture_output=True,
        )
        seconds = time.perf_counter() - started
        by_package: dict[str, int] = {}
        for child in target.iterdir():
            if child.name.endswith((".dist-info", "__pycache__")) or child.name == "bin":
                continue
            size = folder_bytes(child) if child.is_dir() else child.stat().st_size
            key = child.name.removesuffix(".py").split(".")[0]
            if key == "lib":  # llama-cpp-python puts the ggml/llama shared libraries here
                key = "lib (llama.cpp shared libraries)"
            by_package[key] = by_package.get(key, 0) + size
        total = folder_bytes(target)
    top = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:6]
    return {
        "image_added_mb": round(total / 1e6, 1),
        "image_largest_packages_mb": {name: round(size / 1e6, 1) for name, size in top},
        "image_install_s": round(seconds, 1),
    }


def measure(model_path: str, repeats: int, *, with_image: bool = True) -> dict[str, Any]:
    env = handler_environment(model_path)
    result: dict[str, Any] = {}
    for name, module in HANDLERS.items():
        times = [import_ms(module, env) for _ in range(repeats)]
        result[f"{name}_import_ms"] = round(median(times), 1)
        result[f"{name}_slowest_imports"] = slowest_imports(module, env)
    result["engine_load_ms"] = round(
        median([engine_load_ms(model_path, env) for _ in range(repeats)]), 1
    )
    if with_image:
        result.update(image_added_size())
    return result


if __name__ == "__main__":
    from offline.default_model import default_model_path

    print(json.dumps(measure(str(default_model_path()), 3), indent=2))
