"""The connection store: one DynamoDB item per live WebSocket connection, written at
`$connect` and deleted at `$disconnect` (its TTL removes any the gateway forgot). The
conversation a connection is attached to is recorded on the conversation's item
(llambda/conversations.py), since a conversation outlives its connections."""

from __future__ import annotations

from llambda.table import ItemStore


class ConnectionStore(ItemStore):
    PREFIX = "connection#"

    def put(self, connection_id: str, *, source_ip: str, origin: str, ttl_seconds: int) -> None:
        now = self._now_ms()
        self._db.put_item(
            TableName=self._table,
            Item={
                **self._key(connection_id),
                "connectedAt": {"N": str(now)},
                "expiresAt": {"N": str(now // 1000 + ttl_seconds)},
                "sourceIp": {"S": source_ip},
                "origin": {"S": origin},
            },
        )

    def delete(self, connection_id: str) -> None:
        self._db.delete_item(TableName=self._table, Key=self._key(connection_id))
