"""A tiny but real ONNX classifier built with onnx.helper (no TensorFlow), published like a trained one.

Two numeric features x1, x2 (x2 optional) and a categorical `colour`; softmax over labels no/yes.
The weights make `yes` win when x1 is large, so tests can assert real outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from maas_core.manifest import Manifest, TensorInfo
from maas_core.preprocess import CategoricalFeature, NumericFeature, PreprocessSpec
from maas_core.registry import Registry
from maas_core.store import BundleStore
from maas_local.testing.bundles import publish, upload

SPEC = PreprocessSpec(features=[
    NumericFeature(name="x1", fill=0.0, center=0.0, scale=1.0),
    NumericFeature(name="x2", required=False, fill=0.0, center=0.0, scale=2.0),
    CategoricalFeature(name="colour", fill="red", categories=["blue", "red"]),
])
LABELS = ["no", "yes"]
WEIGHTS = np.array([[-2.0, 2.0], [0.0, 0.5], [0.1, -0.1], [0.0, 0.0]], np.float32)
BIAS = np.array([0.0, 0.0], np.float32)


def onnx_bytes() -> bytes:
    n = len(WEIGHTS)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["logits0"]),
         helper.make_node("Add", ["logits0", "B"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def expected_probabilities(features: np.ndarray) -> np.ndarray:
    logits = features @ WEIGHTS + BIAS
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def upload_tiny_model(store: BundleStore, registry: Registry, name: str = "tiny") -> Manifest:
    """The next version's bundle uploaded, as a training job does before it registers the version."""
    return upload(store, registry, name, SPEC, onnx_bytes(), LABELS,
                  model_input=TensorInfo(name="features", dtype="float32", shape=[None, len(WEIGHTS)]),
                  model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]))


def publish_tiny_model(store: BundleStore, registry: Registry, name: str = "tiny", alias: str | None = "prod",
                       preprocess_json: bytes | None = None) -> Manifest:
    """Given a registry and bucket, publish and register a new version (and point `alias` at it)."""
    return publish(store, registry, name, SPEC, onnx_bytes(), LABELS,
                   model_input=TensorInfo(name="features", dtype="float32", shape=[None, len(WEIGHTS)]),
                   model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]),
                   alias=alias, preprocess_json=preprocess_json)


def publish_sensitive_tiny_model(store: BundleStore, registry: Registry, sensitive: set[str]) -> Manifest:
    """The tiny model as prod, its manifest marking `sensitive` fields (the spec itself does not: the manifest
    has the last word, as a data team would mark personal fields)."""
    version = registry.next_version("tiny")
    schema = [f.model_copy(update={"sensitive": f.name in sensitive}) for f in SPEC.input_schema()]
    manifest = Manifest(name="tiny", version=version, task="binary", labels=LABELS, input_schema=schema,
                        model_input=TensorInfo(name="features", dtype="float32", shape=[None, len(WEIGHTS)]),
                        model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]))
    published = store.publish(manifest, {"model.onnx": onnx_bytes(), "preprocess.json": SPEC.to_json().encode()})
    registry.register(published)
    registry.set_alias("tiny", "prod", version)
    return published
