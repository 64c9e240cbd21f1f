"""AWS clients and the per-instance object each handler builds its dependencies into.

Standard retry mode with bounded attempts rides out DynamoDB throttling and transient
5xx; short timeouts keep a stuck call from holding a reply. Local endpoints come from the
SDK's standard `AWS_ENDPOINT_URL_<SERVICE>` variables (boto3 reads them itself; the
@connections endpoint is chosen here because its URL comes from each event).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from botocore.config import Config

from llambda.cost_meter import METER
from llambda.sender import connection_poster

T = TypeVar("T")

# botocore's `total_max_attempts` counts the first try too: at most 3 calls per request.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
)
MANAGEMENT_ENDPOINT_ENV = "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"
# A rotated secret is read again within this many seconds; until then warm invocations
# reuse the value (a failed read is not kept).
SECRET_MAX_AGE_SECONDS = 300


class PerInstance(Generic[T]):
    """Built at first use and kept for the instance's life, so warm invocations reuse its
    clients and caches. Each handler module holds one, built from its environment."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    def reset(self) -> None:
        """Forget the built object: the next `get` builds it again from the environment."""
        with self._lock:
            self._value = None


def dynamodb() -> Any:
    return METER.instrument(boto3.client("dynamodb", config=CLIENT_CONFIG))


def lambda_client() -> Any:
    return boto3.client("lambda", config=CLIENT_CONFIG)


def ssm() -> SSMProvider:
    return SSMProvider(boto3_client=boto3.client("ssm", config=CLIENT_CONFIG))


def secrets() -> SecretsProvider:
    client = METER.instrument(boto3.client("secretsmanager", config=CLIENT_CONFIG))
    return SecretsProvider(boto3_client=client)


def read_secret(provider: SecretsProvider, arn: str, *, json_key: str) -> str:
    """A secret's value: the plain string, or `json_key` of a JSON object."""
    value = str(provider.get(arn, max_age=SECRET_MAX_AGE_SECONDS) or "").strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return value
        if isinstance(data, dict):
            return str(data.get(json_key) or "").strip()
    return value


def callback_url(domain_name: str, stage: str) -> str:
    """The @connections endpoint for an event's API (or the local one when set)."""
    return os.environ.get(MANAGEMENT_ENDPOINT_ENV) or f"https://{domain_name}/{stage}"


class ManagementApis:
    """@connections clients, one per endpoint (an API stage), reused across invocations."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, url: str) -> Any:
        """The client for `url` (the environment's override wins)."""
        endpoint = os.environ.get(MANAGEMENT_ENDPOINT_ENV) or url
        with self._lock:
            if endpoint not in self._clients:
                self._clients[endpoint] = METER.instrument(
                    boto3.client(
                        "apigatewaymanagementapi", endpoint_url=endpoint, config=CLIENT_CONFIG
                    )
                )
            return self._clients[endpoint]

    def poster(self, url: str, connection_id: str) -> Callable[[bytes], None]:
        """`post(data)` to one connection of the API stage at `url`."""
        return connection_poster(self.client(url), connection_id)
