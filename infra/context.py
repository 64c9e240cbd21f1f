"""Turn `cdk -c` context into stage configs and the optional pipeline's settings.

Pure functions over a plain mapping, so `app.py` stays a few lines and the rules are
unit-tested without synthesizing anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import STAGES, ConfigError, StageConfig, context_keys


def stage_overrides(context: Mapping[str, Any], stage_name: str) -> dict[str, Any]:
    """The overrides for one stage: `key=v` applies to every stage, `Stage.key=v` to one.

    Keys that are neither config keys nor stage-prefixed are other context (feature flags,
    the pipeline's keys) and are ignored. A stage-prefixed key that names no config field is
    passed on, so `StageConfig.with_overrides` rejects it with the list of known keys.
    """
    known = set(context_keys())
    overrides: dict[str, Any] = {key: value for key, value in context.items() if key in known}
    prefix = f"{stage_name}."
    for key, value in context.items():
        if key.startswith(prefix):
            overrides[key.removeprefix(prefix)] = value  # a stage's own value wins
    return overrides


def check_stage_prefixes(context: Mapping[str, Any]) -> None:
    """Refuse `Staging.x=1`-style keys: a typo in a stage name must not be silently ignored."""
    for key in context:
        head, dot, _ = key.partition(".")
        if dot and head[:1].isupper() and head not in STAGES:
            names = ", ".join(STAGES)
            raise ConfigError(f"unknown stage {head!r} in context key {key!r}; stages: {names}")


def stage_configs(context: Mapping[str, Any]) -> dict[str, StageConfig]:
    """Every stage's config with the context's overrides applied (each one validated)."""
    check_stage_prefixes(context)
    return {
        name: base.with_overrides(stage_overrides(context, name)) for name, base in STAGES.items()
    }


def read_local_settings(path: Path) -> dict[str, Any]:
    """The settings in `path` (a JSON object of context keys), or {} when there is none.

    Every key must be one `-c` accepts, so a misspelt key stops the synth instead of being
    ignored.
    """
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text())
    except ValueError as error:
        raise ConfigError(f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{path.name} must hold a JSON object of context keys")
    known = {*context_keys(), *PIPELINE_KEYS}
    for key in settings:
        stage, dot, name = key.partition(".")
        if not (name in context_keys() if dot and stage in STAGES else key in known):
            raise ConfigError(
                f"unknown key {key!r} in {path.name}; known keys: {', '.join(sorted(known))}"
            )
    return settings


def with_local_settings(context: Mapping[str, Any], local: Mapping[str, Any]) -> dict[str, Any]:
    """The app's context: the local settings file fills in what context (cdk.json, -c) lacks."""
    return {**local, **context}


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """Where the optional self-updating pipeline takes its source and its model from."""

    connection_arn: str
    repository: str  # owner/name
    # The folder (s3://bucket/prefix/ or https://host/path/) holding each stage's
    # `modelFile`: models are git-ignored, so the pipeline's image build fetches them.
    model_source: str
    branch: str = "main"

    def model_url(self, model_file: str) -> str:
        """Where the pipeline downloads `model_file` from."""
        return self.model_source + model_file


PIPELINE_KEYS = ("pipeline", "connectionArn", "repository", "branch", "modelSource")


def pipeline_settings(context: Mapping[str, Any]) -> PipelineSettings | None:
    """The pipeline's settings when the `pipeline` key is set and truthy, else None."""
    flag = context.get("pipeline")
    if flag is None or str(flag).strip().lower() in ("", "0", "false", "no", "off"):
        return None
    missing = [
        key for key in ("connectionArn", "repository", "modelSource") if not context.get(key)
    ]
    if missing:
        raise ConfigError(
            "-c pipeline=1 also needs " + " and ".join(f"-c {key}=..." for key in missing)
        )
    repository = str(context["repository"])
    if repository.count("/") != 1:
        raise ConfigError(f"repository must be owner/name, not {repository!r}")
    model_source = str(context["modelSource"])
    if not model_source.startswith(("s3://", "https://")) or not model_source.endswith("/"):
        raise ConfigError(
            "modelSource must be a folder URL ending in '/', s3://bucket/prefix/ or "
            f"https://host/path/, not {model_source!r}"
        )
    if model_source.startswith("s3://") and not model_source.removeprefix("s3://").strip("/"):
        raise ConfigError(f"modelSource {model_source!r} names no bucket")
    return PipelineSettings(
        connection_arn=str(context["connectionArn"]),
        repository=repository,
        model_source=model_source,
        branch=str(context.get("branch") or "main"),
    )
