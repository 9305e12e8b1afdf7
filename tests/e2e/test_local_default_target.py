"""Workstation commands without an AWS target: `--local`, and the local stack as the default when a machine
has no AWS credentials (maas_core.aws_target), against a real moto server on a free port."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from maas_cli.main import main as maas
from maas_core import aws_target
from maas_core.aws_target import reset_maas_caches
from maas_core.manifest import Manifest
from maas_core.registry import Registry
from maas_local.stack import LocalStack
from maas_training.cli import main as maas_train
from maas_training.datasets import PENGUINS as PENGUINS_CSV

PENGUINS = str(PENGUINS_CSV)


@pytest.fixture
def environ() -> Iterator[None]:
    """The commands rewrite os.environ for their process; put it back after each test."""
    with mock.patch.dict(os.environ):
        yield
    reset_maas_caches()


@pytest.fixture
def no_aws_credentials(environ: None, tmp_path: Path) -> None:
    """Given a machine where boto3 finds no credentials and nothing sets AWS_ENDPOINT_URL."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_ENDPOINT_URL", "MAAS_MODEL_BUCKET", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        os.environ.pop(key, None)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-credentials")
    os.environ["AWS_CONFIG_FILE"] = str(tmp_path / "no-config")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance-metadata lookup either
    assert not aws_target.has_aws_credentials()


@pytest.fixture
def closed_endpoint() -> str:
    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_no_credentials_makes_maas_use_the_local_stack(
        local_stack: LocalStack, tiny_model: Manifest, no_aws_credentials: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the local stack listening where the default points, holding the tiny model
    monkeypatch.setattr(aws_target, "LOCAL_ENDPOINT", local_stack.endpoint_url)
    # When `maas models` runs with no AWS credentials and no --bucket
    os.environ["MAAS_REGISTRY_TABLE"] = local_stack.names["RegistryTable"]
    code = maas(["models", "--json"])
    out, err = capsys.readouterr()
    # Then it lists the stack's models and says where it went
    assert code == 0, err
    assert [m["name"] for m in json.loads(out)] == ["tiny"]
    assert f"no AWS credentials found, so using the local stack at {local_stack.endpoint_url}" in err
    assert os.environ["AWS_ENDPOINT_URL"] == local_stack.endpoint_url


def test_no_credentials_and_no_local_stack_is_a_clear_error(
        no_aws_credentials: None, closed_endpoint: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(aws_target, "LOCAL_ENDPOINT", closed_endpoint)
    # When either command runs with nothing to publish to
    assert maas(["models"]) == 1
    _, err = capsys.readouterr()
    assert "nothing listens there: start it with `make demo`" in err and closed_endpoint in err
    assert maas_train(["--data", PENGUINS, "--model-name", "penguins", "--target", "species"]) == 1
    _, err = capsys.readouterr()
    # Then each names the missing stack and how to get one or use AWS, before any training starts
    assert f"no AWS credentials found, so the local stack was wanted at {closed_endpoint}" in err
    assert "configure AWS credentials" in err
    assert "AWS_ENDPOINT_URL" not in os.environ


def test_explicit_local_to_a_closed_port_is_refused_even_with_credentials(
        environ: None, closed_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert maas(["--local", closed_endpoint, "models"]) == 1
    assert f"the local stack was wanted at {closed_endpoint}, but nothing listens there" in capsys.readouterr().err


@pytest.mark.parametrize("setting", ["credentials", "bucket", "endpoint"])
def test_anything_naming_aws_keeps_the_default_off(environ: None, no_aws_credentials: None, setting: str) -> None:
    # Given credentials, a named bucket or an explicit endpoint
    if setting == "credentials":
        os.environ.update(AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY="secret")
    if setting == "endpoint":
        os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1"
    before = dict(os.environ)
    # When the target is chosen
    used = aws_target.choose_target(None, bucket_given=setting == "bucket", announce=pytest.fail)
    # Then boto3's own settings stand, untouched
    assert used is None and dict(os.environ) == before


def test_maas_train_local_publishes_into_the_local_stack(
        local_stack: LocalStack, environ: None, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the running local stack, and a shell whose AWS settings point elsewhere
    os.environ.update(AWS_ENDPOINT_URL="http://127.0.0.1:1", AWS_PROFILE="production")
    # When maas-train runs with --local URL (a short real training run)
    code = maas_train(["--local", local_stack.endpoint_url, "--model", "mlp", "--data", PENGUINS,
                       "--model-name", "local-penguins",
                       "--target", "species", "--exclude", "year", "--optional", "sex", "--epochs", "3",
                       "--no-quantize", "--bucket", local_stack.names["ModelBucket"],
                       "--table", local_stack.names["RegistryTable"], "--promote", "prod"])
    out, err = capsys.readouterr()
    # Then the version is published and promoted in the local stack, and nothing went to the profile
    assert code == 0, err
    assert f"using the local stack at {local_stack.endpoint_url}" in out
    assert "AWS_PROFILE" not in os.environ
    assert Registry(local_stack.names["RegistryTable"]).resolve_alias("local-penguins", "prod").version == "1"
