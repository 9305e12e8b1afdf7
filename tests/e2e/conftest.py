"""End-to-end fixtures: a moto server and the local gateway on free 127.0.0.1 ports, the tiny model
(maas_local/testing/tiny_model.py) published into it, and a small urllib HTTP client (`http` fixture).
Module-scoped: one stack per test file, torn down (server stopped, os.environ restored) before the next
file runs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from maas_core.manifest import Manifest
from maas_core.registry import Registry
from maas_core.store import BundleStore
from maas_local.gateway import Gateway
from maas_local.stack import LocalStack
from maas_local.testing.tiny_model import publish_tiny_model

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, body: bytes | str | dict | None = None,
         headers: dict[str, str] | None = None, timeout: float = 30) -> HttpResponse:
    """One request; 4xx/5xx come back as responses, not exceptions. A dict body is sent as JSON."""
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return HttpResponse(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


@pytest.fixture(name="http")
def http_fixture() -> Any:
    """The `http(method, url, body=None, headers=None)` client above."""
    return http


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    with LocalStack(TEMPLATE, port=0) as stack:
        yield stack


@pytest.fixture(scope="module")
def tiny_model(local_stack: LocalStack) -> Manifest:
    registry = Registry(local_stack.names["RegistryTable"])
    store = BundleStore(local_stack.names["ModelBucket"])
    return publish_tiny_model(store, registry, name="tiny")


@pytest.fixture(scope="module")
def gateway(local_stack: LocalStack, tiny_model: Manifest) -> Iterator[str]:
    """Base URL of the gateway serving template.yaml, with the tiny model published as prod."""
    gw = Gateway(TEMPLATE, local_stack.names, host="127.0.0.1", port=0)
    base_url = gw.start()
    try:
        yield base_url
    finally:
        gw.stop()
