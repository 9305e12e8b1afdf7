"""boto3 clients, one per process and service, with the standard retry mode (backoff on throttling/5xx).

`AWS_ENDPOINT_URL` (read by boto3 itself) points every client at a local moto server.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from maas_core.errors import ServiceUnavailableError

RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)


@lru_cache(maxsize=None)
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=RETRY_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints or moto contexts call this)."""
    client.cache_clear()


_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "ResourceNotFoundException"}


def unavailable(what: str, exc: Exception) -> ServiceUnavailableError:
    """A dependency failed after botocore's retries: the caller may try again later."""
    return ServiceUnavailableError(f"{what} is unavailable, try again later", [{"reason": type(exc).__name__}])


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in _NOT_FOUND_CODES


def is_condition_failed(exc: ClientError) -> bool:
    return error_code(exc) in {"ConditionalCheckFailedException", "PreconditionFailed", "TransactionCanceledException"}

