"""Shared fixtures: fake AWS credentials and a moto account holding the model bucket and registry table
(create_registry_table: maas_local.testing.registry_table)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from maas_core import aws
from maas_core.registry import Registry
from maas_core.settings import get_settings
from maas_core.store import BundleStore
from maas_local.testing.registry_table import create_registry_table

BUCKET = "test-models"
TABLE = "test-registry"


@pytest.fixture(autouse=True)
def _offline_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never reach real AWS from a test: fake credentials, a fixed region, no endpoint override; and no
    settings cached by an earlier test (each test's get_settings() reads its own environment)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    if "AWS_ENDPOINT_URL" in os.environ and not os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1"):
        monkeypatch.delenv("AWS_ENDPOINT_URL")
    aws.reset_clients()
    get_settings.cache_clear()
    yield
    aws.reset_clients()
    get_settings.cache_clear()


@dataclass
class AwsWorld:
    bucket: str
    table: str
    store: BundleStore
    registry: Registry


@pytest.fixture
def aws_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsWorld]:
    """Given a moto account with an empty model bucket and registry table, named in MAAS_* settings."""
    with mock_aws():
        aws.reset_clients()
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        create_registry_table(TABLE)
        monkeypatch.setenv("MAAS_MODEL_BUCKET", BUCKET)
        monkeypatch.setenv("MAAS_REGISTRY_TABLE", TABLE)
        yield AwsWorld(BUCKET, TABLE, BundleStore(BUCKET), Registry(TABLE))
        aws.reset_clients()
