"""Schemathesis against the API's own OpenAPI document, over HTTP.

A moto server and the local gateway (template.yaml's routes, the real handlers in-process) run on free
127.0.0.1 ports with the tiny model published as prod. Schemathesis loads the document the API serves
(GET /v1/openapi.json: every function's routes, maas_core.openapi), generates requests for every
operation from it, sends them to the gateway and checks each answer: never a 5xx
(`not_a_server_error`) and, for every documented status, a body that matches the documented schema
(`response_schema_conformance`; errors therefore in the {"error": {...}} shape). The local gateway
does not check API keys or IAM signatures (see the README), so every operation is reached.

    pytest -m fuzz tests/fuzz/test_schemathesis.py    # prints how many requests were sent, and how long
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from maas_core import openapi
from maas_core.registry import Registry
from maas_core.store import BundleStore
from maas_local.gateway import Gateway
from maas_local.stack import LocalStack
from tests.tiny_model import publish_tiny_model

pytestmark = pytest.mark.fuzz

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
EXAMPLES_PER_OPERATION = 40  # per operation and generation phase (schemathesis also sends its own coverage cases)
SENT: Counter[str] = Counter()  # requests per operation
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def api_base(request: pytest.FixtureRequest) -> Iterator[str]:
    """The local stack (moto server) with the tiny model as prod, and the gateway serving template.yaml."""
    started = time.perf_counter()
    with LocalStack(TEMPLATE, port=0) as stack:
        publish_tiny_model(BundleStore(stack.names["ModelBucket"]), Registry(stack.names["RegistryTable"]))
        gateway = Gateway(TEMPLATE, stack.names, host="127.0.0.1", port=0)
        base = gateway.start()
        try:
            yield base
        finally:
            gateway.stop()
            if SENT:  # past pytest's capture: the figure belongs in the run's output
                with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
                    print(f"\nschemathesis: {sum(SENT.values())} requests ({len(SENT)} method and path pairs) in "
                          f"{time.perf_counter() - started:.1f} s; statuses {dict(sorted(STATUSES.items()))}")


# The document the gateway serves (test_the_schema_is_the_document_the_api_serves proves it). Loaded from
# the package rather than by URL: schemathesis' lazy fixture loader does not run under pytest 9, and the
# gateway's port is only known once the module's fixtures run.
DOCUMENT = openapi.document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_schema_is_the_document_the_api_serves(api_base: str) -> None:
    with urllib.request.urlopen(f"{api_base}/v1/openapi.json", timeout=30) as resp:
        assert json.loads(resp.read()) == DOCUMENT


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_never_5xx(case: schemathesis.Case, api_base: str) -> None:
    response = case.call_and_validate(base_url=api_base, checks=[not_a_server_error, response_schema_conformance],
                                      timeout=30)
    SENT[f"{case.method} {case.path}"] += 1
    STATUSES[response.status_code] += 1
