"""AWS clients, created once per instance and shared by every invocation.

Standard retry mode with bounded attempts rides out DynamoDB throttling and transient
5xx; short timeouts keep a stuck call from holding a reply. Local endpoints come from the
SDK's standard `AWS_ENDPOINT_URL_<SERVICE>` variables (boto3 reads them itself; the
@connections endpoint is chosen here because its URL comes from each event).
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from llambda.settings import Settings

# botocore's `total_max_attempts` counts the first try too: at most 3 calls per request.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
)
MANAGEMENT_ENDPOINT_ENV = "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def dynamodb() -> Any:
    return boto3.client("dynamodb", config=CLIENT_CONFIG)


@cache
def lambda_client() -> Any:
    return boto3.client("lambda", config=CLIENT_CONFIG)


@cache
def secretsmanager() -> Any:
    return boto3.client("secretsmanager", config=CLIENT_CONFIG)


def callback_url(domain_name: str, stage: str) -> str:
    """The @connections endpoint for an event's API (or the local one when set)."""
    return os.environ.get(MANAGEMENT_ENDPOINT_ENV) or f"https://{domain_name}/{stage}"


def management_api(url: str) -> Any:
    """The @connections client for `url` (the environment's override wins)."""
    return _management_api(os.environ.get(MANAGEMENT_ENDPOINT_ENV) or url)


@cache
def _management_api(endpoint: str) -> Any:
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, config=CLIENT_CONFIG)


def read_secret(arn: str, *, json_key: str) -> str:
    """A secret's value: the plain string, or `json_key` of a JSON object."""
    value = secretsmanager().get_secret_value(SecretId=arn).get("SecretString") or ""
    value = value.strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return value
        if isinstance(data, dict):
            return str(data.get(json_key) or "").strip()
    return value
