"""Turn `cdk -c` context into stage configs and the optional pipeline's settings.

Pure functions over a plain mapping, so `app.py` stays a few lines and the rules are
unit-tested without synthesizing anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.config import STAGES, StageConfig, context_keys


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
            raise ValueError(f"unknown stage {head!r} in context key {key!r}; stages: {names}")


def stage_configs(context: Mapping[str, Any]) -> dict[str, StageConfig]:
    """Every stage's config with the context's overrides applied."""
    check_stage_prefixes(context)
    return {
        name: base.with_overrides(stage_overrides(context, name)) for name, base in STAGES.items()
    }


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """Where the optional self-updating pipeline takes its source from."""

    connection_arn: str
    repository: str  # owner/name
    branch: str = "main"


PIPELINE_KEYS = ("pipeline", "connectionArn", "repository", "branch")


def pipeline_settings(context: Mapping[str, Any]) -> PipelineSettings | None:
    """The pipeline's settings when the `pipeline` key is set and truthy, else None."""
    flag = context.get("pipeline")
    if flag is None or str(flag).strip().lower() in ("", "0", "false", "no", "off"):
        return None
    missing = [key for key in ("connectionArn", "repository") if not context.get(key)]
    if missing:
        raise ValueError(
            "-c pipeline=1 also needs " + " and ".join(f"-c {key}=..." for key in missing)
        )
    repository = str(context["repository"])
    if repository.count("/") != 1:
        raise ValueError(f"repository must be owner/name, not {repository!r}")
    return PipelineSettings(
        connection_arn=str(context["connectionArn"]),
        repository=repository,
        branch=str(context.get("branch") or "main"),
    )
