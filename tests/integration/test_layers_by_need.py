"""Layers by need: the functions that never run a model carry neither numpy nor onnxruntime.

template.yaml gives every function BaseLayer (Powertools, pydantic) and CoreLayer (maas_core), and only
the model-running ones InferenceLayer (numpy, onnxruntime). That holds only while nothing the other functions
import needs numpy: each of them is imported and called here in a fresh process where importing numpy or
onnxruntime fails, against moto.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from maas_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
MODEL_FREE = {"AdminFunction": "admin", "CaptureFunction": "capture", "MetricsFunction": "metrics",
              "TrainTriggerFunction": "train_trigger", "JobsFunction": "jobs",
              "GuardrailFunction": "guardrail"}
MODEL_RUNNING = {"PredictFunction", "PreprocessFunction", "BatchFunction", "BatchShardsFunction"}
NATIVE_ML = ("numpy", "onnxruntime")

# The child: numpy and onnxruntime poisoned before anything is imported, then every model-free handler loaded
# as Lambda loads it and called with the events it gets, against an in-process moto account.
CHILD = r"""
import json, sys
for name in ("numpy", "onnxruntime"):
    sys.modules[name] = None  # `import numpy` now raises ImportError, wherever it is
import boto3
from moto import mock_aws
from maas_core.edge.awslogs import awslogs_event
from maas_local.lambda_context import FakeLambdaContext
from maas_local.lambda_runtime import load_function
from maas_local.testing.events import rest_event
from maas_local.testing.registry_table import create_registry_table

def status(resp):
    return resp["statusCode"], json.loads(resp["body"])["error"]["code"] if resp["statusCode"] >= 400 else None

out = {}
with mock_aws():
    boto3.client("s3").create_bucket(Bucket="models")
    create_registry_table("registry")
    create_registry_table("captures")
    admin = load_function("admin")
    out["admin promote"] = status(admin.lambda_handler(
        rest_event("PUT", "/v1/models/ghost/aliases/prod", body={"version": "1"}), FakeLambdaContext()))
    out["admin bad body"] = status(admin.lambda_handler(
        rest_event("PUT", "/v1/models/ghost/aliases/prod", body={"action": "explode"}), FakeLambdaContext()))
    metrics = load_function("metrics")
    out["metrics get"] = status(metrics.lambda_handler(
        rest_event("GET", "/v1/models/ghost/metrics"), FakeLambdaContext()))
    out["metrics publish"] = sorted(metrics.lambda_handler({"action": "publish_metrics"}, FakeLambdaContext()))
    capture = load_function("capture")
    out["capture"] = capture.lambda_handler(
        awslogs_event([json.dumps({"captures": []})], log_group="/aws/lambda/predict"), FakeLambdaContext())
    jobs = load_function("jobs")
    event = rest_event("POST", "/v1/models/ghost/jobs", body={"format": "csv"})
    event["requestContext"] = {**event.get("requestContext", {}), "identity": {"apiKeyId": "key-1"}}
    out["jobs unknown model"] = status(jobs.lambda_handler(event, FakeLambdaContext()))
    guardrail = load_function("guardrail")
    out["guardrail"] = guardrail.lambda_handler({"source": "elsewhere"}, FakeLambdaContext())["outcome"]
    trigger = load_function("train_trigger")
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": "models"}, "object": {"key": "datasets/penguins/training.json"}}}]}
    out["train_trigger"] = trigger.lambda_handler(event, FakeLambdaContext())
out["loaded"] = sorted({m.split(".")[0] for m in sys.modules if sys.modules[m] is not None} & {"numpy", "onnxruntime"})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def layers_of(template: dict[str, Any], function: str) -> list[str]:
    return [layer["Ref"] for layer in template["Resources"][function]["Properties"]["Layers"]]


def test_only_the_model_running_functions_carry_the_inference_layer(template) -> None:
    """Given template.yaml and the layers' requirements,
    when we read each function's layers,
    then the model-free functions have BaseLayer + CoreLayer only, the model-running ones add InferenceLayer,
    and numpy/onnxruntime are required by layers/inference/ alone."""
    functions = {n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert functions == set(MODEL_FREE) | MODEL_RUNNING
    for name in MODEL_FREE:
        assert layers_of(template, name) == ["BaseLayer", "CoreLayer"], name
    for name in MODEL_RUNNING:
        assert layers_of(template, name) == ["BaseLayer", "InferenceLayer", "CoreLayer"], name

    def requirements(layer: str) -> set[str]:
        lines = (ROOT / "layers" / layer / "requirements.txt").read_text().splitlines()
        return {line.split(">")[0].split("[")[0].split("=")[0].strip() for line in lines if line and line[0] != "#"}

    assert requirements("inference") == set(NATIVE_ML)
    assert not requirements("base") & set(NATIVE_ML) and "aws-lambda-powertools" in requirements("base")


def test_every_function_and_layer_follows_the_architecture_parameter(template) -> None:
    """Given template.yaml,
    when we read the Architecture parameter, the function globals and every layer,
    then Architecture is x86_64 (default) or arm64, every function takes it from Globals (none overrides it),
    and every layer is built for it and declares it compatible."""
    param = template["Parameters"]["Architecture"]
    assert (param["Default"], param["AllowedValues"]) == ("x86_64", ["x86_64", "arm64"])
    ref = {"Ref": "Architecture"}
    assert template["Globals"]["Function"]["Architectures"] == [ref]
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::Serverless::Function":
            assert "Architectures" not in res["Properties"], name
        if res["Type"] == "AWS::Serverless::LayerVersion":
            assert res["Properties"]["CompatibleArchitectures"] == [ref], name
            assert res["Metadata"]["BuildArchitecture"] == ref, name


def test_model_free_handlers_import_and_answer_without_numpy_or_onnxruntime() -> None:
    """Given a fresh process in which importing numpy or onnxruntime fails,
    when the admin, metrics, capture and train-trigger handlers are loaded and called (moto),
    then each answers as it should (404 for an unknown model, 422 for a bad body, a publication, a capture
    batch, an ignored training config) and neither library was imported."""
    env = {**os.environ, "MAAS_MODEL_BUCKET": "models", "MAAS_REGISTRY_TABLE": "registry",
           "MAAS_CAPTURES_TABLE": "captures", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "POWERTOOLS_METRICS_NAMESPACE": "maas"}
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["admin promote"] == [404, "not_found"]
    assert out["admin bad body"] == [422, "invalid_request"]
    assert out["metrics get"] == [404, "not_found"]
    assert out["metrics publish"], out
    assert out["capture"] == {"lines": 1, "written": 0, "duplicates": 0, "failed": 0}
    assert out["train_trigger"] == {"started": [], "ignored": ["datasets/penguins/training.json"], "rejected": []}
    assert out["jobs unknown model"] == [404, "not_found"]
    assert out["guardrail"] == "ignored"
    assert out["loaded"] == []
