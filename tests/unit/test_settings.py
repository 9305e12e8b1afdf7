"""One typed Settings per process (maas_core.settings): MAAS_* variables in any case, keyword arguments first,
unknown names ignored, and a bad value logged and replaced by its default instead of failing every request."""

from __future__ import annotations

import logging
import os

import pytest
from pydantic import ValidationError

from maas_core import deadline, ort_options
from maas_core.edge.http import cors_config
from maas_core.edge.openapi import document
from maas_core.settings import Settings, get_settings
from maas_core.training_jobs import TrainingSettings


@pytest.fixture(autouse=True)
def _no_maas_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("MAAS_")]:
        monkeypatch.delenv(name)


def bad_setting_warnings(caplog: pytest.LogCaptureFixture) -> dict[str, object]:
    return {r.variable: r.default for r in caplog.records  # type: ignore[attr-defined]
            if r.getMessage() == "bad setting ignored, using its default"}


def test_variables_are_read_in_any_case_and_keyword_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given maas_model_bucket (lower case) and MAAS_MAX_RECORDS in the environment,
    when Settings are built with and without a keyword argument,
    then both variables are read, typed, and the keyword argument overrides its variable."""
    monkeypatch.setenv("maas_model_bucket", "from-env")
    monkeypatch.setenv("MAAS_MAX_RECORDS", "25")
    assert (Settings().model_bucket, Settings().max_records) == ("from-env", 25)
    assert Settings(model_bucket="from-code").model_bucket == "from-code"


def test_unknown_variables_and_keyword_arguments_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a MAAS_* variable and a keyword argument no field reads, then Settings are built without them."""
    monkeypatch.setenv("MAAS_NOT_A_SETTING", "1")
    settings = Settings(nor_this=2)
    assert not hasattr(settings, "not_a_setting") and not hasattr(settings, "nor_this")
    assert settings.model_bucket == "maas-models"


@pytest.mark.parametrize(("variable", "value", "field", "default"), [
    ("MAAS_MAX_RECORDS", "many", "max_records", 1000),
    ("MAAS_MAX_RECORDS", "0", "max_records", 1000),
    ("MAAS_DEADLINE_MARGIN_MS", "soon", "deadline_margin_ms", 1000),
    ("MAAS_DEADLINE_MARGIN_MS", "-5", "deadline_margin_ms", 1000),
    ("MAAS_DEADLINE_MARGIN_MS", "60000", "deadline_margin_ms", 1000),  # would refuse every request
    ("MAAS_ORT_THREADS", "0", "ort_threads", None),
    ("MAAS_ORT_THREADS", "all", "ort_threads", None),
    ("MAAS_AUTH_MODE", "Basic", "auth_mode", "ApiKey"),
    ("MAAS_CAPTURE_RATE", "half", "capture_rate", 1.0),
])
def test_a_bad_variable_is_logged_and_left_at_its_default(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture, variable: str,
                                                          value: str, field: str, default: object) -> None:
    """Given one variable with a value its field refuses, next to good ones,
    when the process's settings are read,
    then that field has its default, a warning names the variable and the default, and the good variables
    are still read: a typo in one setting does not take every request down."""
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("MAAS_MODEL_BUCKET", "still-read")
    with caplog.at_level(logging.WARNING):
        settings = get_settings()
    assert getattr(settings, field) == default
    assert settings.model_bucket == "still-read"
    assert bad_setting_warnings(caplog) == {variable: default}
    # the error is logged, not the value (a future setting may be a secret); the messages, not caplog.text,
    # whose file:line prefix may hold any digit
    assert value not in "\n".join(caplog.messages)


