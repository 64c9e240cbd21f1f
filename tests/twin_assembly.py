"""The synthesized stages the twin runs in tests: synthesized the way the CDK CLI does.

`make test` synthesizes the Dev stage once (`TWIN_ASSEMBLY`, as `make dev` runs it);
a test that needs the stage with other settings synthesizes it with extra context
(`twin_assembly`), and a test that changes `infra/` itself synthesizes a copy of the app.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def synth(
    out_dir: Path,
    context: dict[str, Any] | None = None,
    app_dir: Path = REPO,
    *,
    environment: Mapping[str, str | None] | None = None,
) -> Path:
    """Run `app_dir`'s app (cdk.json's "app" command) with its output going to `out_dir`.

    The CLI runs the app with CDK_OUTDIR and CDK_CONTEXT_JSON (the keys it derives from
    cdk.json's settings, cdk.json's context, cdk.context.json, then `-c` values: here
    `context`), and CDK_DEFAULT_REGION from the AWS region settings, us-east-1 when there
    are none. `environment` adds variables, or removes those given as None:
    `{"CDK_DEFAULT_REGION": None}` synthesizes env-agnostic stacks. Returns `out_dir`.
    """
    settings = json.loads((app_dir / "cdk.json").read_text())
    merged = cli_context(settings)
    merged.update(settings.get("context", {}))
    saved = app_dir / "cdk.context.json"
    if saved.is_file():
        merged.update(json.loads(saved.read_text()))
    merged.update(context or {})

    env = dict(os.environ)
    env.setdefault(
        "CDK_DEFAULT_REGION",
        env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    env.update(
        {
            "CDK_OUTDIR": str(out_dir),
            "CDK_CONTEXT_JSON": json.dumps(merged),
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
        }
    )
    for key, value in (environment or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value

    command = shlex.split(settings["app"])
    if Path(command[0]).name.startswith("python") and not _imports_cdk(command[0], app_dir, env):
        # Without this, a half-built virtual environment fails deep inside the app.
        raise RuntimeError(
            f"{command[0]} (from {app_dir / 'cdk.json'}) cannot import aws_cdk; "
            "run `make setup` first"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        command, cwd=app_dir, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0 or not (out_dir / "manifest.json").is_file():
        raise RuntimeError(f"synth of {app_dir} failed ({done.returncode}):\n{done.stderr}")
    return out_dir


def _imports_cdk(python: str, app_dir: Path, env: Mapping[str, str]) -> bool:
    check = [python, "-c", "import aws_cdk"]
    return subprocess.run(check, cwd=app_dir, env=env, capture_output=True).returncode == 0


def cli_context(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The context keys the CDK CLI adds from cdk.json's settings (its defaults otherwise).

    Without them an app synthesizes no `aws:cdk:path` and no `aws:asset:*` metadata.
    """
    context: dict[str, Any] = {}
    if settings.get("pathMetadata", True):
        context["aws:cdk:enable-path-metadata"] = True
    if settings.get("assetMetadata", True):
        context["aws:cdk:enable-asset-metadata"] = True
    if settings.get("versionReporting", True):
        context["aws:cdk:version-reporting"] = True
    else:
        context["aws:cdk:disable-version-reporting"] = True
    if not settings.get("staging", True):
        context["aws:cdk:disable-asset-staging"] = True
    context["aws:cdk:bundling-stacks"] = settings.get("bundlingStacks", ["**"])
    context["@aws-cdk/core:failSynthOnValidationErrors"] = False
    return context


# What `make dev` adds to the Dev stage: the tiny open model on llama.cpp (see Makefile).
TWIN_STAGE = os.environ.get("TWIN_STAGE", "Dev")


def twin_context(stage: str = TWIN_STAGE) -> dict[str, str]:
    from offline.default_model import default_model_path

    model = default_model_path()
    if not (REPO / "lambda_image" / "models" / model.name).is_file():
        raise RuntimeError(f"{model.name} is not in lambda_image/models: run `make twin-synth`")
    return {f"{stage}.engine": "llamacpp", f"{stage}.modelFile": model.name}


class Assemblies:
    """Synthesized twin stages by their extra context, made once per test session."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._made: dict[str, Path] = {}

    def get(self, overrides: Mapping[str, Any] | None = None) -> Path:
        """The assembly with `overrides` (StageConfig keys, for the twin's stage)."""
        key = json.dumps(overrides or {}, sort_keys=True)
        if key not in self._made:
            given = os.environ.get("TWIN_ASSEMBLY")
            if not overrides and given:
                self._made[key] = Path(given)
            else:
                context = twin_context()
                context.update({f"{TWIN_STAGE}.{k}": v for k, v in (overrides or {}).items()})
                out = self._root / f"cdk.out.{len(self._made)}"
                self._made[key] = synth(out, context)
        return self._made[key]


# What a copy of the app needs to synthesize: the app, its config and what it deploys.
_APP_PARTS = ("app.py", "cdk.json", "infra", "lambda_image", "web_client")


def app_copy(dest: Path) -> Path:
    """A scratch copy of the app to change `infra/` or a handler in; returns its folder.

    The virtual environment is linked, not copied; model files are hard-linked (or copied).
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.gguf", "*.pllm")
    dest.mkdir(parents=True)
    for part in _APP_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=ignore)
        else:
            shutil.copy2(source, dest / part)
    for model in (REPO / "lambda_image" / "models").glob("*.gguf"):
        target = dest / "lambda_image" / "models" / model.name
        try:
            os.link(model, target)
        except OSError:
            shutil.copy2(model, target)
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` (which must be there, once) with `new` in `path`."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))
