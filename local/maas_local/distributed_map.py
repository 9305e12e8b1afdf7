"""Local stand-in for BatchStateMachine (template.yaml): its definition, run in-process, as the local gateway
runs API Gateway's routes. moto's Step Functions interpreter cannot run a Distributed Map (it rejects
ItemBatcher and ProcessorConfig, and its S3 ItemReader fails), so this walks the template's own states:

    machine = LocalStateMachine()                       # the definition from template.yaml
    machine.run({"bucket": ..., "key": ..., "etag": ..., "file_id": ...})   # what StartExecution got

    runner = LocalExecutions(sfn, bucket)               # with a moto stack: the batch function's real calls
    runner.create()                                     # the state machine in moto (MAAS_BATCH_STATE_MACHINE_ARN)
    runner.run_pending()                                # runs each RUNNING execution here, then stops it in moto
    runner.start()                                      # or: in a daemon thread until stop() (maas-demo)

What it runs as Step Functions does: Task states invoking functions/batch_shards/app.py (Parameters and
ResultSelector with `.$` paths, ResultPath, Retry by error name with MaxAttempts, Catch), the Choice,
the Map with its S3 JSON ItemReader, ItemBatcher (MaxItemsPerBatch, BatchInput), MaxConcurrencyPath (threads,
capped by `max_workers`) and ToleratedFailurePercentage 0 (the first failed item stops the Map), Succeed
and Fail. What it does not model: child executions and their history, the ResultWriter's objects (the
children's results stay in memory), retry waits (IntervalSeconds,
BackoffRate, jitter: no sleep here), Lambda's timeouts and memory, payload limits (256 KiB), IAM, and only
the JSONPath forms the definition uses (`$`, `$.a.b`). The definition's shape is checked statically by
tests/unit/test_batch_state_machine.py.

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import boto3

from maas_core.aws_target import LOCAL_REGION
from maas_local.lambda_context import FakeLambdaContext
from maas_local.lambda_runtime import load_function
from maas_local.queues import PollingThread
from maas_local.template import LOCAL_ACCOUNT_ID, default_template_path, load_template

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
RESOURCE = "BatchStateMachine"


def state_machine_definition(template_path: str | Path | None = None) -> dict[str, Any]:
    """BatchStateMachine's Definition from template.yaml, with its DefinitionSubstitutions filled with local names."""
    template = load_template(template_path or default_template_path())
    props = template["Resources"][RESOURCE]["Properties"]
    text = json.dumps(props["Definition"])
    for name in props.get("DefinitionSubstitutions", {}):
        text = text.replace("${" + name + "}", f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{name}")
    return json.loads(text)  # type: ignore[no-any-return]


class ExecutionFailed(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


def _path(data: Any, path: str) -> Any:
    if path == "$":
        return data
    if not path.startswith("$."):
        raise ValueError(f"unsupported JSONPath {path!r}")
    for part in path[2:].split("."):
        data = data[part]
    return data


def _resolve(template: Any, data: Any) -> Any:
    if isinstance(template, dict):
        return {(k[:-2] if k.endswith(".$") else k): (_path(data, v) if k.endswith(".$") else _resolve(v, data))
                for k, v in template.items()}
    if isinstance(template, list):
        return [_resolve(v, data) for v in template]
    return template


def _put(data: Any, path: str | None, value: Any) -> Any:
    if path is None:
        return data
    if path == "$":
        return value
    out = dict(data)
    parts = path[2:].split(".")
    target = out
    for part in parts[:-1]:
        target[part] = dict(target.get(part) or {})
        target = target[part]
    target[parts[-1]] = value
    return out


def _matches(names: list[str], error: str) -> bool:
    return error in names or "States.ALL" in names


class LocalStateMachine:
    """Runs the definition (see the module docstring); `handler` is functions/batch_shards/app.py's by default."""

    def __init__(self, handler: Handler | None = None, definition: dict[str, Any] | None = None,
                 *, max_workers: int = 2, s3: Any | None = None) -> None:
        self.definition = definition or state_machine_definition()
        self._handler = handler
        self.max_workers = max_workers
        self._s3 = s3
        self.invocations: list[str] = []  # the `step` of each Lambda invocation, in order (retries included)
        self._lock = threading.Lock()

    @property
    def handler(self) -> Handler:
        if self._handler is None:
            self._handler = load_function("batch_shards").lambda_handler
        return self._handler

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = boto3.client("s3")
        return self._s3

    def run(self, execution_input: dict[str, Any]) -> dict[str, Any]:
        """The execution's output; ExecutionFailed at a Fail state or an uncaught error."""
        return self._run_states(self.definition, execution_input)

    def _run_states(self, machine: dict[str, Any], data: Any) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            kind = state["Type"]
            if kind == "Succeed":
                return data
            if kind == "Fail":
                raise ExecutionFailed(state.get("Error", "States.Fail"), state.get("Cause", ""))
            if kind == "Choice":
                name = next((c["Next"] for c in state["Choices"]
                             if _path(data, c["Variable"]) is c["BooleanEquals"]), state["Default"])
                continue
            try:
                result = self._task(state, data) if kind == "Task" else self._map(state, data)
            except ExecutionFailed as exc:
                catch = next((c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], exc.error)), None)
                if catch is None:
                    raise
                data = _put(data, catch.get("ResultPath", "$"), {"Error": exc.error, "Cause": exc.cause})
                name = catch["Next"]
                continue
            data = _put(data, state.get("ResultPath", "$"), result)
            if state.get("End"):
                return data
            name = state["Next"]

    def _task(self, state: dict[str, Any], data: Any) -> Any:
        payload = _resolve(state["Parameters"], data)["Payload"]
        attempts: dict[int, int] = {}
        while True:
            try:
                with self._lock:
                    self.invocations.append(str(payload.get("step")))
                context = FakeLambdaContext("maas-local-BatchShardsFunction", memory_limit_in_mb=2048,
                                            aws_request_id=str(uuid.uuid4()), remaining_ms=900_000,
                                            counting_down=True, region=LOCAL_REGION, account_id=LOCAL_ACCOUNT_ID)
                result = {"Payload": self.handler(payload, context)}
                break
            except Exception as exc:
                error = type(exc).__name__
                retry = next((i for i, r in enumerate(state.get("Retry", [])) if _matches(r["ErrorEquals"], error)),
                             None)
                if retry is not None and attempts.get(retry, 0) < state["Retry"][retry].get("MaxAttempts", 3):
                    attempts[retry] = attempts.get(retry, 0) + 1
                    log.warning("step %s failed (%s); retrying", payload.get("step"), error)
                    continue
                raise ExecutionFailed(error, json.dumps({"errorType": error, "errorMessage": str(exc)})) from exc
        return _resolve(state["ResultSelector"], result) if "ResultSelector" in state else result

    def _map(self, state: dict[str, Any], data: Any) -> Any:
        reader = _resolve(state["ItemReader"]["Parameters"], data)
        items = json.loads(self.s3.get_object(Bucket=reader["Bucket"], Key=reader["Key"])["Body"].read())
        batcher = state["ItemBatcher"]
        size = int(batcher["MaxItemsPerBatch"])
        batch_input = _resolve(batcher.get("BatchInput", {}), data)
        concurrency = int(_path(data, state["MaxConcurrencyPath"])) if "MaxConcurrencyPath" in state \
            else int(state.get("MaxConcurrency", 0) or len(items) or 1)
        processor = state["ItemProcessor"]
        batches = [{"BatchInput": batch_input, "Items": items[i:i + size]} for i in range(0, len(items), size)]
        results: list[Any] = [None] * len(batches)
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, self.max_workers))) as pool:
            futures = {pool.submit(self._run_states, processor, b): i for i, b in enumerate(batches)}
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed and state.get("ToleratedFailurePercentage", 0) == 0:
                for f in pending:  # Step Functions stops the Map's running children
                    f.cancel()
                first = failed[0].exception()
                raise ExecutionFailed("States.ExceedToleratedFailureThreshold",
                                      str(first)) from first
            for f, i in futures.items():
                results[i] = f.result()
        return results


