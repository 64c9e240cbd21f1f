"""The one-way rules between the project's parts, checked on the source before anything runs.

The runtime ships alone in its image, so it can import nothing else of ours; `infra/`
describes the stack without running the runtime; the twin reaches the handlers only by
the handler names the synthesized template gives, never by importing them; the terminal
client talks to any deployed stage, so it stands alone (the pipeline's smoke check runs it
with only `websockets` installed). The exceptions are `llambda.contract`, the contract
between the parts, and `llambda.prices`, the prices a stage is costed at (read by the
runtime's meter, the dashboard and `make cost`): standard library only, and every part may
import them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = ("llambda", "infra", "offline", "bench", "tests", "preflight", "terminal_client", "admin")
SHARED = ("llambda.contract", "llambda.prices")

# Each part, and what of ours it may not import.
FORBIDDEN = {
    "lambda_image/llambda": {
        "infra",
        "offline",
        "bench",
        "tests",
        "preflight",
        "terminal_client",
        "admin",
    },
    "infra": {"llambda", "offline", "bench", "tests", "preflight", "terminal_client", "admin"},
    "offline": {"llambda", "infra", "bench", "tests", "preflight", "admin"},
    "terminal_client": {"llambda", "infra", "offline", "bench", "tests", "preflight", "admin"},
    # The operator's commands (API keys, the kill switch) act on a deployed stage through
    # its stores and names: never through the twin, the bench or the tests.
    "admin": {"offline", "bench", "tests", "preflight", "terminal_client"},
}


def imported_packages(source: Path) -> set[str]:
    """The top-level packages of ours a file imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name.split(".")[0] for name in names if not _is_contract(name)} & set(OURS)
    return found


def _is_contract(name: str) -> bool:
    return any(name == shared or name.startswith(shared + ".") for shared in SHARED)


@pytest.mark.parametrize("module", SHARED)
def test_the_shared_modules_import_only_the_standard_library(module):
    source = REPO / "lambda_image" / Path(*module.split(".")).with_suffix(".py")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}, modules


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
