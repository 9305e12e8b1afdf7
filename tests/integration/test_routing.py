"""Serving follows the registry: alias moves within the TTL, sticky canary splits, last-good fallback."""

from __future__ import annotations

import json

import boto3
import pytest

from maas_core.errors import IntegrityError
from maas_core.predictor import Predictor, canary_share
from maas_core.settings import Settings
from maas_local.testing.tiny_model import publish_tiny_model
from tests.lambda_events import FakeLambdaContext, load_function, rest_event

RECORD = {"x1": 1.0, "colour": "red"}


@pytest.fixture
def predictor(aws_world) -> Predictor:
    """Given versions 1 (prod), 2 and 3 of model tiny, and a predictor with a zero alias TTL."""
    for alias in ("prod", None, None):
        publish_tiny_model(aws_world.store, aws_world.registry, alias=alias)
    settings = Settings(model_bucket=aws_world.bucket, registry_table=aws_world.table, alias_ttl_seconds=0)
    return Predictor(settings, aws_world.registry, aws_world.store)


def test_alias_moves_reach_a_warm_predictor_after_the_ttl(aws_world) -> None:
    publish_tiny_model(aws_world.store, aws_world.registry)
    publish_tiny_model(aws_world.store, aws_world.registry, alias=None)
    cached = Predictor(Settings(model_bucket=aws_world.bucket, registry_table=aws_world.table, alias_ttl_seconds=3600),
                       aws_world.registry, aws_world.store)
    fresh = Predictor(Settings(model_bucket=aws_world.bucket, registry_table=aws_world.table, alias_ttl_seconds=0),
                      aws_world.registry, aws_world.store)
    assert cached.predict("tiny", [RECORD]).response.version == fresh.predict("tiny", [RECORD]).response.version == "1"
    aws_world.registry.set_alias("tiny", "prod", "2")
    assert fresh.predict("tiny", [RECORD]).response.version == "2"  # no redeploy, no restart
    assert cached.predict("tiny", [RECORD]).response.version == "1"  # until its TTL runs out


def test_canary_split_matches_the_weight_and_is_sticky_per_caller(predictor: Predictor, aws_world) -> None:
    aws_world.registry.set_canary("tiny", "prod", "3", 0.2)
    n = 2000
    answers = {f"caller-{i}": predictor.predict("tiny", [RECORD], routing_key=f"caller-{i}").response for i in range(n)}
    share = sum(r.version == "3" for r in answers.values()) / n
    # binomial sd at n=2000, p=0.2 is 0.009: 0.03 is over 3 sd
    assert abs(share - 0.2) < 0.03, share
    assert all(bool(r.canary) == (r.version == "3") for r in answers.values())
    for key in list(answers)[:50]:  # the same caller always lands on the same side
        assert predictor.predict("tiny", [RECORD], routing_key=key).response.version == answers[key].version
    assert all(canary_share("tiny", "prod", k) < 0.2 for k, r in answers.items() if r.version == "3")


def test_without_a_routing_key_the_split_is_random_but_weighted(predictor: Predictor, aws_world) -> None:
    aws_world.registry.set_canary("tiny", "prod", "2", 0.5)
    versions = [predictor.predict("tiny", [RECORD]).response.version for _ in range(400)]
    assert 0.4 < versions.count("2") / 400 < 0.6


def test_a_tampered_new_version_is_refused_and_the_alias_keeps_its_last_good_version(predictor: Predictor,
                                                                                     aws_world) -> None:
    assert predictor.predict("tiny", [RECORD]).response.version == "1"  # version 1 served and known good
    boto3.client("s3").put_object(Bucket=aws_world.bucket, Key="models/tiny/2/model.onnx", Body=b"tampered")
    aws_world.registry.set_alias("tiny", "prod", "2")
    answer = predictor.predict("tiny", [RECORD]).response
    assert answer.version == "1"
    assert ("tiny", "2") not in predictor.cache
    with pytest.raises(IntegrityError, match="SHA-256"):  # asking for the broken version itself is an error
        predictor.predict("tiny", [RECORD], version="2")


def test_a_cold_predictor_falls_back_along_the_alias_history(predictor: Predictor, aws_world) -> None:
    aws_world.registry.set_alias("tiny", "prod", "2")
    boto3.client("s3").put_object(Bucket=aws_world.bucket, Key="models/tiny/2/model.onnx", Body=b"tampered")
    assert predictor.predict("tiny", [RECORD]).response.version == "1"  # history: 1 came before 2


def test_the_predict_api_routes_by_header_and_says_which_version_answered(aws_world, monkeypatch) -> None:
    for alias in ("prod", None):
        publish_tiny_model(aws_world.store, aws_world.registry, alias=alias)
    aws_world.registry.set_canary("tiny", "prod", "2", 0.5)
    from maas_core.settings import get_settings

    get_settings.cache_clear()
    app = load_function("predict")
    seen = {}
    for i in range(40):
        key = f"user-{i}"
        event = rest_event("POST", "/v1/models/tiny/predict", body={"records": [RECORD]},
                           headers={"X-Maas-Routing-Key": key})


        body = json.loads(app.lambda_handler(event, FakeLambdaContext())["body"])
        seen[key] = body["version"]
        assert body.get("canary", False) == (body["version"] == "2")
        expected = "2" if canary_share("tiny", "prod", key) < 0.5 else "1"
        assert body["version"] == expected
    assert set(seen.values()) == {"1", "2"}
    get_settings.cache_clear()


def test_a_deleted_version_stops_answering_after_the_ttl(predictor: Predictor, aws_world) -> None:
    from maas_core.errors import NotFoundError

    assert predictor.predict("tiny", [RECORD], version="3").response.version == "3"
    aws_world.registry.delete_version("tiny", "3")
    with pytest.raises(NotFoundError, match="no version '3'"):
        predictor.predict("tiny", [RECORD], version="3")
