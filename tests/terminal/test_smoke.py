"""`python -m terminal_client.smoke` speaks through the terminal client, and imports
nothing the pipeline's smoke step does not install (it runs `pip install websockets`)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import websockets

from infra.pipeline_stack import SMOKE_PYTHONPATH
from terminal_client import smoke
from tests.terminal.fake_server import WORDS, FakeServer

REPO = Path(__file__).resolve().parents[2]
# What the smoke step has: the standard library, websockets, and the checked-out source
# (of which the terminal client uses none but itself and the protocol's contract).
ALLOWED = set(sys.stdlib_module_names) | {"websockets", "terminal_client", "llambda"}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_smoke_step_needs_only_websockets_and_the_source():
    files = sorted((REPO / "terminal_client").glob("*.py"))
    beyond = {
        f"{path.relative_to(REPO)}: {name}" for path in files for name in imported(path) - ALLOWED
    }
    assert beyond == set()
    smoke_source = (REPO / "terminal_client" / "smoke.py").read_text()
    assert "from terminal_client.client import" in smoke_source
    llambda = {
        f"{path.relative_to(REPO)}: {module}"
        for path in files
        for module in _modules(path)
        if module.split(".")[0] == "llambda" and module != "llambda.contract"
    }
    assert llambda == set()  # of the runtime, only its contract (standard library only)


def _modules(path: Path) -> set[str]:
    return {
        node.module
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
    }


def test_the_smoke_step_starts_with_only_websockets_and_its_pythonpath(tmp_path):
    # As the pipeline runs it: no site-packages but websockets, the repo as the working
    # directory, and the smoke command's PYTHONPATH.
    (tmp_path / "websockets").symlink_to(Path(websockets.__file__).parent)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{SMOKE_PYTHONPATH}{os.pathsep}{tmp_path}"}
    run = subprocess.run(
        [sys.executable, "-S", "-m", "terminal_client.smoke", "--help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout


def test_smoke_passes_on_a_whole_reply_and_prints_it(capsys):
    with FakeServer() as server:
        code = smoke.main([server.url, "--max-tokens", "8"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("reply: " + "".join(WORDS).strip())
    assert f"ok: {len(WORDS)} deltas, done reason end" in out


def test_smoke_fails_clearly_on_a_refused_handshake_and_on_a_drop(capsys):
    with FakeServer() as server:
        server.token = "s3cret"
        assert smoke.main([server.url]) == 1
        assert "smoke test FAILED: handshake refused: HTTP 401" in capsys.readouterr().err
        server.drop_after = 2
        assert smoke.main([server.url, "--token", "s3cret"]) == 1
        assert "the connection closed before `done`" in capsys.readouterr().err
    assert not [m for m in server.received if m["action"] == "attach"]  # never resumed
