"""A missing S3 key may come back as 403: S3 answers 404 only to a caller allowed to list the bucket, and the
functions' roles may list only some prefixes. maas_core.aws.head_object_or_none asks the listing before it
believes a denial (moto enforces no IAM, so the denial is injected on the client's own event hooks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from maas_core import aws
from maas_core.errors import DependencyAccessDeniedError, ServiceUnavailableError
from tests.conftest import BUCKET, AwsWorld

KEY = "batch/input/penguins/jobs/0123.csv"


def _denied(params: dict[str, Any], **kwargs: Any) -> None:
    raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                      "HeadObject")


@pytest.fixture
def denying_s3(aws_world: AwsWorld) -> Iterator[Any]:
    """Given an S3 client whose HEADs are all refused with 403, as S3 refuses a caller it will not tell."""
    s3 = aws.client("s3")
    s3.meta.events.register("before-parameter-build.s3.HeadObject", _denied)
    yield s3
    s3.meta.events.unregister("before-parameter-build.s3.HeadObject", _denied)


def test_a_denied_head_of_a_key_that_is_not_listed_is_a_missing_key(denying_s3: Any) -> None:
    """When the key does not exist, Then the HEAD is None (the caller's 'not there yet'), not an error."""
    assert aws.head_object_or_none(denying_s3, BUCKET, KEY, "the job's input file") is None
    boto3.client("s3").put_object(Bucket=BUCKET, Key=KEY + ".other", Body=b"x")  # a longer key is not this one
    assert aws.head_object_or_none(denying_s3, BUCKET, KEY, "the job's input file") is None


def test_a_denied_head_of_a_key_that_is_listed_stays_denied(denying_s3: Any) -> None:
    """When the key exists, Then the denial stands: a 500 naming a permissions problem, never a 'missing'."""
    boto3.client("s3").put_object(Bucket=BUCKET, Key=KEY, Body=b"x")
    with pytest.raises(DependencyAccessDeniedError, match="refused access"):
        aws.head_object_or_none(denying_s3, BUCKET, KEY, "the job's input file")


def test_a_listing_that_fails_too_is_the_dependency_failing(denying_s3: Any) -> None:
    """When the listing is throttled as well, Then it is a 503 naming what was being read."""
    def throttled(params: dict[str, Any], **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce your request rate"}}, "ListObjectsV2")

    denying_s3.meta.events.register("before-parameter-build.s3.ListObjectsV2", throttled)
    try:
        with pytest.raises(ServiceUnavailableError, match="the job's input file is unavailable"):
            aws.head_object_or_none(denying_s3, BUCKET, KEY, "the job's input file")
    finally:
        denying_s3.meta.events.unregister("before-parameter-build.s3.ListObjectsV2", throttled)
