"""The stack's one DynamoDB table, as the runtime sees it: a single-table design whose
partition key holds a typed id (`connection#…`, `conversation#…`), declared in
infra/constructs/connection_table.py."""

from __future__ import annotations

from botocore.exceptions import ClientError

PARTITION_KEY = "pk"


def is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
