"""boto3 clients, one per process and service, with the standard retry mode (backoff on throttling/5xx).

`AWS_ENDPOINT_URL` (read by boto3 itself) points every client at a local moto server.
"""

from __future__ import annotations

import threading
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from maas_core.errors import DependencyAccessDeniedError, MaasError, ServiceUnavailableError

if TYPE_CHECKING:  # the boto3 stubs type each service's client for mypy; nothing is imported at run time
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)
_lock = threading.Lock()  # a Session is not thread-safe while it creates clients (the clients themselves are)


@lru_cache(maxsize=1)
def session() -> boto3.session.Session:
    """One Session per process: its loader caches the endpoint, partition and retry data every client
    reads, so a cold start's second client costs ~40 ms instead of ~150 ms."""
    return boto3.session.Session()


@overload
def new_client(service: Literal["s3"], config: Config | None = None) -> S3Client: ...
@overload
def new_client(service: Literal["dynamodb"], config: Config | None = None) -> DynamoDBClient: ...
@overload
def new_client(service: Literal["batch"], config: Config | None = None) -> BatchClient: ...
@overload
def new_client(service: Literal["cloudformation"], config: Config | None = None) -> CloudFormationClient: ...
@overload
def new_client(service: Literal["cloudwatch"], config: Config | None = None) -> CloudWatchClient: ...
def new_client(service: str, config: Config | None = None) -> Any:
    """A new client from the process's session (RETRY_CONFIG unless another Config is given)."""
    with _lock:
        return session().client(service, config=config or RETRY_CONFIG)  # type: ignore[call-overload]


@overload
def client(service: Literal["s3"]) -> S3Client: ...
@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["batch"]) -> BatchClient: ...
@overload
def client(service: Literal["cloudformation"]) -> CloudFormationClient: ...
@overload
def client(service: Literal["events"]) -> Any: ...  # no stubs installed for EventBridge
@overload
def client(service: Literal["cloudwatch"]) -> CloudWatchClient: ...
def client(service: str) -> Any:
    """The process's shared client for `service`."""
    return _shared_client(service)


@cache
def _shared_client(service: str) -> Any:
    return new_client(service)  # type: ignore[call-overload]


@cache
def presigning_s3() -> S3Client:
    """An S3 client for presigned URLs and POSTs, signed with Signature Version 4 (what SSE-KMS objects ask)."""
    return new_client("s3", RETRY_CONFIG.merge(Config(signature_version="s3v4")))


def reset_clients() -> None:
    """Forget cached clients and the session (tests that switch endpoints or moto contexts call this)."""
    _shared_client.cache_clear()
    presigning_s3.cache_clear()
    session.cache_clear()


_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "ResourceNotFoundException"}


# S3 answers a bare 403 to HEAD; KMS denials reach us through S3 as AccessDenied
_ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "403", "Forbidden", "KMS.AccessDeniedException",
                        "UnauthorizedOperation", "InvalidClientTokenId", "UnrecognizedClientException"}


def head_object_or_none(s3: Any, bucket: str, key: str, what: str) -> dict[str, Any] | None:
    """HEAD of an object, None when it does not exist; another failure is `unavailable(what)`.

    S3 answers a missing key with 403 instead of 404 unless the caller may list the bucket, and a role whose
    listing is limited to some prefixes may get either: so a denied HEAD asks the listing whether the key is
    there (`is_listed`), and only a key that is there makes the denial stand."""
    try:
        try:
            head: dict[str, Any] = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc) or (is_access_denied(exc) and not is_listed(s3, bucket, key)):
                return None
            raise
    except (ClientError, BotoCoreError) as exc:
        raise unavailable(what, exc) from exc
    return head


def is_listed(s3: Any, bucket: str, key: str) -> bool:
    """Whether the bucket's listing holds exactly `key` (one ListObjectsV2 of at most one key)."""
    contents = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    return any(obj["Key"] == key for obj in contents)


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


def is_access_denied(exc: ClientError) -> bool:
    return error_code(exc) in _ACCESS_DENIED_CODES


def is_condition_failed(exc: ClientError) -> bool:
    return error_code(exc) in {"ConditionalCheckFailedException", "PreconditionFailed", "TransactionCanceledException"}

