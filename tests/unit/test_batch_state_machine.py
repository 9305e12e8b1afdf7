"""BatchStateMachine's definition (template.yaml), checked statically: moto cannot run a Distributed Map and
cfn-lint does not validate its fields (ItemReader, ItemBatcher, ProcessorConfig), so a JSON schema of the
Distributed Map fields the definition uses, and the graph of its states, are checked here."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from maas_local.distributed_map import state_machine_definition

RETRY = {"type": "array", "items": {"type": "object", "required": ["ErrorEquals"], "properties": {
    "ErrorEquals": {"type": "array", "minItems": 1, "items": {"type": "string"}},
    "IntervalSeconds": {"type": "integer", "minimum": 1}, "MaxAttempts": {"type": "integer", "minimum": 0},
    "BackoffRate": {"type": "number", "minimum": 1}, "JitterStrategy": {"enum": ["FULL", "NONE"]}},
    "additionalProperties": False}}
PATH = {"type": "string", "pattern": r"^\$(\.[A-Za-z_][A-Za-z0-9_]*)*$"}
DISTRIBUTED_MAP = {
    "type": "object",
    "required": ["Type", "ItemReader", "ItemBatcher", "ItemProcessor", "ResultWriter", "ToleratedFailurePercentage",
                 "Catch"],
    "properties": {
        "Type": {"const": "Map"},
        "ItemReader": {"type": "object", "required": ["Resource", "ReaderConfig", "Parameters"], "properties": {
            "Resource": {"const": "arn:aws:states:::s3:getObject"},
            "ReaderConfig": {"type": "object", "properties": {"InputType": {"enum": ["JSON", "CSV", "MANIFEST"]}},
                             "required": ["InputType"]},
            "Parameters": {"type": "object", "required": ["Bucket.$", "Key.$"]}}},
        "ItemBatcher": {"type": "object", "required": ["MaxItemsPerBatch"], "properties": {
            "MaxItemsPerBatch": {"type": "integer", "minimum": 1}, "BatchInput": {"type": "object"}}},
        "MaxConcurrencyPath": PATH,
        "ToleratedFailurePercentage": {"const": 0},
        "ResultPath": {"type": "null"},
        "ResultWriter": {"type": "object", "required": ["Resource", "Parameters"], "properties": {
            "Resource": {"const": "arn:aws:states:::s3:putObject"},
            "Parameters": {"type": "object", "required": ["Bucket.$", "Prefix.$"]}}},
        "ItemProcessor": {"type": "object", "required": ["ProcessorConfig", "StartAt", "States"], "properties": {
            "ProcessorConfig": {"type": "object", "required": ["Mode", "ExecutionType"], "properties": {
                "Mode": {"const": "DISTRIBUTED"}, "ExecutionType": {"enum": ["STANDARD", "EXPRESS"]}}}}},
    },
}
TYPES = {"Task", "Map", "Choice", "Succeed", "Fail", "Pass", "Wait", "Parallel"}


def _states(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return machine["States"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return state_machine_definition()


def test_the_shards_state_is_a_distributed_map_with_batching_and_no_tolerated_failures(
        definition: dict[str, Any]) -> None:
    """Given the definition from template.yaml,
    When its Map state is checked against the Distributed Map schema,
    Then it reads shards.json from S3, batches items, takes MaxConcurrency from the plan and tolerates no failure."""
    jsonschema.validate(_states(definition)["Shards"], DISTRIBUTED_MAP)


def test_every_state_is_reachable_and_every_transition_lands(definition: dict[str, Any]) -> None:
    """Given the definition and its Map's item processor,
    When their states' Next, Default, Choices and Catch targets are followed from StartAt,
    Then each names a state of the same machine, every state is reached, and one path ends in Fail."""
    for machine in (definition, _states(definition)["Shards"]["ItemProcessor"]):
        states = _states(machine)
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            assert name in states, name
            seen.add(name)
            state = states[name]
            assert state["Type"] in TYPES
            targets = [state.get("Next"), state.get("Default")] + [c["Next"] for c in state.get("Choices", [])] \
                + [c["Next"] for c in state.get("Catch", [])]
            todo += [t for t in targets if t]
            assert state["Type"] in {"Succeed", "Fail", "Choice"} or "Next" in state or state.get("End") is True
        assert seen == set(states)


def test_every_lambda_task_retries_with_backoff_but_not_a_file_error(definition: dict[str, Any]) -> None:
    """Given each Task of the definition (the shard task included),
    When its Retry and Catch are checked,
    Then a BatchFileError is never retried, other errors are retried with exponential backoff, and every
    task but the failure step itself is caught into the failure step."""
    tasks = {**_states(definition), **_states(_states(definition)["Shards"]["ItemProcessor"])}
    for name, state in tasks.items():
        if state["Type"] != "Task":
            continue
        jsonschema.validate(state["Retry"], RETRY)
        assert state["Resource"] == "arn:aws:states:::lambda:invoke"
        assert any(r["ErrorEquals"] == ["States.ALL"] and r["BackoffRate"] >= 2 and r["MaxAttempts"] >= 2
                   for r in state["Retry"]), name
        if name != "Failed":
            assert state["Retry"][0] == {"ErrorEquals": ["BatchFileError"], "MaxAttempts": 0}, name
        if name not in {"Failed", "Shard"}:  # the shard's failure fails the Map, which is caught
            assert state["Catch"][0]["Next"] == "Failed", name