class LocalExecutions(PollingThread):
    """BatchStateMachine created in moto (so the batch function's StartExecution is real, idempotency included),
    its RUNNING executions run by a LocalStateMachine and then stopped in moto (moto cannot run them)."""

    thread_name = "maas-batch-files"
    wait_seconds = 0

    def __init__(self, sfn: Any | None = None, machine: LocalStateMachine | None = None,
                 name: str = "maas-local-batch-files") -> None:
        self.sfn = sfn or boto3.client("stepfunctions")
        self.machine = machine or LocalStateMachine()
        self.name = name
        self.arn = ""
        self.outcomes: dict[str, dict[str, Any]] = {}  # execution name -> {"status", "output" | "error"}
        self.queue_url = name  # what PollingThread names in its warnings
        self._init_thread()

    def poll_once(self, wait_seconds: int = 0) -> int:
        return self.run_pending()

    def __enter__(self) -> LocalExecutions:
        if not self.arn:
            self.create()
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def create(self) -> str:
        """The state machine in moto (its ARN, which MAAS_BATCH_STATE_MACHINE_ARN should name)."""
        existing = [m for m in self.sfn.list_state_machines()["stateMachines"] if m["name"] == self.name]
        self.arn = existing[0]["stateMachineArn"] if existing else self.sfn.create_state_machine(
            name=self.name, definition=json.dumps(self.machine.definition),
            roleArn=f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/maas-local-batch-files")["stateMachineArn"]
        return self.arn

    def run_pending(self) -> int:
        """Run every RUNNING execution; returns how many ran."""
        if not self.arn:
            self.create()
        ran = 0
        for execution in self.sfn.list_executions(stateMachineArn=self.arn, statusFilter="RUNNING")["executions"]:
            arn, name = execution["executionArn"], execution["name"]
            if name in self.outcomes:
                continue
            described = self.sfn.describe_execution(executionArn=arn)
            try:
                self.outcomes[name] = {"status": "SUCCEEDED",
                                       "output": self.machine.run(json.loads(described["input"]))}
            except ExecutionFailed as exc:
                self.outcomes[name] = {"status": "FAILED", "error": exc.error, "cause": exc.cause}
                log.error("execution %s failed: %s", name, exc)
            self.sfn.stop_execution(executionArn=arn, error=self.outcomes[name]["status"])  # moto: not RUNNING now
            ran += 1
        return ran
