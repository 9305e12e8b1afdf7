"""Fields marked sensitive (the manifest's input schema; set by the training config, the registration
declaration or the spec) never leave the request raw: captures mask them, logs carry no records, and
error messages name the field but not its value."""

from __future__ import annotations

import json
import logging

import boto3
import pytest

from maas_core.monitoring.capture import MASK
from maas_core.preprocess import SpecConfig
from maas_core.preprocess.config import ColumnConfig
from maas_core.preprocess.spec import PreprocessSpec
from maas_core.registration import ModelDeclaration, passthrough_spec
from maas_local.testing.tiny_model import publish_sensitive_tiny_model

# the monitoring tests' `world` fixture (moto + captures table + the capture log subscription), registered under
# its name
from tests.integration.test_monitoring import CAPTURES, World, lines_written
from tests.integration.test_monitoring import world as monitoring_world  # noqa: F401 - a fixture
from tests.lambda_events import assert_error, call

SECRET_COLOUR = "colour-secret-7f3a91"  # an unseen category: predicted with (unseen: ignore), never stored
SECRET_X1 = "x1-secret-52c0de"  # not a number: rejected, never echoed


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    return request.getfixturevalue("monitoring_world")


@pytest.fixture
def debug_logs(caplog):
    """Every log record at INFO and above (what a deployed function writes at the default LogLevel)."""
    caplog.set_level(logging.INFO)
    return caplog


def test_a_sensitive_value_is_predicted_on_but_never_captured_or_logged(world, capsys, debug_logs) -> None:
    """Given capture on and `colour` and `x1` marked sensitive,
    when a caller predicts a record carrying a secret colour and the capture function stores it,
    then the captures table item holds the mask, not the value, and neither stdout/stderr (Powertools
    JSON logs, EMF) nor any log record mentions it."""
    publish_sensitive_tiny_model(world.store, world.registry, {"colour", "x1"})
    with lines_written() as lines:
        status, body = call(world.predict, "POST", "/v1/models/tiny/predict",
                            body={"records": [{"x1": 4.25, "x2": 1, "colour": SECRET_COLOUR}]})
    assert status == 200, body
    assert (world.drain().lines, world.drain().failures) == (1, [])
    assert len(lines) == 1 and SECRET_COLOUR not in lines[0] and "4.25" not in lines[0]  # the capture log line
    items = boto3.client("dynamodb").scan(TableName=CAPTURES)["Items"]
    assert len(items) == 1
    stored = json.dumps(items)
    assert SECRET_COLOUR not in stored and "4.25" not in stored  # no raw value, numbers included
    # the record is there, sensitive fields masked
    assert json.loads(items[0]["data"]["S"])["features"] == {"x1": MASK, "x2": 1, "colour": MASK}
    logged = capsys.readouterr()
    assert SECRET_COLOUR not in logged.out + logged.err
    assert SECRET_COLOUR not in debug_logs.text


def test_a_bad_sensitive_value_is_named_by_field_but_not_quoted(world, capsys, debug_logs) -> None:
    """Given `x1` marked sensitive,
    when a caller sends a string for it,
    then the 422 names record 0 and field x1 and says what was wrong, but neither the answer nor the logs
    quote the value; a field that is not sensitive is still quoted (the caller sees what was refused)."""
    publish_sensitive_tiny_model(world.store, world.registry, {"x1"})
    status, body = call(world.predict, "POST", "/v1/models/tiny/predict",
                        body={"records": [{"x1": SECRET_X1, "x2": "two", "colour": "red"}]})
    assert status == 422
    assert_error(body, "unprocessable", "x1", "expected a number, got a string", "withheld")
    assert SECRET_X1 not in json.dumps(body)
    x2 = next(d for d in body["error"]["details"] if d["field"] == "x2")
    assert '"two"' in x2["reason"]  # not sensitive: quoted as before
    logged = capsys.readouterr()
    assert SECRET_X1 not in logged.out + logged.err + debug_logs.text


def test_preprocess_errors_do_not_quote_sensitive_values_either(world, aws_world) -> None:
    """The preprocess function runs the same spec: its 422 withholds the value too."""
    from tests.lambda_events import load_function

    publish_sensitive_tiny_model(world.store, world.registry, {"x1"})
    status, body = call(load_function("preprocess"), "POST", "/v1/models/tiny/preprocess",
                        body={"records": [{"x1": SECRET_X1, "colour": "red"}]})
    assert status == 422 and SECRET_X1 not in json.dumps(body)
    assert_error(body, "unprocessable", "x1")


def test_the_training_config_marks_columns_sensitive_in_the_spec_and_schema() -> None:
    """Given a training column config with sensitive: true (what TrainingConfig.sensitive / --sensitive set),
    when the spec is fitted, then the feature and the manifest's input schema say so, and the spec's
    JSON keeps it (serving reads it back)."""
    config = SpecConfig(columns={"email": ColumnConfig(kind="categorical", sensitive=True),
                                 "age": ColumnConfig(kind="numeric")})
    spec = PreprocessSpec.fit({"email": ["a@x.org", "b@y.org"], "age": [30, 40]}, config)
    assert {f.name: f.sensitive for f in spec.input_schema()} == {"email": True, "age": False}
    assert PreprocessSpec.from_json(spec.to_json()).features[0].sensitive is True


def test_training_config_sensitive_list_reaches_the_column_config(tmp_path) -> None:
    """`maas-train --sensitive email` (or `sensitive: [email]` in a config file) marks that column only."""
    from maas_training.cli import build_parser, config_from_args

    data = tmp_path / "d.csv"
    data.write_text("email,age,y\na@x.org,30,1\n", encoding="utf-8")
    args = build_parser().parse_args(["--data", str(data), "--model-name", "m", "--target", "y",
                                      "--sensitive", "email"])
    cfg = config_from_args(args)
    assert cfg.sensitive == ["email"]
    assert cfg.column_config("email", "categorical").sensitive is True
    assert cfg.column_config("age", "numeric").sensitive is False


def test_a_registration_declaration_marks_features_sensitive() -> None:
    """Given a declaration of an external model with a sensitive feature,
    then its pass-through spec withholds that feature's values in errors."""
    declaration = ModelDeclaration.parse({"task": "regression", "features": [
        {"name": "income", "sensitive": True}, {"name": "age"}]})
    spec = passthrough_spec(declaration)
    assert [f.sensitive for f in spec.input_schema()] == [True, False]
    with pytest.raises(Exception) as info:
        spec.transform([{"income": "lots-of-money", "age": "old"}])
    reasons = {d["field"]: d["reason"] for d in info.value.details}  # type: ignore[attr-defined]
    assert "lots-of-money" not in reasons["income"] and "withheld" in reasons["income"]
    assert '"old"' in reasons["age"]
