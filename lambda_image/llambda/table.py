"""The stack's one DynamoDB table, as the runtime sees it: a single-table design whose
partition key holds a typed id (`conversation#…`), declared in
infra/constructs/conversation_table.py; its key and TTL attribute are the contract's."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from llambda.contract import TABLE_PARTITION_KEY, TABLE_TTL_ATTRIBUTE

PARTITION_KEY = TABLE_PARTITION_KEY
TTL_ATTRIBUTE = TABLE_TTL_ATTRIBUTE


_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def now_ms() -> int:
    return int(time.time() * 1000)


def attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values as DynamoDB attribute values (boto3's own `TypeSerializer`): an item to
    put, a key, or an update's `ExpressionAttributeValues`."""
    return {name: _SERIALIZER.serialize(value) for name, value in values.items()}


def plain(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """An item's attribute values as Python values (boto3's `TypeDeserializer`: a number
    is a `Decimal`); an empty dict for None."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in (item or {}).items()}


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
        return attributes({PARTITION_KEY: self.PREFIX + item_id})

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The raw item, as DynamoDB holds it (consistent read), or None."""
        answer = self._db.get_item(
            TableName=self._table, Key=self._key(item_id), ConsistentRead=True
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def read(self, item_id: str) -> dict[str, Any] | None:
        """The item's values (see `plain`), or None."""
        item = self.get(item_id)
        return None if item is None else plain(item)


def is_conditional_failure(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
