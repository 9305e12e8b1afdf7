"""Schemathesis, with ALL of its checks, against the OpenAPI document the API serves, over HTTP.

A moto server and the local gateway (template.yaml's routes, the real handlers in-process, auth on as
deployed with AuthMode ApiKey: an API key on the default routes, a SigV4 Authorization on the admin ones) run
on free 127.0.0.1 ports with the tiny model published as prod. The schemathesis CLI (`st run`, as a third
party would run it) loads GET /v1/openapi.json from the gateway and runs every phase (examples, coverage,
fuzzing, stateful: links it infers, e.g. a model name from GET /v1/models) with `--checks all`: never a 5xx,
only documented statuses, content types, headers and bodies, schema-valid requests accepted and invalid ones
refused, required headers and credentials enforced (missing or wrong key: the gateway's 403), no resource
used after its DELETE. Zero failures. CONFIG says where a check is tuned, and why.

    pytest -m fuzz tests/fuzz/test_schemathesis.py -s   # prints the cases sent, the checks run, the time
    MAAS_FUZZ_SEED=123 MAAS_FUZZ_EXAMPLES=100 pytest -m fuzz tests/fuzz/test_schemathesis.py   # explore
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from maas_core.edge import openapi
from maas_core.registry import Registry
from maas_core.store import BundleStore
from maas_local.gateway import Gateway
from maas_local.stack import LocalStack
from maas_local.testing.tiny_model import publish_tiny_model

pytestmark = pytest.mark.fuzz

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
API_KEY = "fuzz-key"
# the local gateway checks a signature's presence and form only (docs/security.md): any well-formed one passes
SIGV4 = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/execute-api/aws4_request, "
         "SignedHeaders=host;x-amz-date, Signature=0123abcd")
EXAMPLES = int(os.environ.get("MAAS_FUZZ_EXAMPLES", "30"))  # per operation and phase; ~1 min on 2 cores
SEED = os.environ.get("MAAS_FUZZ_SEED", "20261201")  # fixed: CI reproducible; vary it to explore
POSITIVE_ACCEPTED = '["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]'  # schemathesis' default
POSITIVE_ACCEPTED_OR_422 = POSITIVE_ACCEPTED.replace("]", ', "422"]')
POSITIVE_ACCEPTED_OR_400 = POSITIVE_ACCEPTED.replace("]", ', "400"]')

# Schemathesis' own configuration (schemathesis.toml). Every check runs on every operation (its default, which
# test_every_check_is_on pins; `--checks all` on the command line would override the entries below), except
# where an entry says otherwise and why.
CONFIG = f"""
[auth.openapi.api_key]
api_key = "{API_KEY}"

[auth.openapi.sigv4]
api_key = "{SIGV4}"

# API Gateway answers a request without SigV4 to an AWS_IAM route with 403 MISSING_AUTHENTICATION_TOKEN (the
# document says so; it cannot be a 401 without turning every unknown path's 403 into one), while
# missing_required_header expects a 401 for a missing Authorization header. ignored_auth still proves those
# routes refuse a missing or wrong signature.
[[operations]]
include-name = ["PUT /v1/models/{{model}}/aliases/{{alias}}", "DELETE /v1/models/{{model}}/versions/{{version}}"]
checks.missing_required_header.enabled = false

# Rules OpenAPI cannot state, in the parameters' descriptions and answered with a 422 naming them: a
# model's records follow its own input schema (GET /v1/models/{{model}}: manifest.input_schema), not one
# schema for every model; ?version= and ?alias= exclude each other; feedback needs a captured prediction's id
# and a label the model has (else per item not_found or invalid: a 422 when no item could be recorded).
[[operations]]
include-name = ["POST /v1/models/{{model}}/predict", "POST /v1/models/{{model}}/preprocess",
                "POST /v1/models/{{model}}/feedback"]
checks.positive_data_acceptance.expected-statuses = {POSITIVE_ACCEPTED_OR_422}

# The window rules span parameters and the clock: ?window= or ?since= (+ ?until=), since before until,
# at most 30 days.
[[operations]]
include-name = "GET /v1/models/{{model}}/metrics"
checks.positive_data_acceptance.expected-statuses = {POSITIVE_ACCEPTED_OR_422}

