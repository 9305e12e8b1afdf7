"""The Open Inference Protocol over HTTP, spoken by a client no one here wrote: tritonclient's HTTP client
against the local gateway, with the API key header (AuthMode ApiKey, as on AWS)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import tritonclient.http as triton

from maas_core.manifest import Manifest
from maas_core.registry import Registry
from maas_core.store import BundleStore
from maas_local.stack import LocalStack
from maas_local.testing import text_model
from maas_local.testing.tiny_model import SPEC, expected_probabilities
from tests.e2e.test_gateway_auth import KEY, serving

pytestmark = pytest.mark.e2e
HEADERS = {"x-api-key": KEY}


@pytest.fixture(scope="module")
def client(local_stack: LocalStack, tiny_model: Manifest) -> Iterator[triton.InferenceServerClient]:
    """Given the gateway with API keys on, the tiny and the text model published, and tritonclient pointed at it."""
    text_model.publish_text_model(BundleStore(local_stack.names["ModelBucket"]),
                                  Registry(local_stack.names["RegistryTable"]))
    for base in serving(local_stack, api_keys=[KEY]):
        yield triton.InferenceServerClient(urlsplit(base).netloc)


def test_server_and_model_health_and_metadata(client: triton.InferenceServerClient) -> None:
    """When tritonclient asks for health and metadata, then the server is live and ready and the model described."""
    assert client.is_server_live(headers=HEADERS) and client.is_server_ready(headers=HEADERS)
    assert client.is_model_ready("tiny", headers=HEADERS)
    assert client.is_model_ready("tiny", "1", headers=HEADERS)
    assert client.get_server_metadata(headers=HEADERS)["name"] == "maas"
    meta = client.get_model_metadata("tiny", headers=HEADERS)
    assert meta["platform"] == "onnxruntime_onnx" and [i["name"] for i in meta["inputs"]] == ["x1", "x2", "colour"]
    assert client.get_model_metadata("tiny", "1", headers=HEADERS)["versions"] == ["1"]


def test_without_the_api_key_the_client_is_refused(client: triton.InferenceServerClient) -> None:
    """When tritonclient sends no API key, then the gateway refuses it as /v1 (403) and the client raises."""
    assert not client.is_server_live()
    with pytest.raises(triton.InferenceServerException):
        client.get_model_metadata("tiny")


def field(name: str, values: list[Any], datatype: str) -> triton.InferInput:
    tensor = triton.InferInput(name, [len(values)], datatype)
    dtype = {"BYTES": np.object_, "FP32": np.float32, "FP64": np.float64}[datatype]
    tensor.set_data_from_numpy(np.array(values, dtype=dtype), binary_data=False)
    return tensor


RECORDS = [{"x1": 1.5, "x2": -2.0, "colour": "blue"}, {"x1": -3.0, "x2": 0.5, "colour": "red"}]


def tabular_inputs(records: list[dict[str, Any]]) -> list[triton.InferInput]:
    return [field("x1", [r["x1"] for r in records], "FP32"), field("x2", [r["x2"] for r in records], "FP64"),
            field("colour", [r["colour"] for r in records], "BYTES")]


def test_infer_on_the_tabular_model(client: triton.InferenceServerClient) -> None:
    """When tritonclient infers two records, then its numpy outputs are the tiny model's predictions."""
    inputs = tabular_inputs(RECORDS)
    result = client.infer("tiny", inputs, headers=HEADERS)  # no outputs named: all of them
    assert result.get_response()["model_version"] == "1"
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected_probabilities(SPEC.transform(RECORDS)),
                               atol=1e-5)
    labels = client.infer("tiny", inputs, model_version="1", headers=HEADERS,
                          outputs=[triton.InferRequestedOutput("label", binary_data=False)]).as_numpy("label")
    assert [str(v) for v in labels] == ["yes", "no"]


def test_infer_with_the_models_own_input_tensor(client: triton.InferenceServerClient) -> None:
    """When tritonclient sends the records' feature matrix as the graph's input "features" [2, 4] FP32, then the
    probabilities are the tiny model's for that matrix (the preprocessing was the caller's)."""
    features = SPEC.transform(RECORDS).astype(np.float32)
    tensor = triton.InferInput("features", list(features.shape), "FP32")
    tensor.set_data_from_numpy(features, binary_data=False)
    result = client.infer("tiny", [tensor], headers=HEADERS)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected_probabilities(features), atol=1e-5)


def test_the_explanation_output_is_json_text_per_record(client: triton.InferenceServerClient) -> None:
    """When tritonclient asks for the explanation output with the probabilities, then each element is the JSON
    of an occlusion explanation of its record: every field attributed, its output the label's probability."""
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("probabilities", "explanation")]
    result = client.infer("tiny", tabular_inputs(RECORDS), headers=HEADERS, outputs=outputs)
    explanations = [json.loads(str(v)) for v in result.as_numpy("explanation")]
    assert [e["method"] for e in explanations] == ["occlusion", "occlusion"]
    assert all(set(e["attributions"]) == {"x1", "x2", "colour"} for e in explanations)
    np.testing.assert_allclose([e["output"] for e in explanations], result.as_numpy("probabilities").max(axis=1),
                               atol=1e-5)


def test_infer_on_the_text_model(client: triton.InferenceServerClient) -> None:
    """When tritonclient sends texts as a BYTES tensor, then each is classified by its words."""
    result = client.infer("sentiment", [field(text_model.TEXT_FIELD, ["I love it, great", "awful, I hate it"],
                                              "BYTES")], headers=HEADERS)
    assert [str(v) for v in result.as_numpy("label")] == ["positive", "negative"]


def test_a_bad_request_raises_the_servers_error(client: triton.InferenceServerClient) -> None:
    """When the datatype does not fit the field, then tritonclient raises with the server's message."""
    with pytest.raises(triton.InferenceServerException, match="must be FP32"):
        client.infer("tiny", [field("x1", ["1"], "BYTES")], headers=HEADERS)


class _StageRecorder(BaseHTTPRequestHandler):
    """Answers 200 to everything and notes the path, as a stand-in for API Gateway's stage in front of /v2."""

    paths: list[str] = []

    def do_GET(self) -> None:  # http.server's name for it
        self.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_stage_prefix_in_the_url_goes_before_v2() -> None:
    """Given a url with a path after host:port, when tritonclient calls, then every path starts with it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StageRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.server_address[1]}/prod")
        assert client.is_server_live(headers=HEADERS) and client.is_model_ready("tiny", headers=HEADERS)
    finally:
        server.shutdown()
        server.server_close()
    assert _StageRecorder.paths == ["/prod/v2/health/live", "/prod/v2/models/tiny/ready"]
