"""The kill switch: turn a stage's new replies off, or on again (`make generation`).

    make generation STATE=off STAGE=Dev
    make generation STATE=on STAGE=Dev
    make generation STAGE=Dev                  # says which it is

The switch is the stage's SSM parameter (its stateless stack's `GenerationParameter`
output, found with the current AWS credentials), or `--parameter` on `--endpoint-url`
(the local twin's, which `make dev` lists). Warm routers see a flip within
llambda.generation_switch.MAX_AGE_SECONDS; no redeploy.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import boto3

from infra.names import GENERATION_OUTPUT, STATELESS, stack_name
from llambda.contract import GENERATION_OFF, GENERATION_ON


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m admin.generation", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "state", nargs="?", choices=(GENERATION_ON, GENERATION_OFF), help="omit to read it"
    )
    parser.add_argument("--stage", default="Dev", help="the stage (its stacks' prefix)")
    parser.add_argument("--parameter", help="the parameter's name (default: the stage's)")
    parser.add_argument("--endpoint-url", help="SSM's endpoint (the twin's)")
    parser.add_argument("--region", help="the AWS region (default: the profile's)")
    return parser.parse_args(argv)


def stage_parameter(cloudformation: Any, stage: str) -> str:
    """The name of the stage's kill-switch parameter, from its stateless stack's output."""
    stack = stack_name(stage, STATELESS)
    [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    for output in described.get("Outputs") or []:
        if output["OutputKey"] == GENERATION_OUTPUT:
            return str(output["OutputValue"])
    raise SystemExit(f"{stack} has no {GENERATION_OUTPUT} output; deploy it first")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    session = boto3.Session(region_name=args.region)
    name = args.parameter or stage_parameter(session.client("cloudformation"), args.stage)
    ssm = session.client("ssm", endpoint_url=args.endpoint_url)
    if args.state is None:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        print(f"generation is {value} ({name})")
        return 0
    ssm.put_parameter(Name=name, Value=args.state, Type="String", Overwrite=True)
    print(f"generation is now {args.state} ({name}); routers see it within seconds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
