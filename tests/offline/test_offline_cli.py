"""`python -m offline` as `make dev` runs it, and the smoke script against the twin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terminal_client import smoke
from tests.twin_assembly import TWIN_STAGE

REPO = Path(__file__).resolve().parents[2]


def children_of(pid: int) -> set[int]:
    """Every descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def start_cli(assembly: Path) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "offline",
            "--port",
            "0",
            "--stage",
            TWIN_STAGE,
            "--assembly",
            str(assembly),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    http_url, ws_url = proc.stdout.readline().strip(), proc.stdout.readline().strip()
    return proc, http_url, ws_url


def wait_gone(pids: set[int], timeout: float = 10) -> set[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive(pids)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=str)
def test_the_cli_prints_its_urls_serves_and_leaves_nothing_behind(how, assemblies):
    proc, http_url, ws_url = start_cli(assemblies.get())
    try:
        assert http_url.startswith("http://127.0.0.1:") and http_url.endswith("/")
        port = http_url.rsplit(":", 1)[1].rstrip("/")
        assert ws_url == f"ws://127.0.0.1:{port}/dev"
        result = smoke.main([ws_url, "--origin", http_url.rstrip("/"), "--max-tokens", "8"])
        assert result == 0
        descendants = children_of(proc.pid)
        assert len(descendants) >= 3  # moto, and at least the authorizer, router, inference
        proc.send_signal(how)
        proc.wait(20)
        assert wait_gone(descendants) == set()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_smoke_script_passes_against_the_twin(cloud, capsys):
    # No Origin, like the pipeline's smoke step: not a browser, so the allow-list lets it in.
    code = smoke.main([cloud.ws_url, "--max-tokens", "16"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("reply: ")
    assert "deltas, done reason" in out


def test_smoke_script_fails_clearly_on_a_refused_handshake(cloud, capsys):
    code = smoke.main([cloud.ws_url, "--origin", "https://evil.example"])
    assert code == 1
    assert "handshake refused: HTTP 403" in capsys.readouterr().err