def test_several_bad_variables_are_each_logged(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Given two bad variables, then both fall back and each is named once."""
    monkeypatch.setenv("MAAS_MAX_RECORDS", "x")
    monkeypatch.setenv("MAAS_ALIAS_TTL_SECONDS", "-1")
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_environment()
    assert (settings.max_records, settings.alias_ttl_seconds) == (1000, 5.0)
    assert bad_setting_warnings(caplog) == {"MAAS_MAX_RECORDS": 1000, "MAAS_ALIAS_TTL_SECONDS": 5.0}


def test_a_bad_keyword_argument_raises() -> None:
    """Given a bad value passed by code (not by the environment), then it raises: a programming error."""
    with pytest.raises(ValidationError):
        Settings(max_records=0)
    with pytest.raises(ValidationError):
        Settings(deadline_margin_ms=-1)


@pytest.mark.parametrize("variable", ["MAAS_AUTH_MODE", "MAAS_DEADLINE_MARGIN_MS", "MAAS_ORT_THREADS"])
def test_an_empty_variable_means_not_set(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                         variable: str) -> None:
    """Given one of the edge's variables set but empty (as a template leaves an optional value), then it
    is its default without a warning, as when it was read with os.environ."""
    monkeypatch.setenv(variable, " ")
    with caplog.at_level(logging.WARNING):
        settings = get_settings()
    assert (settings.auth_mode, settings.deadline_margin_ms, settings.ort_threads) == ("ApiKey", 1000, None)
    assert bad_setting_warnings(caplog) == {}


def test_one_settings_object_per_process_until_the_cache_is_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given get_settings() read once, when the environment changes, then the same object is returned
    until get_settings.cache_clear() (what the local stack does when it changes the environment)."""
    first = get_settings()
    monkeypatch.setenv("MAAS_DEADLINE_MARGIN_MS", "250")
    assert get_settings() is first and deadline.margin_ms() == 1000
    get_settings.cache_clear()
    assert get_settings() is not first and deadline.margin_ms() == 250


def test_allowed_origins_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given MAAS_ALLOWED_ORIGINS with two origins and stray spaces, then CORS allows exactly those;
    unset, there is no CORS configuration."""
    assert cors_config() is None and Settings().allowed_origins == []
    monkeypatch.setenv("MAAS_ALLOWED_ORIGINS", " https://a.example.com, https://b.example.com ,")
    get_settings.cache_clear()
    cors = cors_config()
    assert cors is not None
    for origin in ("https://a.example.com", "https://b.example.com"):
        assert cors.to_dict(origin)["Access-Control-Allow-Origin"] == origin
    assert cors.to_dict("https://c.example.com") == {} and cors.to_dict(" https://a.example.com") == {}
    assert Settings(allowed_origins=["https://c.example.com"]).allowed_origins == ["https://c.example.com"]


def test_the_auth_mode_setting_chooses_the_documents_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given MAAS_AUTH_MODE=Jwt, then the OpenAPI document requires the JWT scheme; an explicit mode wins."""
    monkeypatch.setenv("MAAS_AUTH_MODE", "Jwt")
    assert document()["security"] == [{"jwt": []}]
    assert document("ApiKey")["security"] == [{"api_key": []}]


def test_onnxruntime_threads_follow_the_setting_else_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given MAAS_ORT_THREADS unset, then a session gets os.cpu_count() threads; set to 2, then 2."""
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert ort_options.session_options().intra_op_num_threads == 5
    monkeypatch.setenv("MAAS_ORT_THREADS", "2")
    get_settings.cache_clear()
    assert ort_options.session_options().intra_op_num_threads == 2


def test_the_train_triggers_settings_forgive_a_bad_runner(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Given MAAS_TRAINING_RUNNER naming no runner, then the trigger's settings submit to Batch (the
    default) and say why, keeping the serving settings they extend."""
    monkeypatch.setenv("MAAS_TRAINING_RUNNER", "laptop")
    monkeypatch.setenv("MAAS_REGISTRY_TABLE", "t")
    with caplog.at_level(logging.WARNING):
        settings = TrainingSettings.from_environment()
    assert (settings.training_runner, settings.registry_table) == ("batch", "t")
    assert bad_setting_warnings(caplog) == {"MAAS_TRAINING_RUNNER": "batch"}
