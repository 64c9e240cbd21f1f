"""The stack's one DynamoDB table, as the runtime sees it: a single-table design whose
partition key holds a typed id (`conversation#…`), declared in
infra/constructs/conversation_table.py; its key and TTL attribute are the contract's."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from llambda.contract import TABLE_PARTITION_KEY, TABLE_TTL_ATTRIBUTE

PARTITION_KEY = TABLE_PARTITION_KEY
TTL_ATTRIBUTE = TABLE_TTL_ATTRIBUTE


def now_ms() -> int:
    return int(time.time() * 1000)


class ItemStore:
    """One kind of item in the table, its ids behind `PREFIX`; a low-level boto3 DynamoDB
    client passed in, and a clock a test may move."""

    PREFIX = ""

    def __init__(
        self, client: Any, table_name: str, *, clock_ms: Callable[[], int] = now_ms
    ) -> None:
        self._db = client
        self._table = table_name
        self._now_ms = clock_ms

    def _key(self, item_id: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": self.PREFIX + item_id}}

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The raw item (consistent read), or None."""
        answer = self._db.get_item(
            TableName=self._table, Key=self._key(item_id), ConsistentRead=True
        )
        return answer.get("Item")


def is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
