"""A tiny but real ONNX text classifier built with onnx.helper (no TensorFlow), published like a trained one.

int32 token ids [n, MAX_LENGTH] -> Gather from an embedding -> mean over the sequence -> MatMul + Add
-> Softmax over negative / positive. The spec is a real TextFeature fitted on SENTENCES. Each word
of POSITIVE_WORDS embeds to (0, 3) and of NEGATIVE_WORDS to (3, 0); every other word, OOV and padding
to (0, 0). So a text's label is whichever kind of word it has more of, and a text with neither
(including empty text: all padding) gets the bias alone, which leans to "negative".
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from maas_core.manifest import Manifest, TensorInfo
from maas_core.preprocess import ColumnConfig, PreprocessSpec, SpecConfig
from maas_core.registry import Registry
from maas_core.store import BundleStore
from maas_local.testing.bundles import publish

TEXT_FIELD = "text"
MAX_LENGTH = 8
SENTENCES = [
    "I love this product, it is great",
    "Great service and good support",
    "This is awful, I hate it",
    "Bad quality and awful support",
    "The parcel arrived on Monday",
    "Good value, would buy again",
]
POSITIVE_WORDS = {"love", "great", "good"}
NEGATIVE_WORDS = {"hate", "awful", "bad"}
LABELS = ["negative", "positive"]

SPEC = PreprocessSpec.fit({TEXT_FIELD: SENTENCES},
                          SpecConfig(columns={TEXT_FIELD: ColumnConfig(kind="text", max_length=MAX_LENGTH)}))
TEXT = SPEC.text_feature
assert TEXT is not None


def _embedding() -> np.ndarray:
    e = np.zeros((TEXT.vocabulary_size, 2), np.float32)
    for i, word in enumerate(TEXT.vocabulary):
        if word in POSITIVE_WORDS:
            e[i + 2] = (0.0, 3.0)  # ids: 0 pads, 1 is OOV, word i is i + 2
        elif word in NEGATIVE_WORDS:
            e[i + 2] = (3.0, 0.0)
    return e


EMBEDDING = _embedding()
WEIGHTS = np.eye(2, dtype=np.float32)
BIAS = np.array([0.1, 0.0], np.float32)  # neutral text (no known word) leans negative


def onnx_bytes() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "tokens"], ["embedded"], axis=0),
         helper.make_node("ReduceMean", ["embedded"], ["pooled"], axes=[1], keepdims=0),
         helper.make_node("MatMul", ["pooled", "W"], ["logits0"]),
         helper.make_node("Add", ["logits0", "B"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "tiny_text",
        [helper.make_tensor_value_info("tokens", TensorProto.INT32, [None, MAX_LENGTH])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(EMBEDDING, "E"), numpy_helper.from_array(WEIGHTS, "W"),
                     numpy_helper.from_array(BIAS, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def expected_probabilities(tokens: np.ndarray) -> np.ndarray:
    """What the graph computes, in numpy, from the spec's token ids."""
    logits = EMBEDDING[tokens].mean(axis=1) @ WEIGHTS + BIAS
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def publish_text_model(store: BundleStore, registry: Registry, name: str = "sentiment",
                       alias: str | None = "prod") -> Manifest:
    """Given a registry and bucket, publish and register a new version (and point `alias` at it)."""
    return publish(store, registry, name, SPEC, onnx_bytes(), LABELS,
                   model_input=TensorInfo(name="tokens", dtype=TEXT.dtype, shape=[None, MAX_LENGTH]),
                   model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]),
                   alias=alias)
