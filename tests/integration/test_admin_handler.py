"""The admin function: alias moves and version deletes through API Gateway events."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from maas_core.settings import get_settings
from maas_local.testing.tiny_model import publish_tiny_model, upload_tiny_model
from tests.lambda_events import FakeLambdaContext, load_function, rest_event


@pytest.fixture
def admin(aws_world):
    """Given model tiny with versions 1 (prod), 2 and 3, and the admin function."""
    get_settings.cache_clear()
    for alias in ("prod", None, None):
        publish_tiny_model(aws_world.store, aws_world.registry, alias=alias)
    app = load_function("admin")
    app.registry.cache_clear()
    yield app
    get_settings.cache_clear()


def put(app, alias: str, body: Any, model: str = "tiny") -> tuple[int, dict[str, Any]]:
    resp = app.lambda_handler(rest_event("PUT", f"/v1/models/{model}/aliases/{alias}", body=body), FakeLambdaContext())
    return resp["statusCode"], json.loads(resp["body"])


def test_promote_canary_and_rollback(admin, aws_world) -> None:
    status, body = put(admin, "prod", {"version": "2", "expected_version": "1"})
    assert status == 200 and body["version"] == "2" and body["history"] == ["1"]
    status, body = put(admin, "prod", {"action": "canary", "version": "3", "weight": 0.2})
    assert status == 200 and (body["canary_version"], body["canary_weight"]) == ("3", 0.2)
    status, body = put(admin, "prod", {"action": "rollback"})
    assert status == 200 and body["version"] == "1" and "canary_version" not in body
    assert aws_world.registry.resolve_alias("tiny", "prod").version == "1"


@pytest.mark.parametrize(("body", "status", "code", "words"), [
    ({"version": "9"}, 404, "not_found", "no version '9'"),
    ({"version": "2", "expected_version": "3"}, 409, "conflict", "points at version '1', not '3'"),
    ({"action": "canary", "version": "2"}, 422, "invalid_request", "needs a weight"),
    ({"action": "canary", "version": "2", "weight": 1.5}, 422, "invalid_request", "weight"),
    # under one request in a million (and under DynamoDB's 1e-130: this one was a 500)
    ({"action": "canary", "version": "2", "weight": 3.4e-299}, 422, "invalid_request", "one request in a million"),
    ({"action": "promote"}, 422, "invalid_request", "needs a version"),
    ({"action": "rollback", "version": "2"}, 422, "invalid_request", "takes no version"),
    ({"action": "explode", "version": "2"}, 422, "invalid_request", "action"),
    ({"action": "rollback"}, 409, "conflict", "no earlier version"),
])
def test_bad_alias_moves_are_refused_and_change_nothing(admin, aws_world, body, status, code, words) -> None:
    before = aws_world.registry.resolve_alias("tiny", "prod")
    got, resp = put(admin, "prod", body)
    assert got == status and resp["error"]["code"] == code, resp
    assert words in resp["error"]["message"] + json.dumps(resp["error"]["details"])
    assert aws_world.registry.resolve_alias("tiny", "prod") == before


def test_unknown_model_is_404(admin) -> None:
    status, body = put(admin, "prod", {"version": "1"}, model="ghost")
    assert status == 404 and "ghost" in body["error"]["message"]


def test_delete_version_removes_registry_entry_and_files(admin, aws_world) -> None:
    resp = admin.lambda_handler(rest_event("DELETE", "/v1/models/tiny/versions/1"), FakeLambdaContext())
    assert resp["statusCode"] == 409 and "in use by alias(es) prod" in json.loads(resp["body"])["error"]["message"]
    resp = admin.lambda_handler(rest_event("DELETE", "/v1/models/tiny/versions/3"), FakeLambdaContext())
    assert resp["statusCode"] == 200 and json.loads(resp["body"])["files_deleted"] == 3
    left = boto3.client("s3").list_objects_v2(Bucket=aws_world.bucket, Prefix="models/tiny/3/").get("KeyCount")
    assert left == 0
    assert [v["version"] for v in aws_world.registry.describe("tiny")["versions"]] == ["2", "1"]


def delete(app, version: str) -> tuple[int, dict[str, Any]]:
    resp = app.lambda_handler(rest_event("DELETE", f"/v1/models/tiny/versions/{version}"), FakeLambdaContext())
    return resp["statusCode"], json.loads(resp["body"])


def test_files_of_a_version_being_published_are_never_deleted(admin, aws_world) -> None:
    # Given a training job that has uploaded version 4's bundle but not registered it yet
    uploaded = upload_tiny_model(aws_world.store, aws_world.registry)
    assert uploaded.version == "4"
    files = aws_world.store.bundle_objects("tiny", "4")
    # When an admin deletes version 4 meanwhile
    status, body = delete(admin, "4")
    # Then nothing is deleted, and the answer says why and how to remove a failed publish's files
    assert status == 409 and body["error"]["code"] == "conflict"
    assert "never registered: it may be being published" in body["error"]["message"]
    assert "maas delete tiny 4 --unregistered" in body["error"]["message"]
    assert aws_world.store.bundle_objects("tiny", "4") == files
    # And the job's registration then gives a whole, servable version, which deletes as any other
    aws_world.registry.register(uploaded)
    assert aws_world.store.load("tiny", "4").manifest.version == "4"
    assert delete(admin, "4") == (200, {"model": "tiny", "version": "4", "deleted": True, "files_deleted": 3,
                                        "registry_entry_deleted": True})
    assert aws_world.registry.was_deleted("tiny", "4") and not aws_world.registry.was_deleted("tiny", "3")
    assert delete(admin, "4")[0] == 404
