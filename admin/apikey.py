"""Create, list and revoke the OpenAI-compatible door's API keys (`make apikey`).

    make apikey ARGS="create --stage Dev --name my-editor"
    make apikey ARGS="list --stage Dev"
    make apikey ARGS="revoke --stage Dev --id 3f2a9c81d0e4"

A new key is printed once: the table keeps only its SHA-256. The table is the stage's
(found from its stateful stack with the current AWS credentials), or `--table` on
`--endpoint-url` (the local twin's DynamoDB, which `make dev` prints).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import boto3

from infra.names import STATEFUL, stack_name
from llambda.api_keys import ApiKeyStore

TABLE_TYPE = "AWS::DynamoDB::Table"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m admin.apikey", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("create", "make a key and print it (once)"),
        ("list", "list the keys: id, name, created"),
        ("revoke", "delete a key by its id (or the key itself)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--stage", default="Dev", help="the stage (its stacks' prefix)")
        command.add_argument("--table", help="the table's name (default: the stage's)")
        command.add_argument("--endpoint-url", help="DynamoDB's endpoint (the twin's)")
        command.add_argument("--region", help="the AWS region (default: the profile's)")
        if name == "create":
            command.add_argument("--name", required=True, help="who or what the key is for")
        if name == "revoke":
            command.add_argument("--id", required=True, help="the id `list` shows, or the key")
    return parser.parse_args(argv)


def stage_table(cloudformation: Any, stage: str) -> str:
    """The physical name of the stage's table, from its stateful stack."""
    stack = stack_name(stage, STATEFUL)
    resources = cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    tables = [r["PhysicalResourceId"] for r in resources if r["ResourceType"] == TABLE_TYPE]
    if len(tables) != 1:
        raise SystemExit(f"{stack} has {len(tables)} tables; name one with --table")
    return tables[0]


def store_for(args: argparse.Namespace) -> ApiKeyStore:
    session = boto3.Session(region_name=args.region)
    if args.endpoint_url and session.get_credentials() is None:
        # The twin's DynamoDB takes any credentials; a machine without AWS ones uses these.
        session = boto3.Session(
            region_name=args.region, aws_access_key_id="twin", aws_secret_access_key="twin"
        )
    table = args.table or stage_table(session.client("cloudformation"), args.stage)
    return ApiKeyStore(session.client("dynamodb", endpoint_url=args.endpoint_url), table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    store = store_for(args)
    if args.command == "create":
        made = store.create(args.name)
        print(f"key id {made.info.key_id} ({made.info.name}); the key, shown only now:")
        print(made.key)
        return 0
    if args.command == "list":
        for key in store.list_keys():
            created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.created_ms / 1000))
            print(f"{key.key_id}  {created}  {key.name}")
        return 0
    revoked = store.revoke(args.id)
    if revoked is None:
        print(f"no single key has the id {args.id!r}", file=sys.stderr)
        return 1
    print(f"revoked {revoked.key_id} ({revoked.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
