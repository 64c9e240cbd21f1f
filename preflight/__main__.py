"""`python -m preflight`: check the account and this machine before `cdk deploy`.

    python -m preflight [--stage Dev] [-c key=value ...] [--profile NAME] [--region REGION]

The settings are the app's: cdk.json's context, then `-c` as `cdk` takes it, then
llambda.local.json for keys neither sets. Exits 1 when something would fail a deploy,
2 when the settings themselves are wrong, else 0 (warnings included).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

from infra.config import STAGES, ConfigError
from infra.context import (
    pipeline_settings,
    read_local_settings,
    stage_configs,
    with_local_settings,
)
from infra.paths import LAMBDA_IMAGE_DIR, LOCAL_SETTINGS, REPO_ROOT
from preflight.checks import Finding, Plan, Runner, read_only, run_checks, run_command

MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "--  "}


def app_context(cdk_json: dict[str, Any], cli: Sequence[str], local: dict[str, Any]) -> dict:
    """The context the app would see: cdk.json's, `-c` over it, the local file under both."""
    context = dict(cdk_json.get("context", {}))
    for item in cli:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ConfigError(f"-c takes key=value, not {item!r}")
        context[key] = value
    return with_local_settings(context, local)


def render(findings: Sequence[Finding]) -> str:
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for finding in findings:
        lines.append(f"  {MARKS[finding.status]}  {finding.check:<{width}}  {finding.message}")
        if finding.fix:
            lines.append(f"        {'':<{width}}  fix: {finding.fix}")
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    if failed:
        lines.append(f"\n{failed} problem(s) would fail a deploy: fix them, then run this again.")
    else:
        lines.append(f"\nNothing here would fail a deploy ({warned} warning(s) to read).")
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None, *, session: Any = None, run: Runner = run_command
) -> int:
    parser = argparse.ArgumentParser(prog="python -m preflight", description=__doc__)
    parser.add_argument(
        "--stage", action="append", choices=list(STAGES), help="only this stage (repeatable)"
    )
    parser.add_argument(
        "-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="as cdk -c"
    )
    parser.add_argument("--profile", help="the AWS profile (default: as the AWS CLI)")
    parser.add_argument("--region", help="the AWS region (default: as the AWS CLI)")
    args = parser.parse_args(argv)
    try:
        cdk_json = json.loads((REPO_ROOT / "cdk.json").read_text())
        context = app_context(cdk_json, args.context, read_local_settings(LOCAL_SETTINGS))
        configs = stage_configs(context)
        pipeline = pipeline_settings(context)
    except ConfigError as error:
        print(f"llambda preflight: {error}", file=sys.stderr)
        return 2
    selected = {name: configs[name] for name in (args.stage or configs)}
    if session is None:
        import boto3

        session = boto3.Session(profile_name=args.profile, region_name=args.region)
    read_only(session)
    clients = cache(session.client)
    plan = Plan(configs=selected, models_dir=LAMBDA_IMAGE_DIR / "models", pipeline=pipeline)
    findings = run_checks(clients=clients, region=session.region_name, plan=plan, run=run)
    stages = ", ".join(selected)
    print(f"llambda preflight: stages {stages}{' and the pipeline' if pipeline else ''}")
    print(render(findings))
    return 1 if any(f.status == "fail" for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
