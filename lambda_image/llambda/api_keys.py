"""API keys for the OpenAI-compatible door: one item per key in the stack's table
(`apikey#<sha256 of the key>`), holding its name, when it was made and its rate window.
The key itself is never stored: it is shown once when made (`make apikey`), and a request's
bearer token is hashed, looked up, and compared with the stored hash in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from llambda.table import PARTITION_KEY, ItemStore, is_conditional_failure

# What a key starts with, so a leaked one is recognisable (and a scanner can find it).
KEY_PREFIX = "llk-"
KEY_BYTES = 32
MAX_NAME_CHARS = 64
# The characters `token_urlsafe` emits; a presented key with others is refused unhashed.
KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_KEY_CHARS = 128
KEY_ID_CHARS = 12


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key as the table holds it: `key_id` (its hash's first 12 hex digits) names it in
    the CLI's listing and logs; the whole hash is the item's id, never shown."""

    name: str
    key_hash: str = field(repr=False)
    created_ms: int = 0

    @property
    def key_id(self) -> str:
        return self.key_hash[:KEY_ID_CHARS]


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once
    info: ApiKey


class RateLimited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ApiKeyStore(ItemStore):
    PREFIX = "apikey#"

    def create(self, name: str) -> NewKey:
        if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
            raise ValueError(f"a key's name is 1 to {MAX_NAME_CHARS} printable characters")
        key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
        hashed = digest(key)
        now = self._now_ms()
        self._db.put_item(
            TableName=self._table,
            Item={
                **self._key(hashed),
                "keyHash": {"S": hashed},
                "name": {"S": name},
                "createdAt": {"N": str(now)},
            },
            ConditionExpression=f"attribute_not_exists({PARTITION_KEY})",
        )
        return NewKey(key, ApiKey(name, hashed, now))

    def verify(self, presented: str | None) -> ApiKey | None:
        """The key's record, or None for a missing, malformed, unknown or revoked key."""
        if (
            not presented
            or len(presented) > MAX_KEY_CHARS
            or not presented.startswith(KEY_PREFIX)
            or not KEY_CHARS.issuperset(presented[len(KEY_PREFIX) :])
        ):
            return None
        hashed = digest(presented)
        item = self.get(hashed)
        if item is None:
            return None
        # The lookup found the item by its hash; the comparison is what admits the key,
        # and it takes the same time wherever two hashes first differ.
        stored = item.get("keyHash", {}).get("S", "")
        if not hmac.compare_digest(stored.encode(), hashed.encode()):
            return None
        return _info(item)

    def admit(self, key: ApiKey, per_minute: int) -> None:
        """Count one request against the key's minute; raise `RateLimited` past the limit.
        The count and its window live on the key's item, in one conditional update."""
        now = self._now_ms()
        window = now // 60_000
        exists = f"attribute_exists({PARTITION_KEY}) AND keyHash = :h"
        values = {":w": {"N": str(window)}, ":one": {"N": "1"}}
        for update, condition, extra in (
            (
                "SET rateCount = rateCount + :one",
                f"{exists} AND rateWindow = :w AND rateCount < :limit",
                {":limit": {"N": str(per_minute)}},
            ),
            (
                "SET rateWindow = :w, rateCount = :one",
                f"{exists} AND (attribute_not_exists(rateWindow) OR rateWindow <> :w)",
                {},
            ),
        ):
            if self._update(key, update, condition, {**values, **extra}):
                return
        raise RateLimited(max(1, 60 - (now % 60_000) // 1000))

    def _update(self, key: ApiKey, update: str, condition: str, values: dict[str, Any]) -> bool:
        hashed = key.key_hash
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(hashed),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues={**values, ":h": {"S": hashed}},
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def list_keys(self) -> list[ApiKey]:
        """Every key's record (a scan: the CLI's, never a request's)."""
        return [_info(item) for item in self._items()]

    def revoke(self, key_id: str) -> ApiKey | None:
        """Delete the key whose id is `key_id` (or the key itself); None if there is none."""
        wanted = digest(key_id) if key_id.startswith(KEY_PREFIX) else key_id
        found = [
            i
            for i in self._items()
            if len(wanted) >= KEY_ID_CHARS and i["keyHash"]["S"].startswith(wanted)
        ]
        if len(found) != 1:
            return None
        [item] = found
        self._db.delete_item(TableName=self._table, Key={PARTITION_KEY: item[PARTITION_KEY]})
        return _info(item)

    def _items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": f"begins_with({PARTITION_KEY}, :p)",
            "ExpressionAttributeValues": {":p": {"S": self.PREFIX}},
            "ConsistentRead": True,
        }
        while True:
            page = self._db.scan(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _info(item: dict[str, Any]) -> ApiKey:
    return ApiKey(
        name=item.get("name", {}).get("S", ""),
        key_hash=item["keyHash"]["S"],
        created_ms=int(item.get("createdAt", {}).get("N", "0")),
    )
