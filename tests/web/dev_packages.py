"""The browser tests' npm devDependencies (package.json, installed by `make test`'s npm ci):
read from node_modules by the tests and handed to the page under test, never shipped in
web_client/."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path

import pytest

from infra.paths import REPO_ROOT

NODE_MODULES = REPO_ROOT / "node_modules"


def _installed(package: str) -> Path:
    folder = NODE_MODULES / package
    if not (folder / "package.json").is_file():
        pytest.fail(f"{package} is not in node_modules: run `make setup` (npm ci)")
    return folder


@cache
def axe_source() -> str:
    """axe-core's browser build, to add to a page as a script."""
    return (_installed("axe-core") / "axe.min.js").read_text()


@cache
def commonmark_examples() -> list[dict]:
    """The CommonMark spec's examples as the `commonmark-spec` package extracts them, with the
    spec's → (its way to show a tab) made a tab again, as the reference runners do."""
    _installed("commonmark-spec")
    script = "process.stdout.write(JSON.stringify(require('commonmark-spec').tests))"
    out = subprocess.run(
        ["node", "-e", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [
        {**example, "markdown": example["markdown"].replace("→", "\t")}
        for example in json.loads(out)
    ]


def package_version(package: str) -> str:
    return json.loads((_installed(package) / "package.json").read_text())["version"]
