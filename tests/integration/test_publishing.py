"""maas_core.publishing: the one path by which a version comes to exist (training job and `maas register`),
against moto, with faults injected into the real boto3 calls to see what a half-way failure leaves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from maas_core.errors import BadRequestError, ConflictError, MaasError
from maas_core.manifest import MANIFEST_FILE, Manifest, TensorInfo
from maas_core.publishing import publish_version
from maas_core.store import bundle_prefix
from maas_local.testing.tiny_model import LABELS, SPEC, WEIGHTS, onnx_bytes
from tests.conftest import AwsWorld
from tests.integration.test_fault_injection import Faults, install, new_injector

MODEL_INPUT = TensorInfo(name="features", dtype="float32", shape=[None, len(WEIGHTS)])
MODEL_OUTPUT = TensorInfo(name="probabilities", dtype="float32", shape=[None, 2])


def tiny_bundle(version: str) -> tuple[Manifest, dict[str, bytes]]:
    manifest = Manifest(name="tiny", version=version, task="binary", labels=LABELS, input_schema=SPEC.input_schema(),
                        model_input=MODEL_INPUT, model_output=MODEL_OUTPUT)
    return manifest, {"model.onnx": onnx_bytes(), "preprocess.json": SPEC.to_json().encode()}


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch, aws_world: AwsWorld) -> Iterator[Faults]:
    injector = new_injector(monkeypatch)
    install(injector)
    yield injector
    injector.clear()


def keys(world: AwsWorld) -> list[str]:
    listed = world.store.s3.list_objects_v2(Bucket=world.bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def registered(world: AwsWorld) -> list[str]:
    models = world.registry.list_models()
    return [v["version"] for v in world.registry.describe("tiny")["versions"]] if models else []


def test_a_version_is_reserved_published_registered_and_promoted_in_that_order(aws_world: AwsWorld) -> None:
    """Given an empty registry and bucket,
    when a bundle is published with promote="prod",
    then the builder is handed the reserved number, the bundle's manifest lists its files' hashes, the version
    is registered, prod names it, and progress tells of the publication before the promotion."""
    asked: list[str] = []
    lines: list[str] = []

    def bundle(version: str) -> tuple[Manifest, dict[str, bytes]]:
        asked.append(version)
        return tiny_bundle(version)

    published = publish_version(aws_world.store, aws_world.registry, "tiny", bundle, promote="prod",
                                progress=lines.append)
    assert asked == ["1"] and published.version == "1"
    assert set(published.files) == {"model.onnx", "preprocess.json"}
    assert aws_world.store.load_manifest("tiny", "1") == published
    assert registered(aws_world) == ["1"]
    assert aws_world.registry.resolve_alias("tiny", "prod").version == "1"
    assert lines == [f"published tiny version 1 to s3://{aws_world.bucket}/{bundle_prefix('tiny', '1')}",
                     "alias 'prod' of tiny -> version 1"]


def test_a_bad_alias_is_refused_before_a_version_number_is_reserved(aws_world: AwsWorld) -> None:
    """Given an alias that is not a plain name,
    when a bundle is published with it,
    then it is a 400 before anything is written: the builder is never called, and the next publication
    still gets version 1."""
    def never(version: str) -> tuple[Manifest, dict[str, bytes]]:
        raise AssertionError("the bundle must not be built")

    with pytest.raises(BadRequestError, match="invalid alias"):
        publish_version(aws_world.store, aws_world.registry, "tiny", never, promote="prod\n")
    assert aws_world.registry.list_models() == [] and keys(aws_world) == []
    assert publish_version(aws_world.store, aws_world.registry, "tiny", tiny_bundle).version == "1"


def test_a_bundle_that_cannot_be_built_burns_its_number_and_writes_nothing_else(aws_world: AwsWorld) -> None:
    """Given a builder that fails (e.g. a manifest that does not validate),
    when a bundle is published,
    then the error comes through, no file is written and no version registered, and the number it was
    given is not handed out again."""
    def broken(version: str) -> tuple[Manifest, dict[str, bytes]]:
        raise ValueError("no manifest")

    with pytest.raises(ValueError, match="no manifest"):
        publish_version(aws_world.store, aws_world.registry, "tiny", broken)
    assert keys(aws_world) == [] and registered(aws_world) == []
    assert publish_version(aws_world.store, aws_world.registry, "tiny", tiny_bundle).version == "2"


def test_a_failed_upload_leaves_no_manifest_and_registers_nothing(aws_world: AwsWorld, faults: Faults) -> None:
    """Given S3 refusing the manifest's upload (the files went up),
    when a bundle is published with promote="prod",
    then it fails naming the model bucket, the files are there without a manifest (an unfinished upload
    nobody serves), nothing is registered and no alias is written."""
    faults.inject("s3.PutObject", "denied", when=lambda request: request.url.endswith(MANIFEST_FILE))
    with pytest.raises(MaasError) as info:
        publish_version(aws_world.store, aws_world.registry, "tiny", tiny_bundle, promote="prod")
    assert "the model bucket" in info.value.message
    prefix = bundle_prefix("tiny", "1")
    assert keys(aws_world) == [f"{prefix}model.onnx", f"{prefix}preprocess.json"]
    assert registered(aws_world) == [] and aws_world.registry.aliases("tiny") == []


def test_a_version_already_published_under_the_number_is_a_conflict_not_an_overwrite(aws_world: AwsWorld) -> None:
    """Given a bundle already in the bucket under the number the registry hands out next,
    when a bundle is published,
    then it is a 409, the bundle in the bucket is the earlier one, and nothing is registered."""
    earlier, files = tiny_bundle("1")
    aws_world.store.publish(earlier.model_copy(update={"metrics": {"accuracy": 0.5}}), files)
    with pytest.raises(ConflictError, match="already published"):
        publish_version(aws_world.store, aws_world.registry, "tiny", tiny_bundle, promote="prod")
    assert aws_world.store.load_manifest("tiny", "1").metrics == {"accuracy": 0.5}
    assert registered(aws_world) == []


def test_a_failed_registration_leaves_the_bundle_unlisted_and_unpromoted(aws_world: AwsWorld, faults: Faults) -> None:
    """Given DynamoDB refusing the version's put,
    when a bundle is published with promote="prod",
    then it fails, the bundle is in the bucket, the registry does not list the version and no alias names it."""
    faults.inject("dynamodb.PutItem", "denied")
    with pytest.raises(MaasError):
        publish_version(aws_world.store, aws_world.registry, "tiny", tiny_bundle, promote="prod")
    faults.clear()
    assert f"{bundle_prefix('tiny', '1')}{MANIFEST_FILE}" in keys(aws_world)
    assert registered(aws_world) == [] and aws_world.registry.aliases("tiny") == []


def test_a_failed_promotion_leaves_the_version_registered(aws_world: AwsWorld, faults: Faults) -> None:
    """Given DynamoDB refusing the alias transaction,
    when a bundle is published with promote="prod",
    then it fails after the version is registered (progress said so): the version is listed and
    servable by number, and prod names nothing."""
    lines: list[str] = []
    faults.inject("dynamodb.TransactWriteItems", "denied")
    with pytest.raises(MaasError):
        publish_version(aws_world.store, aws_world.registry, "tiny", tiny_bundle, promote="prod",
                        progress=lines.append)
    faults.clear()
    assert registered(aws_world) == ["1"] and aws_world.registry.aliases("tiny") == []
    assert [line.split(" to ")[0] for line in lines] == ["published tiny version 1"]
