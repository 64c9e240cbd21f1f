"""Every variable the stack gives a function is one its code reads, and nothing more.

A function's code reads its environment through the settings classes its handler module
uses (lambda_image/llambda/settings.py), plus `STAGE_NAME` (the metrics' stage, read by
the observability module every handler imports) and Powertools' own `POWERTOOLS_*`.
"""

from __future__ import annotations

import importlib
import json

from infra.paths import REPO_ROOT
from llambda import observability
from llambda.settings import FunctionSettings
from offline.image import parse_dockerfile

READ_BY_EVERY_FUNCTION = {observability.STAGE_VARIABLE}


def _image_instructions() -> list:
    return parse_dockerfile((REPO_ROOT / "lambda_image" / "Dockerfile").read_text())


def _image_handler() -> str:
    [cmd] = [i for i in _image_instructions() if i.keyword == "CMD"]
    return json.loads(cmd.arguments)[0]


def _image_stream_handlers() -> list[str]:
    """The image's runtime loop's `--stream` handler (its ENTRYPOINT), which runs in the
    same function and reads its own settings."""
    entrypoints = [
        json.loads(i.arguments) for i in _image_instructions() if i.keyword == "ENTRYPOINT"
    ]
    return [e[e.index("--stream") + 1] for e in entrypoints if "--stream" in e]


def _variables_read(handler: str) -> set[str]:
    module = importlib.import_module(handler.rpartition(".")[0])
    classes = {
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, FunctionSettings)
    }
    assert classes, f"{handler} reads no settings class"
    return {variable for cls in classes for variable in cls.variables().values()}


def _our_functions(template) -> dict[str, dict]:
    """Handler → environment, for every function whose code is ours."""
    found = {}
    for resource in template.find_resources("AWS::Lambda::Function").values():
        props = resource["Properties"]
        handler = _image_handler() if props.get("PackageType") == "Image" else props["Handler"]
        if handler.startswith("llambda."):
            found[handler] = (props.get("Environment") or {}).get("Variables") or {}
    return found


def test_each_function_is_given_exactly_what_it_reads(stage, stateless):
    functions = _our_functions(stateless)
    # The authorizer is attached only where the stage requires a token.
    assert len(functions) == (4 if stage.config.require_token else 3), sorted(functions)
    for handler, environment in functions.items():
        given = {k for k in environment if not k.startswith("POWERTOOLS_")}
        read = _variables_read(handler)
        if handler == _image_handler():
            read |= {v for h in _image_stream_handlers() for v in _variables_read(h)}
        assert given == read | READ_BY_EVERY_FUNCTION, handler
