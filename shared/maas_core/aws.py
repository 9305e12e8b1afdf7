"""boto3 clients, one per process and service, with the standard retry mode (backoff on throttling/5xx).

`AWS_ENDPOINT_URL` (read by boto3 itself) points every client at a local moto server.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from maas_core.errors import DependencyAccessDeniedError, MaasError, ServiceUnavailableError

RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)
_lock = threading.Lock()  # a Session is not thread-safe while it creates clients (the clients themselves are)


@lru_cache(maxsize=1)
def session() -> boto3.session.Session:
    """One Session per process: its loader caches the endpoint, partition and retry data every client
    reads, so a cold start's second client costs ~40 ms instead of ~150 ms."""
    return boto3.session.Session()


def new_client(service: str, config: Config | None = None) -> Any:
    """A new client from the process's session (RETRY_CONFIG unless another Config is given)."""
    with _lock:
        return session().client(service, config=config or RETRY_CONFIG)


@lru_cache(maxsize=None)
def client(service: str) -> Any:
    """The process's shared client for `service`."""
    return new_client(service)


def reset_clients() -> None:
    """Forget cached clients and the session (tests that switch endpoints or moto contexts call this)."""
    client.cache_clear()
    session.cache_clear()


_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "ResourceNotFoundException"}


# S3 answers a bare 403 to HEAD; KMS denials reach us through S3 as AccessDenied
_ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "403", "Forbidden", "KMS.AccessDeniedException",
                        "UnauthorizedOperation", "InvalidClientTokenId", "UnrecognizedClientException"}


def unavailable(what: str, exc: Exception) -> MaasError:
    """A dependency failed after botocore's retries: 503, the caller may try again later. Access denied is
    not transient (a role or key policy is wrong): 500, so nobody retries in vain and the 5xx alarm fires.
    Neither message quotes AWS's text (it names ARNs, keys and principals)."""
    if isinstance(exc, ClientError) and error_code(exc) in _ACCESS_DENIED_CODES:
        return DependencyAccessDeniedError(f"{what} refused access to this service (a permissions problem on our "
                                           "side); it has been logged", [{"reason": "AccessDenied"}])
    return ServiceUnavailableError(f"{what} is unavailable, try again later", [{"reason": type(exc).__name__}])


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in _NOT_FOUND_CODES


def is_condition_failed(exc: ClientError) -> bool:
    return error_code(exc) in {"ConditionalCheckFailedException", "PreconditionFailed", "TransactionCanceledException"}

