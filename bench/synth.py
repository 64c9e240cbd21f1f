"""How long `cdk synth` takes for the whole app (both stages), with no Docker and no AWS."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import median

REPO = Path(__file__).resolve().parent.parent


def synth_once(out_dir: Path) -> float:
    env = dict(os.environ)
    # Same quiet environment `make synth` uses.
    env.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    env.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    env.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
    started = time.perf_counter()
    subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "-o", str(out_dir)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return time.perf_counter() - started


def stacks_by_stage(out_dir: Path) -> dict[str, int]:
    """Templates per stage: a CDK Stage synthesizes into `assembly-<Stage>/`."""
    stages: dict[str, int] = {}
    for assembly in sorted(out_dir.glob("assembly-*")):
        stages[assembly.name.removeprefix("assembly-")] = len(
            list(assembly.glob("*.template.json"))
        )
    if not stages:
        stages["app"] = len(list(out_dir.glob("*.template.json")))
    return stages


def measure(repeats: int) -> dict[str, Any]:
    if shutil.which("npx") is None or not (REPO / "cdk.json").is_file():
        return {"cdk_synth_s": None, "cdk_synth_note": "npx or cdk.json missing"}
    times = []
    stacks: dict[str, int] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
            times.append(synth_once(Path(tmp)))
            stacks = stacks_by_stage(Path(tmp))
    return {"cdk_synth_s": round(median(times), 2), "cdk_synth_stacks": stacks}
