"""The one-way rules between the project's parts, checked on the source before anything runs.

The runtime ships alone in its image, so it can import nothing else of ours; `infra/`
describes the stack without running the runtime; the twin reaches the handlers only by
the handler names the synthesized template gives, never by importing them; the terminal
client talks to any deployed stage, so it stands alone (the pipeline's smoke check runs it
with only `websockets` installed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = ("llambda", "infra", "offline", "bench", "tests", "preflight", "terminal_client")

# Each part, and what of ours it may not import.
FORBIDDEN = {
    "lambda_image/llambda": {
        "infra",
        "offline",
        "bench",
        "tests",
        "preflight",
        "terminal_client",
    },
    "infra": {"llambda", "offline", "bench", "tests", "preflight", "terminal_client"},
    "offline": {"llambda", "infra", "bench", "tests", "preflight"},
    "terminal_client": {"llambda", "infra", "offline", "bench", "tests", "preflight"},
}


def imported_packages(source: Path) -> set[str]:
    """The top-level packages of ours a file imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(OURS)
    return found


@pytest.mark.parametrize("part", list(FORBIDDEN))
def test_a_part_imports_nothing_it_must_not(part):
    files = sorted((REPO / part).rglob("*.py"))
    assert files, part
    crossings = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in files
        for name in sorted(imported_packages(path) & FORBIDDEN[part])
    ]
    assert not crossings, crossings
