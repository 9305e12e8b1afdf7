"""Init-phase priming for SnapStart / provisioned concurrency (maas_core.edge.coldstart)."""

from __future__ import annotations

import random
import sys
import types
from collections.abc import Iterator

import pytest

from maas_core import aws
from maas_core.edge import coldstart


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    made: list[str] = []
    aws.reset_clients()
    monkeypatch.setattr(aws, "new_client", lambda service, config=None: made.append(service) or object())
    yield made
    aws.reset_clients()  # no fake client stays cached


@pytest.mark.parametrize("init_type", [None, "on-demand"])
def test_on_demand_init_creates_nothing(monkeypatch: pytest.MonkeyPatch, created: list[str],
                                        init_type: str | None) -> None:
    """Given an on-demand environment (or none), init stays as small as it is: the caller waits for it."""
    if init_type is None:
        monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", init_type)
    assert coldstart.prime() is False and created == []


def test_snapstart_init_creates_the_clients_and_reseeds_after_restore(monkeypatch: pytest.MonkeyPatch,
                                                                       created: list[str]) -> None:
    """Given a SnapStart init with the runtime's hook module,
    when the handler module primes,
    then the DynamoDB and S3 clients exist before the snapshot, and a restore reseeds `random`, so
    environments restored from one snapshot do not draw the same canary sequence."""
    hooks: list = []
    monkeypatch.setitem(sys.modules, "snapshot_restore_py",
                        types.SimpleNamespace(register_after_restore=hooks.append))
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    assert coldstart.prime() is True
    assert created == ["dynamodb", "s3"] and hooks == [coldstart.reseed]
    random.seed(7)
    snapshot_draws = [random.random() for _ in range(3)]
    random.seed(7)
    hooks[0]()  # what Lambda calls after restoring
    assert [random.random() for _ in range(3)] != snapshot_draws


def test_provisioned_init_creates_the_clients_without_snapstart_hooks(monkeypatch: pytest.MonkeyPatch,
                                                                      created: list[str]) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # not importable
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")
    assert coldstart.prime() is True and created == ["dynamodb", "s3"]
