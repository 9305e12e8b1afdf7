"""Hostile version ids: one canonical form, checked at every entry.

A version is what `Registry.next_version` mints: a whole number from 1 up, in ASCII digits, without
leading zeros (at most 18 digits). Anything else ("01", " 1", "1.0", a full-width or Arabic-Indic digit,
which str.isdigit() and int() accept) is a 400 `invalid_version` before anything is read or written:
"01" once reached the registry as version 1 but the alias check as "01", and deleting it unregistered
the version prod pointed at.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from maas_cli.main import main as maas
from maas_core.batch import BatchFileError, run_batch
from maas_core.batch.job import requested_model
from maas_core.errors import MaasError
from maas_core.predictor import Predictor
from maas_core.registry import check_version
from maas_core.settings import Settings, get_settings
from maas_core.store import bundle_prefix
from maas_local.testing.tiny_model import publish_tiny_model
from tests.lambda_events import assert_error, call, load_function

HOSTILE = ["01", "00", "0", "-1", "1.0", " 1", "1 ", "1\n", "+1", "\uff11", "\u0663", "1e3", "0x1", "1_0",
           "1" * 100, "1" + "0" * 18, ""]
CANONICAL = ["1", "2", "10", "907", "9" * 18]
EXPECTED_FORM = "whole numbers without leading zeros"
GOOD = {"x1": 1.5, "x2": -2, "colour": "blue"}


def assert_invalid_version(status: int, body: dict[str, Any], value: str) -> None:
    assert status == 400, (value, status, body)
    assert_error(body, "invalid_version", EXPECTED_FORM)


@pytest.fixture
def world(aws_world, monkeypatch):
    """Given model tiny with version 1 (alias prod) and version 2 (no alias), and fresh function state."""
    get_settings.cache_clear()
    publish_tiny_model(aws_world.store, aws_world.registry, alias="prod")
    publish_tiny_model(aws_world.store, aws_world.registry, alias=None)
    yield aws_world
    get_settings.cache_clear()


def snapshot(world) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was: table items and bucket keys."""
    items = boto3.client("dynamodb").scan(TableName=world.table)["Items"]
    keys = boto3.client("s3").list_objects_v2(Bucket=world.bucket).get("Contents", [])
    return sorted(json.dumps(i, sort_keys=True) for i in items), sorted((k["Key"], k["ETag"]) for k in keys)


# --- the validator ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", CANONICAL)
def test_canonical_versions_pass_unchanged(value: str) -> None:
    assert check_version(value) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_every_other_string_is_a_400_saying_the_expected_form(value: str) -> None:
    # Given a version string that is not canonical, When it is checked, Then a 400 invalid_version
    # names the field and the form expected, and quotes at most a short prefix of the value
    with pytest.raises(MaasError) as err:
        check_version(value)
    assert (err.value.status, err.value.code) == (400, "invalid_version")
    assert EXPECTED_FORM in err.value.message and "e.g. 3" in err.value.message
    assert err.value.details[0]["field"] == "version"
    assert len(err.value.message) < 200


def test_non_strings_are_refused_too() -> None:
    for value in (1, None, 1.0, b"1"):
        with pytest.raises(MaasError) as err:
            check_version(value)  # type: ignore[arg-type]
        assert err.value.code == "invalid_version"


# --- the reported data loss, end to end through the admin function ---------------------------------


def test_delete_of_01_no_longer_unregisters_the_version_prod_serves(world) -> None:
    """Given prod -> 1 and the admin function.
    When an admin deletes version "01", then "1", then a fresh predict process serves prod:
    Then "01" is refused at the first step (nothing changes), "1" is refused as in use by prod, and prod
    still answers with version 1 and its files."""
    admin = load_function("admin")
    admin.registry.cache_clear()
    before = snapshot(world)
    status, body = call(admin, "DELETE", "/v1/models/tiny/versions/01")
    assert_invalid_version(status, body, "01")
    assert snapshot(world) == before
    assert world.registry.get_version("tiny", "1")["version"] == "1"

    status, body = call(admin, "DELETE", "/v1/models/tiny/versions/1")
    assert status == 409 and "in use by alias(es) prod" in body["error"]["message"]
    assert snapshot(world) == before

    predict = load_function("predict")  # a fresh process: no cached alias or model
    status, body = call(predict, "POST", "/v1/models/tiny/predict", body={"records": [GOOD]})
    assert status == 200 and (body["version"], body["alias"]) == ("1", "prod"), body


