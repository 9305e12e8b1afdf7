"""Bundle store (S3) and registry (DynamoDB) against moto."""

from __future__ import annotations

import boto3
import pytest

from maas_core.errors import BadRequestError, ConflictError, IntegrityError, NotFoundError
from maas_core.manifest import Manifest, TensorInfo, sha256_hex
from maas_core.preprocess import PreprocessSpec, SpecConfig


def make_manifest(name: str = "iris", version: str = "1") -> Manifest:
    spec = PreprocessSpec.fit({"x": ["1", "2"]}, SpecConfig.simple(numeric=["x"]))
    return Manifest(
        name=name, version=version, task="binary", labels=["no", "yes"], input_schema=spec.input_schema(),
        model_input=TensorInfo(name="features", dtype="float32", shape=[None, 1]),
        model_output=TensorInfo(name="outputs", dtype="float32", shape=[None, 1]),
    )


FILES = {"model.onnx": b"\x08\x07onnx-bytes", "preprocess.json": b'{"format_version": 1, "features": []}'}


def test_publish_records_sha256_of_every_file_and_load_verifies(aws_world) -> None:
    published = aws_world.store.publish(make_manifest(), FILES)
    assert {k: v.sha256 for k, v in published.files.items()} == {k: sha256_hex(v) for k, v in FILES.items()}
    bundle = aws_world.store.load("iris", "1")
    assert bundle.files == FILES and bundle.manifest == published


def test_a_published_version_cannot_be_overwritten(aws_world) -> None:
    aws_world.store.publish(make_manifest(), FILES)
    with pytest.raises(ConflictError, match="already published"):
        aws_world.store.publish(make_manifest(), {"model.onnx": b"other"})
    assert aws_world.store.load("iris", "1").files == FILES


def test_a_tampered_file_is_refused(aws_world) -> None:
    aws_world.store.publish(make_manifest(), FILES)
    boto3.client("s3").put_object(Bucket=aws_world.bucket, Key="models/iris/1/model.onnx", Body=b"evil")
    with pytest.raises(IntegrityError, match="does not match its manifest SHA-256") as err:
        aws_world.store.load("iris", "1")
    assert err.value.details[0]["file"] == "model.onnx"


def test_a_missing_bundle_is_404(aws_world) -> None:
    with pytest.raises(NotFoundError, match="'nope' version '3'"):
        aws_world.store.load("nope", "3")


def test_versions_are_sequential_and_registered_once(aws_world) -> None:
    reg = aws_world.registry
    assert [reg.next_version("iris") for _ in range(3)] == ["1", "2", "3"]
    reg.register(make_manifest(version="1"))
    with pytest.raises(ConflictError, match="already registered"):
        reg.register(make_manifest(version="1"))
    assert reg.get_version("iris", "1")["task"] == "binary"


def test_alias_points_at_a_version_and_moves_conditionally(aws_world) -> None:
    reg = aws_world.registry
    for v in ("1", "2"):
        reg.next_version("iris")
        reg.register(make_manifest(version=v))
    first = reg.set_alias("iris", "prod", "1")
    assert reg.resolve_alias("iris", "prod").version == "1"
    moved = reg.set_alias("iris", "prod", "2", expected_version="1")
    assert moved.version == "2" and moved.revision == first.revision + 1
    with pytest.raises(ConflictError, match="points at version '2', not '1'"):
        reg.set_alias("iris", "prod", "1", expected_version="1")
    assert reg.resolve_alias("iris", "prod").version == "2"  # unchanged by the failed move


def test_unknown_model_version_and_alias_are_404s_that_say_which(aws_world) -> None:
    reg = aws_world.registry
    with pytest.raises(NotFoundError, match="model 'ghost' was not found"):
        reg.resolve_alias("ghost", "prod")
    reg.next_version("iris")
    reg.register(make_manifest())
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        reg.resolve_alias("iris", "staging")
    with pytest.raises(NotFoundError, match="no version '9'"):
        reg.get_version("iris", "9")
    with pytest.raises(NotFoundError):
        reg.set_alias("iris", "prod", "9")


def test_names_that_are_not_plain_are_rejected(aws_world) -> None:
    with pytest.raises(BadRequestError, match="invalid model"):
        aws_world.registry.resolve_alias("../etc", "prod")


def test_list_and_describe(aws_world) -> None:
    reg = aws_world.registry
    for name in ("iris", "wine"):
        reg.next_version(name)
        reg.register(make_manifest(name=name))
    reg.set_alias("iris", "prod", "1")
    models = reg.list_models()
    assert [m["name"] for m in models] == ["iris", "wine"]
    assert models[0]["aliases"] == {"prod": "1"} and models[0]["versions"] == 1
    info = reg.describe("iris")
    assert info["versions"][0]["version"] == "1" and info["aliases"]["prod"]["version"] == "1"


def test_serving_loads_only_the_files_it_needs(aws_world) -> None:
    files = {**FILES, "report_roc_curve.png": b"\x89PNG big picture"}
    aws_world.store.publish(make_manifest(), files)
    bundle = aws_world.store.load("iris", "1", only=("model.onnx", "preprocess.json"))
    assert set(bundle.files) == {"model.onnx", "preprocess.json"}
    with pytest.raises(IntegrityError, match="lists no missing.bin"):
        aws_world.store.load("iris", "1", only=("model.onnx", "missing.bin"))
