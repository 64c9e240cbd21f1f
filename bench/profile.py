"""Flame graphs of the twin's function instances while they answer, with py-spy.

py-spy samples a running process from outside (Python and native frames), so the
functions run unchanged. Each instance is sampled for the same replies. Reading native
stacks pauses the process for each sample, so these replies are not the timed ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from offline.cloud import OfflineCloud


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def flame_graphs(
    cloud: OfflineCloud, out_dir: Path, work: Callable[[], None], *, rate: int = 250
) -> dict[str, str]:
    """Run `work` while sampling every function instance; function name → SVG path."""
    binary = py_spy()
    if binary is None:
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    samplers: dict[str, tuple[subprocess.Popen, Path]] = {}
    assert cloud.functions is not None
    for function in cloud.functions.all():
        for pid in function.pids()[:1]:
            path = out_dir / f"flame-{_short(function.spec.name)}.svg"
            samplers[function.spec.name] = (
                subprocess.Popen(
                    [
                        binary,
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        str(rate),
                        "--native",
                        "--format",
                        "flamegraph",
                        "--output",
                        str(path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                path,
            )
    try:
        work()
    finally:
        for proc, _ in samplers.values():
            proc.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        for proc, _ in samplers.values():
            proc.wait(60)
    return {name: str(path) for name, (_, path) in samplers.items() if path.exists()}


def _short(name: str) -> str:
    """ "Dev-Stateless-InferenceFunction05D34FA4-WFIH18PUZ33I" → "InferenceFunction": the
    same file name from one synth to the next."""
    parts = name.split("-")
    core = parts[2] if len(parts) >= 4 else name
    return re.sub(r"[0-9A-F]{8}$", "", core) or core


# What the reader asks about, by the frames that show it (a frame's own name and
# source file, as py-spy writes them). A sample counts once per category even when
# several matching frames are on its stack.
COSTS = {
    "engine (llama.cpp decode and tokenize)": r"^llama_(decode|tokenize) ",
    "@connections posts (boto3, on the sender thread)": r"^post \(llambda/sender\.py",
    "boto3 request building and signing": r"\(botocore/(signers|auth|serialize|endpoint)\.py",
    "JSON encode and decode": r"\(json/(encoder|decoder|__init__)\.py",
    "the watcher's polls (stop mark, lease)": r"^_run \(llambda/reply_watcher\.py",
    "the sender's waits for text": r"^_next \(llambda/sender\.py",
    # Not the decorator that wraps the whole handler: the log calls themselves.
    "logging (Powertools, logging)": (
        r"^(?!decorate )\S+ \((aws_lambda_powertools/logging|logging)/"
    ),
    "waiting for the GIL": r"^take_gil ",
}
_FRAME = re.compile(r'<g><title>([^<]*)</title><rect x="([\d.]+)%" y="\d+" width="([\d.]+)%"')


def top_costs(svg: Path) -> dict[str, float]:
    """Per category, the share of all samples (%) whose stack holds a matching frame."""
    frames = [(title, float(x), float(w)) for title, x, w in _FRAME.findall(svg.read_text())]
    shares = {}
    for category, pattern in COSTS.items():
        spans = sorted((x, x + w) for title, x, w in frames if re.search(pattern, title))
        covered, end = 0.0, -1.0
        for start, stop in spans:  # the union of the frames' widths: nested ones count once
            if stop > end:
                covered += stop - max(start, end)
                end = stop
        shares[category] = round(covered, 1)
    return shares