def test_an_alias_cannot_be_pointed_at_02(world) -> None:
    """Given version 2, When staging is PUT to "02", Then 400 and no staging alias exists."""
    admin = load_function("admin")
    admin.registry.cache_clear()
    status, body = call(admin, "PUT", "/v1/models/tiny/aliases/staging", body={"version": "02"})
    assert_invalid_version(status, body, "02")
    assert [a.alias for a in world.registry.aliases("tiny")] == ["prod"]


# --- every entry point, every hostile string ------------------------------------------------------


def test_admin_alias_moves_refuse_each_hostile_version(world) -> None:
    """Given prod -> 1, When the alias is moved with a hostile version, expected_version or canary version,
    Then each is a 400 invalid_version and the registry is unchanged."""
    admin = load_function("admin")
    admin.registry.cache_clear()
    before = snapshot(world)
    for value in HOSTILE:
        for body in ({"version": value}, {"version": "2", "expected_version": value},
                     {"action": "canary", "version": value, "weight": 0.1},
                     {"action": "canary", "version": "2", "weight": 0.1, "expected_version": value},
                     {"action": "rollback", "expected_version": value}):
            status, resp = call(admin, "PUT", "/v1/models/tiny/aliases/prod", body=body)
            assert_invalid_version(status, resp, repr(body))
    assert snapshot(world) == before


def test_admin_delete_refuses_each_hostile_version(world) -> None:
    admin = load_function("admin")
    admin.registry.cache_clear()
    before = snapshot(world)
    for value in HOSTILE:
        status, body = call(admin, "DELETE", f"/v1/models/tiny/versions/{value}")
        if value == "":  # "/versions/" names no version at all: no such route
            assert status == 404 and body["error"]["code"] == "route_not_found"
            continue
        if value.endswith("\n"):  # Powertools' route regex ends in `$`: a trailing newline is cut off before
            continue              # the handler sees the path parameter (it gets the canonical "1")
        assert_invalid_version(status, body, value)
    assert snapshot(world) == before


@pytest.mark.parametrize("function", ["predict", "preprocess"])
def test_version_query_parameter_refuses_each_hostile_version(world, function: str) -> None:
    app = load_function(function)
    for value in HOSTILE:
        status, body = call(app, "POST", f"/v1/models/tiny/{function}", body={"records": [GOOD]},
                            query={"version": value})
        assert_invalid_version(status, body, value)
    status, body = call(app, "POST", f"/v1/models/tiny/{function}", body={"records": [GOOD]}, query={"version": "2"})
    assert status == 200 and body["version"] == "2"


def test_metrics_version_query_parameter_refuses_each_hostile_version(world) -> None:
    app = load_function("metrics")
    for value in HOSTILE:
        status, body = call(app, "GET", "/v1/models/tiny/metrics", query={"version": value})
        assert_invalid_version(status, body, value)


def test_predictor_route_refuses_before_reading_the_registry(world) -> None:
    """The core check: Predictor.route (predict, preprocess, batch) refuses without a registry call."""
    class NoRegistry:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the registry was asked ({name}) about an invalid version")

    predictor = Predictor(Settings(), NoRegistry(), world.store)  # type: ignore[arg-type]
    for value in HOSTILE:
        with pytest.raises(MaasError) as err:
            predictor.route("tiny", version=value)
        assert err.value.code == "invalid_version", value


