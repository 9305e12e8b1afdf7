"""The INT8 variant: quantized by the training job, recorded in the manifest, served on request
(`?variant=int8`), hash-checked like every file, and sessions cached by content hash.

Tests marked `training` really train (seconds each): one small penguins MLP per module, wide enough
(64, 32 units) for quantization to shrink it, shared by the serving tests. Everything runs offline
in a moto account.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import onnx
import pytest

from maas_cli.main import main as maas_main
from maas_core.batch.job import run_batch
from maas_core.errors import IntegrityError, NotFoundError, UnprocessableError
from maas_core.manifest import INT8_MODEL_FILE, MANIFEST_FILE, MODEL_FILE, PREPROCESS_FILE, Manifest, sha256_hex
from maas_core.predictor import Predictor
from maas_core.registry import Registry
from maas_core.settings import Settings, get_settings
from maas_core.store import BundleStore
from maas_local.testing import tiny_model
from maas_training import quantize as q
from maas_training.cli import build_parser, config_from_args
from maas_training.config import TrainingConfig
from maas_training.datasets import penguins_config, support_tickets_config
from maas_training.job import run
from tests.integration.test_training import moto_model_account
from tests.lambda_events import assert_error, call, load_function

BUCKET = "quant-test-models"
TABLE = "quant-test-registry"
NAME = "penguins-q"
RECORDS = [
    {"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215, "body_mass_g": 5000,
     "sex": "female"},
    {"island": "Dream", "bill_length_mm": 49.0, "bill_depth_mm": 19.0, "flipper_length_mm": 196, "body_mass_g": 3800},
    {"island": "Torgersen", "bill_length_mm": 38.0, "bill_depth_mm": 18.5, "flipper_length_mm": 185,
     "body_mass_g": 3500, "sex": "male"},
]


@dataclass
class World:
    bucket: str
    table: str
    store: BundleStore
    registry: Registry

    def config(self, **overrides: Any) -> TrainingConfig:
        return penguins_config(**{"bucket": self.bucket, "table": self.table, "model_name": NAME,
                                  "hidden_units": [64, 32], "epochs": 15, **overrides})

    def keys(self, prefix: str) -> list[str]:
        resp = boto3.client("s3").list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in resp.get("Contents", []))

    def predictor(self, store: BundleStore | None = None) -> Predictor:
        return Predictor(Settings(model_bucket=self.bucket, registry_table=self.table), self.registry,
                         store or self.store)

    def copy_version(self, name: str, version: str) -> str:
        """Publish the same bundle bytes again as the next version of `name` (identical model files)."""
        bundle = self.store.load(name, version)
        new = self.registry.next_version(name)
        manifest = bundle.manifest.model_copy(update={"version": new, "files": {}})
        self.registry.register(self.store.publish(manifest, bundle.files))
        return new


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """Given one moto account for the module, with the model bucket and the registry table."""
    with moto_model_account(BUCKET, TABLE):
        yield World(BUCKET, TABLE, BundleStore(BUCKET), Registry(TABLE))


@dataclass
class Trained:
    manifest: Manifest
    progress: list[str]


@pytest.fixture(scope="module")
def trained(world: World) -> Trained:
    """Given a penguins MLP trained with quantization on (the default) and promoted to `prod`: version 1."""
    lines: list[str] = []
    manifest = run(world.config(promote="prod"), progress=lines.append)
    assert manifest.version == "1"
    return Trained(manifest, lines)


@pytest.fixture
def handler(world: World, trained: Trained) -> Iterator[Any]:
    """Given the predict function with a fresh process state, pointed at the moto world."""
    get_settings.cache_clear()
    yield load_function("predict")
    get_settings.cache_clear()


class RecordingS3:
    """A boto3 S3 client that remembers which keys were read."""

    def __init__(self) -> None:
        self.client = boto3.client("s3")
        self.gets: list[str] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.gets.append(kwargs["Key"])
        return self.client.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def probabilities(body: dict[str, Any]) -> np.ndarray:
    return np.array([list(p["probabilities"].values()) for p in body["predictions"]])


# --- the training job ---------------------------------------------------------------------------------


@pytest.mark.training
def test_int8_variant_is_published_with_its_hash_size_metrics_and_parity(world: World, trained: Trained) -> None:
    m = trained.manifest
    assert set(m.variants) == {"float", "int8"}
    flt, int8 = m.variants["float"], m.variants["int8"]
    assert (flt.file, int8.file) == (MODEL_FILE, INT8_MODEL_FILE)
    prefix = f"models/{NAME}/1/"
    assert prefix + INT8_MODEL_FILE in world.keys(prefix)
    stored = Manifest.model_validate_json(
        boto3.client("s3").get_object(Bucket=world.bucket, Key=prefix + MANIFEST_FILE)["Body"].read())
    assert stored.variants == m.variants
    for variant in (flt, int8):
        body = boto3.client("s3").get_object(Bucket=world.bucket, Key=prefix + variant.file)["Body"].read()
        assert (variant.sha256, variant.size) == (sha256_hex(body), len(body))
        assert (stored.files[variant.file].sha256, stored.files[variant.file].size) == (variant.sha256, variant.size)
    assert int8.size < flt.size  # the point of it: 64x32 float weights become int8
    assert flt.metrics == m.metrics and flt.parity is None
    assert set(int8.metrics) == set(m.metrics)
    assert abs(int8.metrics["accuracy"] - m.metrics["accuracy"]) <= 0.02
    assert set(int8.parity or {}) == {"max_abs_diff", "label_agreement"}
    assert 0 < int8.parity["max_abs_diff"] < 0.1 and int8.parity["label_agreement"] >= 0.95
    ops = {n.op_type for n in onnx.load_from_string(body).graph.node}
    assert "MatMulInteger" in ops and "MatMul" not in ops  # every Dense layer really runs on int8 weights
    assert m.training["quantization"]["int8"]["published"] is True
    assert any(line.startswith("INT8 variant:") and "label_agreement" in line for line in trained.progress)


@pytest.mark.training
def test_an_int8_variant_beyond_the_tolerance_is_not_published(world: World) -> None:
    lines: list[str] = []
    # a negative tolerance demands that INT8 beats float by a whole point of accuracy: impossible
    m = run(world.config(model_name="penguins-strict", epochs=3, quantize={"max_metric_drop": -1.0}),
            progress=lines.append)
    assert set(m.variants) == {"float"} and INT8_MODEL_FILE not in m.files
    assert world.keys("models/penguins-strict/1/" + INT8_MODEL_FILE) == []
    record = m.training["quantization"]["int8"]
    assert record["published"] is False and "tolerance -1" in record["reason"]
    assert any(line.startswith("INT8 variant not published: holdout accuracy") for line in lines)
    with pytest.raises(NotFoundError, match="model 'penguins-strict' version '1' has no 'int8' variant"):
        world.predictor().predict("penguins-strict", RECORDS, version="1", variant="int8")
    assert world.predictor().predict("penguins-strict", RECORDS, version="1").response.variant == "float"


@pytest.mark.training
def test_a_text_model_gets_a_quantized_lstm_served_on_raw_text(world: World) -> None:
    m = run(support_tickets_config(bucket=world.bucket, table=world.table, model_name="tickets-q", epochs=4,
                                   quantize={"max_metric_drop": 1.0}), progress=lambda line: None)
    assert set(m.variants) == {"float", "int8"} and m.variants["int8"].size < m.variants["float"].size / 2
    int8_bytes = world.store.load("tickets-q", "1", only=[INT8_MODEL_FILE]).files[INT8_MODEL_FILE]
    assert "DynamicQuantizeLSTM" in {n.op_type for n in onnx.load_from_string(int8_bytes).graph.node}
    answer = world.predictor().predict("tickets-q", ["my card was charged twice", {"text": "¿dónde está mi paquete?"}],
                                       version="1", variant="int8").response
    assert answer.variant == "int8" and all(p.label in m.labels for p in answer.predictions)


def test_quantization_can_be_turned_off_in_a_config_file_or_with_a_flag(tmp_path: Path) -> None:
    assert penguins_config().quantize.enabled is True and penguins_config().quantize.max_metric_drop == 0.02
    config = tmp_path / "train.yaml"
    config.write_text("data: penguins.csv\nmodel_name: p\ntarget: species\nquantize: {max_metric_drop: 0.05}\n")
    from_file = config_from_args(build_parser().parse_args(["--config", str(config)]))
    assert (from_file.quantize.enabled, from_file.quantize.max_metric_drop) == (True, 0.05)
    off = config_from_args(build_parser().parse_args(["--config", str(config), "--no-quantize"]))
    assert off.quantize.enabled is False
    assert TrainingConfig(data=Path("x.csv"), model_name="p", target="t", quantize=False).quantize.enabled is False


# --- the quantization step alone (no training) ---------------------------------------------------------


def test_quantizing_a_helper_built_model_loads_and_matches_float() -> None:
    x = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    y = tiny_model.expected_probabilities(x).argmax(axis=1)
    outcome = q.quantize_variant(tiny_model.onnx_bytes(), x, y, "multiclass")
    assert outcome.published and outcome.reason is None
    assert outcome.float_metrics["accuracy"] == 1.0 and outcome.metrics["accuracy"] >= 0.98
    assert outcome.parity["max_abs_diff"] < 0.05 and outcome.parity["label_agreement"] >= 0.98


def test_a_quantized_model_that_does_not_load_is_not_published(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q, "quantize", lambda float_bytes: b"\x08\x07not an onnx graph")
    x = np.zeros((3, 4), np.float32)
    outcome = q.quantize_variant(tiny_model.onnx_bytes(), x, np.zeros(3, np.int64), "multiclass")
    assert outcome.onnx_bytes is None and not outcome.published
    assert outcome.reason and "cannot load or run the quantized model" in outcome.reason
    variants, files, record = q.build_variants(True, 0.02, tiny_model.onnx_bytes(), x, np.zeros(3, np.int64),
                                               "multiclass", {"accuracy": 1.0}, progress=lambda line: None)
    assert set(variants) == {"float"} and files == {} and record["int8"]["published"] is False


# --- serving ------------------------------------------------------------------------------------------


@pytest.mark.training
def test_predict_serves_float_by_default_and_int8_on_request(handler: Any, trained: Trained) -> None:
    path = f"/v1/models/{NAME}/predict"
    status, default = call(handler, "POST", path, body={"records": RECORDS})
    assert status == 200, default
    assert (default["version"], default["variant"]) == ("1", "float")
    status, int8 = call(handler, "POST", path, body={"records": RECORDS}, query={"variant": "int8"})
    assert status == 200, int8
    assert (int8["version"], int8["variant"], int8["alias"]) == ("1", "int8", "prod")
    assert [p["label"] for p in int8["predictions"]] == [p["label"] for p in default["predictions"]]
    diff = np.abs(probabilities(int8) - probabilities(default)).max()
    assert 0 < diff <= trained.manifest.variants["int8"].parity["max_abs_diff"] + 0.05  # a different model answered
    _, explicit_float = call(handler, "POST", path, body={"records": RECORDS}, query={"variant": "float"})
    assert explicit_float["variant"] == "float"
    assert probabilities(explicit_float) == pytest.approx(probabilities(default))


@pytest.mark.training
def test_an_unknown_variant_is_a_422_naming_the_allowed_ones(handler: Any) -> None:
    status, body = call(handler, "POST", f"/v1/models/{NAME}/predict", body={"records": RECORDS},
                        query={"variant": "fp16"})
    assert status == 422
    assert_error(body, "unprocessable", "fp16", "float", "int8")


def test_a_version_without_an_int8_variant_is_a_clear_404(world: World) -> None:
    tiny_model.publish_tiny_model(world.store, world.registry, name="tiny-q")  # an older manifest: no variants
    get_settings.cache_clear()
    app = load_function("predict")
    path = "/v1/models/tiny-q/predict"
    record = {"x1": 1.5, "colour": "blue"}
    status, body = call(app, "POST", path, body={"records": [record]}, query={"variant": "int8"})
    assert status == 404
    assert_error(body, "not_found", "'tiny-q'", "version '1'", "no 'int8' variant", "float")
    status, body = call(app, "POST", path, body={"records": [record]})
    assert status == 200 and body["variant"] == "float"  # manifests without variants serve float as before


@pytest.mark.training
def test_only_the_requested_variant_is_downloaded(world: World, trained: Trained) -> None:
    s3 = RecordingS3()
    p = world.predictor(BundleStore(world.bucket, s3=s3))
    p.load(NAME, "1")
    prefix = f"models/{NAME}/1/"
    assert sorted(s3.gets) == sorted(prefix + f for f in (MANIFEST_FILE, MODEL_FILE, PREPROCESS_FILE))
    s3.gets.clear()
    assert p.load(NAME, "1", "int8").variant == "int8"
    assert sorted(s3.gets) == sorted(prefix + f for f in (INT8_MODEL_FILE, PREPROCESS_FILE))  # the manifest is known
    s3.gets.clear()
    p.load(NAME, "1", "int8")
    assert s3.gets == []  # warm


@pytest.mark.training
def test_a_tampered_int8_file_is_refused_and_not_cached_while_float_keeps_working(world: World,
                                                                                 trained: Trained) -> None:
    version = world.copy_version(NAME, "1")
    boto3.client("s3").put_object(Bucket=world.bucket, Key=f"models/{NAME}/{version}/{INT8_MODEL_FILE}",
                                  Body=world.store.load(NAME, "1", only=[MODEL_FILE]).files[MODEL_FILE])
    p = world.predictor()
    with pytest.raises(IntegrityError, match=f"{INT8_MODEL_FILE} does not match its manifest SHA-256"):
        p.predict(NAME, RECORDS, version=version, variant="int8")
    assert (NAME, version, "int8") not in p.cache
    answer = p.predict(NAME, RECORDS, version=version).response
    assert (answer.version, answer.variant) == (version, "float")
    assert (NAME, version, "float") in p.cache
    with pytest.raises(IntegrityError):  # still refused, not served from a cache
        p.predict(NAME, RECORDS, version=version, variant="int8")
    with pytest.raises(UnprocessableError, match="unknown variant 'INT8': use one of float, int8"):
        p.predict(NAME, RECORDS, version=version, variant="INT8")


@pytest.mark.training
def test_versions_with_identical_model_bytes_share_one_cached_session(world: World, trained: Trained) -> None:
    twin = world.copy_version(NAME, "1")
    p = world.predictor()
    first, second = p.load(NAME, "1"), p.load(NAME, twin)
    assert first.session is second.session and p.cache.session_count == 1
    assert (first.manifest.version, second.manifest.version) == ("1", twin)  # each keeps its own manifest
    first_int8, second_int8 = p.load(NAME, "1", "int8"), p.load(NAME, twin, "int8")
    assert first_int8.session is second_int8.session and first_int8.session is not first.session
    assert p.cache.session_count == 2
    twin_label = p.predict(NAME, RECORDS, version=twin).response.predictions[0].label
    assert twin_label == p.predict(NAME, RECORDS, version="1").response.predictions[0].label


@pytest.mark.training
def test_the_session_cache_stays_within_its_size(world: World, trained: Trained) -> None:
    p = Predictor(Settings(model_bucket=world.bucket, registry_table=world.table, model_cache_size=1),
                  world.registry, world.store)
    p.load(NAME, "1")
    p.load(NAME, "1", "int8")
    assert p.cache.session_count == 1
    assert (NAME, "1", "int8") in p.cache and (NAME, "1", "float") not in p.cache


@pytest.mark.training
def test_a_batch_file_can_ask_for_the_int8_variant(world: World, trained: Trained) -> None:
    key = f"batch/input/{NAME}/int8.jsonl"
    lines = "".join(json.dumps(r) + "\n" for r in RECORDS)
    boto3.client("s3").put_object(Bucket=world.bucket, Key=key, Body=lines.encode(), Metadata={"maas-variant": "int8"})
    result = run_batch(world.bucket, key, world.predictor())
    assert (result.status, result.predicted, result.version) == ("done", 3, "1")
    head = boto3.client("s3").head_object(Bucket=world.bucket, Key=result.predictions_key)
    assert head["Metadata"]["maas-model-variant"] == "int8"


@pytest.mark.training
def test_maas_show_prints_the_variants_with_sizes_and_metrics(world: World, trained: Trained,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert maas_main(["--bucket", world.bucket, "--table", world.table, "show", NAME, "--version", "1"]) == 0
    out, err = capsys.readouterr()
    assert set(json.loads(out)["variants"]) == {"float", "int8"}  # stdout stays one JSON document
    int8 = trained.manifest.variants["int8"]
    assert "VARIANT" in err and f"{INT8_MODEL_FILE}  {int8.size / 1024:.1f} KB" in err
    assert "label_agreement=" in err and "accuracy=" in err
