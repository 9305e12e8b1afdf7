"""Alias semantics on the DynamoDB registry: promote, canary, rollback, delete, races."""

from __future__ import annotations

import threading

import boto3
import pytest

from maas_core.errors import ConflictError, NotFoundError, UnprocessableError
from maas_core.registry import Registry
from tests.integration.test_store_registry import make_manifest


@pytest.fixture
def reg(aws_world) -> Registry:
    """Given model iris with versions 1, 2 and 3."""
    for _ in range(3):
        v = aws_world.registry.next_version("iris")
        aws_world.registry.register(make_manifest(version=v))
    return aws_world.registry


def alias_item(reg: Registry, alias: str = "prod") -> dict:
    key = {"pk": {"S": "MODEL#iris"}, "sk": {"S": f"ALIAS#{alias}"}}
    return boto3.client("dynamodb").get_item(TableName=reg.table, Key=key).get("Item", {})


def test_promotions_keep_history_and_rollback_walks_it_back(reg: Registry) -> None:
    reg.set_alias("iris", "prod", "1")
    reg.set_alias("iris", "prod", "2")
    t = reg.set_alias("iris", "prod", "3", expected_version="2")
    assert (t.version, t.history, t.revision) == ("3", ("1", "2"), 3)
    back = reg.rollback("iris", "prod")
    assert (back.version, back.history) == ("2", ("1",))
    assert reg.rollback("iris", "prod").version == "1"
    with pytest.raises(ConflictError, match="no earlier version"):
        reg.rollback("iris", "prod")
    assert reg.resolve_alias("iris", "prod").version == "1"


def test_canary_is_set_replaced_by_promotion_and_validated(reg: Registry) -> None:
    reg.set_alias("iris", "prod", "1")
    t = reg.set_canary("iris", "prod", "2", 0.25)
    assert (t.version, t.canary_version, t.canary_weight) == ("1", "2", 0.25)
    assert reg.resolve_alias("iris", "prod").canary_weight == 0.25
    promoted = reg.set_alias("iris", "prod", "2")  # promoting the canary ends it
    assert promoted.canary_version is None and promoted.history == ("1",)
    for weight in (-0.1, 1.0, 7):
        with pytest.raises(UnprocessableError, match="canary weight"):
            reg.set_canary("iris", "prod", "3", weight)
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        reg.set_canary("iris", "staging", "3", 0.1)


def test_failures_change_nothing(reg: Registry) -> None:
    reg.set_alias("iris", "prod", "1")
    before = alias_item(reg)
    with pytest.raises(NotFoundError, match="no version '9'"):
        reg.set_alias("iris", "prod", "9")
    with pytest.raises(NotFoundError, match="no version '9'"):
        reg.set_canary("iris", "prod", "9", 0.5)
    with pytest.raises(ConflictError, match="points at version '1', not '2'"):
        reg.set_alias("iris", "prod", "3", expected_version="2")
    assert alias_item(reg) == before


def test_a_version_an_alias_names_cannot_be_deleted(reg: Registry) -> None:
    reg.set_alias("iris", "prod", "1")
    reg.set_canary("iris", "prod", "2", 0.1)
    for v in ("1", "2"):
        with pytest.raises(ConflictError, match="in use by alias"):
            reg.delete_version("iris", v)
    reg.delete_version("iris", "3")
    with pytest.raises(NotFoundError, match="no version '3'"):
        reg.get_version("iris", "3")
    with pytest.raises(NotFoundError):
        reg.set_alias("iris", "prod", "3")


def test_two_racing_promotions_leave_one_whole_winner(reg: Registry) -> None:
    reg.set_alias("iris", "prod", "1")
    barrier = threading.Barrier(2)
    # DynamoDB applies each conditional transaction atomically; moto checks and writes without a
    # lock, so two threads could both pass the check. Serialising the writes stands in for that.
    dynamodb_serialises = threading.Lock()
    results: dict[str, object] = {}
    real_write = reg._write_alias

    def slow_write(*args, **kwargs):
        barrier.wait(timeout=5)  # both have read revision 1 before either writes
        with dynamodb_serialises:
            return real_write(*args, **kwargs)

    reg._write_alias = slow_write  # type: ignore[method-assign]

    def promote(version: str) -> None:
        try:
            results[version] = reg.set_alias("iris", "prod", version, expected_version="1")
        except ConflictError as exc:
            results[version] = exc

    threads = [threading.Thread(target=promote, args=(v,)) for v in ("2", "3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for v, r in results.items() if not isinstance(r, Exception)]
    losers = [r for r in results.values() if isinstance(r, ConflictError)]
    assert len(winners) == 1 and len(losers) == 1
    final = reg.resolve_alias("iris", "prod")
    assert final.version == winners[0] and final.history == ("1",) and final.revision == 2


def test_delete_refuses_when_an_alias_moves_to_the_version_meanwhile(reg: Registry) -> None:
    real_aliases = reg.aliases

    def racing(name: str):
        seen = real_aliases(name)  # no alias names version 3 yet...
        real_set = Registry.set_alias
        real_set(reg, "iris", "canary", "3")  # ...but another admin promotes to it before the delete lands
        return seen

    reg.aliases = racing  # type: ignore[method-assign]
    with pytest.raises(ConflictError, match="changed while deleting"):
        reg.delete_version("iris", "3")
    assert reg.get_version("iris", "3")["version"] == "3"
    assert reg.resolve_alias("iris", "canary").version == "3"