# The Open Inference Protocol's inputs follow the model's metadata (GET /v2/models/{{model}}: one input per raw
# field), not one schema for every model; the protocol answers every request it cannot use with a 400.
[[operations]]
include-name = ["POST /v2/models/{{model}}/infer", "POST /v2/models/{{model}}/versions/{{version}}/infer"]
checks.positive_data_acceptance.expected-statuses = {POSITIVE_ACCEPTED_OR_400}
"""


ADMIN = {"PUT /v1/models/{model}/aliases/{alias}", "DELETE /v1/models/{model}/versions/{version}"}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schemathesis") / "schemathesis.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def every_check() -> list[str]:
    load_all_checks()
    return CHECKS.get_all_names()


def test_every_check_is_on_for_every_operation(config_file: Path) -> None:
    """Given CONFIG, then each of schemathesis' checks runs on each operation, but missing_required_header on
    the admin (SigV4) operations (the reason is in CONFIG)."""
    config = SchemathesisConfig.from_path(config_file)
    schema = schemathesis.openapi.from_dict(openapi.document("ApiKey"), config=config)
    assert len(every_check()) >= 14  # schemathesis 4.32's
    for result in schema.get_all_operations():
        operation = result.ok()
        for phase in ("examples", "coverage", "fuzzing", "stateful"):
            checks = schema.config.checks_config_for(operation=operation, phase=phase)
            off = {name for name in every_check() if not checks.get_by_name(name=name).enabled}
            assert off == ({"missing_required_header"} if operation.label in ADMIN else set()), (operation.label, phase)


@pytest.fixture(scope="module")
def api_base() -> Iterator[str]:
    """The local stack (moto server) with the tiny model as prod, and the gateway with auth on."""
    with LocalStack(TEMPLATE, port=0) as stack:
        publish_tiny_model(BundleStore(stack.names["ModelBucket"]), Registry(stack.names["RegistryTable"]))
        gateway = Gateway(TEMPLATE, stack.names, host="127.0.0.1", port=0, api_keys=[API_KEY],
                          run_queue_consumers=False)
        base = gateway.start()
        try:
            yield base
        finally:
            gateway.stop()


def test_the_schema_is_the_document_the_api_serves(api_base: str) -> None:
    with urllib.request.urlopen(f"{api_base}/v1/openapi.json", timeout=30) as resp:
        assert json.loads(resp.read()) == openapi.document("ApiKey")


def test_schemathesis_with_all_checks_finds_nothing(api_base: str, config_file: Path, tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    """Given the served document, when schemathesis runs every phase with every check, then it reports no
    failure and no error, every operation and phase ran, and its stateful phase followed the links."""
    report = tmp_path / "report.json"
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file), "--no-color", "run",
         f"{api_base}/v1/openapi.json", "--max-examples", str(EXAMPLES), "--seed", SEED,
         "--workers", "2", "--request-timeout", "30", "--report", "json", "--report-json-path", str(report)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    elapsed = time.perf_counter() - started
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-30000:]
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["test_cases"]["unique_failures"] == 0 and not result["errors"]
    operations = sum(len(methods) for methods in openapi.document()["paths"].values())
    # every operation but GET /v1/openapi.json, which schemathesis leaves out as the URL it loaded the schema from
    assert result["operations"]["tested"] == result["operations"]["total"] == operations - 1
    assert {name: p["status"] for name, p in result["phases"].items()} == dict.fromkeys(
        ("examples", "coverage", "fuzzing", "stateful"), "success")
    links = next(line.split(":", 1)[1].strip() for line in output.splitlines() if "API Links:" in line)
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nschemathesis {result['schemathesis_version']} (seed {SEED}, {EXAMPLES} examples): "
              f"{result['test_cases']['generated']} cases, 0 failures, in {elapsed:.1f} s; checks "
              f"{', '.join(every_check())}; stateful links {links}; warnings "
              f"{ {k: v for k, v in result['warnings'].items() if v} }")
