"""Publish a model bundle the way the training job does (maas_core.publishing): files to S3, manifest
last, then register the version and point an alias at it. Shared by the small onnx.helper models the
tests build."""

from __future__ import annotations

from maas_core.manifest import Manifest, Task, TensorInfo
from maas_core.preprocess import PreprocessSpec
from maas_core.publishing import publish_version
from maas_core.registry import Registry
from maas_core.store import BundleStore


def publish(store: BundleStore, registry: Registry, name: str, spec: PreprocessSpec, onnx_bytes: bytes,
            labels: list[str], model_input: TensorInfo, model_output: TensorInfo, alias: str | None = "prod",
            task: Task = "binary", preprocess_json: bytes | None = None) -> Manifest:
    """Publish and register the next version of `name` (and point `alias` at it).

    `preprocess_json` replaces the spec's file as stored (e.g. to publish a spec this build cannot read);
    its SHA-256 is still recorded, so the bundle passes the integrity check.
    """
    def bundle(version: str) -> tuple[Manifest, dict[str, bytes]]:
        return _bundle(name, version, spec, onnx_bytes, labels, model_input, model_output, task, preprocess_json)

    return publish_version(store, registry, name, bundle, promote=alias)


def upload(store: BundleStore, registry: Registry, name: str, spec: PreprocessSpec, onnx_bytes: bytes,
           labels: list[str], model_input: TensorInfo, model_output: TensorInfo, task: Task = "binary",
           preprocess_json: bytes | None = None) -> Manifest:
    """The first half of a publish: reserve the next version and upload its bundle, not registered yet."""
    version = registry.next_version(name)
    return store.publish(*_bundle(name, version, spec, onnx_bytes, labels, model_input, model_output, task,
                                  preprocess_json))


def _bundle(name: str, version: str, spec: PreprocessSpec, onnx_bytes: bytes, labels: list[str],
            model_input: TensorInfo, model_output: TensorInfo, task: Task,
            preprocess_json: bytes | None) -> tuple[Manifest, dict[str, bytes]]:
    manifest = Manifest(name=name, version=version, task=task, labels=labels, input_schema=spec.input_schema(),
                        model_input=model_input, model_output=model_output)
    return manifest, {"model.onnx": onnx_bytes, "preprocess.json": preprocess_json or spec.to_json().encode()}