def test_registry_and_store_methods_refuse_each_hostile_version(world) -> None:
    """Any caller of the core (training job, CLI, tests) gets the same 400, before any AWS call."""
    reg, store = world.registry, world.store
    manifest = world.store.load_manifest("tiny", "2")
    calls = {
        "get_version": lambda v: reg.get_version("tiny", v),
        "was_deleted": lambda v: reg.was_deleted("tiny", v),
        "check_unaliased": lambda v: reg.check_unaliased("tiny", v),
        "delete_version": lambda v: reg.delete_version("tiny", v),
        "set_alias": lambda v: reg.set_alias("tiny", "prod", v),
        "set_alias expected": lambda v: reg.set_alias("tiny", "prod", "2", expected_version=v),
        "set_canary": lambda v: reg.set_canary("tiny", "prod", v, 0.1),
        "rollback expected": lambda v: reg.rollback("tiny", "prod", expected_version=v),
        "register": lambda v: reg.register(manifest.model_copy(update={"version": v})),
        "bundle_prefix": lambda v: bundle_prefix("tiny", v),
        "load_manifest": lambda v: store.load_manifest("tiny", v),
        "bundle_objects": lambda v: store.bundle_objects("tiny", v),
        "delete_bundle": lambda v: store.delete_bundle("tiny", v),
        "publish": lambda v: store.publish(manifest.model_copy(update={"version": v}), {"model.onnx": b"x"}),
    }
    before = snapshot(world)
    for what, fn in calls.items():
        for value in HOSTILE:
            with pytest.raises(MaasError) as err:
                fn(value)
            assert err.value.code == "invalid_version", (what, value)
    assert snapshot(world) == before


# --- the CLI ---------------------------------------------------------------------------------------


def run_cli(world, capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = maas(["--bucket", world.bucket, "--table", world.table, *args])
    return code, capsys.readouterr().err


def test_cli_commands_refuse_each_hostile_version(world, capsys) -> None:
    """Given prod -> 1, When a `maas` command names a hostile version, Then it exits 1 saying the expected
    form, and nothing changes (delete --yes included)."""
    before = snapshot(world)
    for value in HOSTILE:
        for args in (["show", "tiny", "--version", value], ["promote", "tiny", "prod", value],
                     ["promote", "tiny", "prod", "2", "--expect", value],
                     ["canary", "tiny", "prod", value, "--weight", "0.1"],
                     ["rollback", "tiny", "prod", "--expect", value],
                     ["delete", "tiny", value, "--yes"], ["delete", "tiny", value, "--yes", "--unregistered"],
                     ["report", "tiny", "--version", value, "--out", "/dev/null"]):
            code, err = run_cli(world, capsys, *args)
            assert code == 1 and EXPECTED_FORM in err, (args, code, err)
    assert snapshot(world) == before


# --- batch metadata ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [v for v in HOSTILE if v.strip() and v.strip() == v])
def test_batch_metadata_version_is_checked(value: str) -> None:
    # S3 metadata is an HTTP header: S3 drops surrounding whitespace, and an empty value means "not given"
    with pytest.raises(MaasError) as err:
        requested_model({"maas-version": value})
    assert err.value.code == "invalid_version"
    assert EXPECTED_FORM in err.value.message and err.value.details[0]["field"] == "maas-version"


def test_a_batch_file_asking_for_version_01_fails_with_a_report(world) -> None:
    """Given a file whose metadata asks for maas-version 01, When the batch job runs, Then the file fails
    with invalid_version (report written, no predictions), not predicted by version 1 under the name 01."""
    key = "batch/input/tiny/pinned.jsonl"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=world.bucket, Key=key, Body=json.dumps(GOOD).encode() + b"\n",
                  Metadata={"maas-version": "01"})
    with pytest.raises(BatchFileError) as err:
        run_batch(world.bucket, key, Predictor(Settings(), world.registry, world.store))
    assert err.value.code == "invalid_version"
    report = json.loads(s3.get_object(Bucket=world.bucket,
                                      Key="batch/failed/tiny/pinned.jsonl.error.json")["Body"].read())
    assert report["error"] == "invalid_version" and EXPECTED_FORM in report["message"]
    assert s3.list_objects_v2(Bucket=world.bucket, Prefix="batch/output/").get("KeyCount", 0) == 0

