"""The local stack's own parts against a moto server: the template's buckets, tables and queues created by moto's
CloudFormation under their local names (maas_local.stack), and the SQS event source mapping moto cannot run
without Docker (maas_local.queues.QueuePoller), with the queue's redrive policy left to moto's SQS."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maas_local.queues import QueuePoller
from maas_local.stack import LocalStack, local_resources_template
from maas_local.template import load_template, local_resource_names, queue_consumers

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Visibility: {Type: Number, Default: 45}
Resources:
  WorkQueue:
    Type: AWS::SQS::Queue
    DependsOn: Consumer
    Properties:
      VisibilityTimeout: !Ref Visibility
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn
        maxReceiveCount: 2
  WorkDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
  Sessions:
    Type: AWS::Serverless::SimpleTable
    Properties:
      PrimaryKey: {Name: session, Type: String}
  Consumer:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/capture/
      Handler: app.lambda_handler
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    path = tmp_path_factory.mktemp("stack") / "template.yaml"
    path.write_text(textwrap.dedent(TEMPLATE), encoding="utf-8")
    with LocalStack(path) as local:
        yield local


@pytest.fixture
def queue(stack: LocalStack) -> str:
    """The work queue and its dead-letter queue, new and empty (moto allows one purge a minute: a fresh stack)."""
    stack.reset()
    stack.create_resources()
    return stack.names["WorkQueue"]


def send(stack: LocalStack, *bodies: str) -> None:
    for body in bodies:
        stack.client("sqs").send_message(QueueUrl=stack.names["WorkQueue"], MessageBody=body)


def bodies(stack: LocalStack, logical_id: str) -> list[str]:
    messages = stack.client("sqs").receive_message(QueueUrl=stack.names[logical_id], MaxNumberOfMessages=10,
                                                   WaitTimeSeconds=0)
    return sorted(m["Body"] for m in messages.get("Messages", []))


class Recorder:
    """A consumer function: records each event and reports the records whose body is in `failing`."""

    def __init__(self, failing: set[str] | None = None, crash: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.failing = failing or set()
        self.crash = crash

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        if self.crash:
            raise RuntimeError("the function crashed")
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                      if r["body"] in self.failing]}


def test_the_local_resources_are_the_templates_own_under_their_local_names() -> None:
    """Given template.yaml,
    when the local stack's CloudFormation template is made of it,
    then it holds every bucket, table and queue under its local name, the KMS key the bucket's encryption
    names, the EventBridge rule of the canary alarms, the scheduler role and alarm topic (with its key) the
    admin function's environment names (and nothing the deployed stack alone needs: no function, no API,
    the rule's function target named by its local ARN), with no DependsOn."""
    template = load_template(ROOT / "template.yaml")
    names = local_resource_names(template)
    body = local_resources_template(template, names)
    resources = body["Resources"]
    assert sorted(resources) == ["AlarmTopic", "AlarmTopicKey", "BatchDeadLetterQueue", "CanaryAlarmRule",
                                 "CaptureDeadLetterQueue", "CapturesTable", "JobsTable", "ModelBucket", "ModelKey",
                                 "RegistryTable", "SchedulerRole"]
    rule = resources["CanaryAlarmRule"]["Properties"]
    assert [t["Arn"] for t in rule["Targets"]] == [names["GuardrailFunction.Arn"]]
    assert names["GuardrailFunction.Arn"] == \
        "arn:aws:lambda:us-east-1:123456789012:function:maas-local-guardrail-function"
    assert rule["Name"] == names["CanaryAlarmRule"] and resources["AlarmTopic"]["Properties"]["TopicName"] == \
        names["AlarmTopic.Name"]
    assert resources["ModelBucket"]["Properties"]["BucketName"] == "maas-models"
    assert resources["RegistryTable"]["Properties"]["TableName"] == "maas-registry"
    assert resources["CaptureDeadLetterQueue"]["Properties"]["QueueName"] == "maas-local-capture-dead-letter-queue"
    assert resources["ModelKey"] == template["Resources"]["ModelKey"]
    assert not any("DependsOn" in res for res in resources.values())


def test_moto_creates_them_with_the_templates_properties_and_versioning(stack: LocalStack) -> None:
    """Given a template with a queue whose redrive policy names its dead-letter queue, a parameter for its
    visibility timeout and a SimpleTable,
    when the local stack starts,
    then moto's CloudFormation made the queues with those attributes and the table with its primary key,
    and template.yaml's model bucket (the default stack) is versioned and KMS-encrypted."""
    sqs = stack.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=stack.names["WorkQueue"], AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "45"
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": stack.names["WorkDeadLetterQueue.Arn"],
                                                       "maxReceiveCount": 2}
    dlq = sqs.get_queue_attributes(QueueUrl=stack.names["WorkDeadLetterQueue"], AttributeNames=["All"])
    assert dlq["Attributes"]["MessageRetentionPeriod"] == "1209600"
    table = stack.client("dynamodb").describe_table(TableName=stack.names["Sessions"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "session", "KeyType": "HASH"}]

    stack.stop()
    try:
        with LocalStack() as default:
            s3 = default.client("s3")
            assert s3.get_bucket_versioning(Bucket="maas-models")["Status"] == "Enabled"
            rules = s3.get_bucket_encryption(Bucket="maas-models")["ServerSideEncryptionConfiguration"]["Rules"]
            assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    finally:
        stack.start()


def test_the_poller_hands_a_batch_to_the_function_as_lambdas_sqs_event(stack: LocalStack, queue: str) -> None:
    """Given the template's SQS event (batch size 5, ReportBatchItemFailures) and three messages,
    when the poller drains the queue,
    then the function got them in one event shaped as Lambda's (messageId, body, eventSource aws:sqs, the
    queue's ARN) and the queue is empty."""
    [consumer] = queue_consumers(stack.template, stack.names, base_dir=ROOT)
    assert (consumer.queue_url, consumer.batch_size, consumer.report_batch_item_failures) == (queue, 5, True)
    send(stack, "a", "b", "c")
    function = Recorder()
    poller = QueuePoller(queue, function, batch_size=consumer.batch_size, retry_delay=0)
    poller.drain()
    records = [r for event in function.events for r in event["Records"]]
    assert sorted(r["body"] for r in records) == ["a", "b", "c"]
    assert {r["eventSource"] for r in records} == {"aws:sqs"}
    assert {r["eventSourceARN"] for r in records} == {stack.names["WorkQueue.Arn"]}
    assert poller.delivered == 3 and poller.failed == 0
    assert bodies(stack, "WorkQueue") == []


def test_a_reported_failure_is_retried_and_then_dead_lettered_by_the_queue(stack: LocalStack, queue: str) -> None:
    """Given a function that reports one message of its batch as failed, every time,
    when the poller drains the queue,
    then the others are deleted at once, the failing one is delivered again, and after maxReceiveCount (2)
    receives moto's redrive moves it to the dead-letter queue."""
    send(stack, "good", "bad")
    function = Recorder(failing={"bad"})
    poller = QueuePoller(queue, function, retry_delay=0)
    poller.drain()
    delivered = [r["body"] for event in function.events for r in event["Records"]]
    assert delivered.count("good") == 1 and delivered.count("bad") == 2
    assert bodies(stack, "WorkDeadLetterQueue") == ["bad"]


def test_a_function_that_raises_fails_its_whole_batch(stack: LocalStack, queue: str) -> None:
    """Given a function that raises,
    when the poller takes a batch of two messages,
    then both stay on the queue (to come back after the retry delay), counted as failed."""
    send(stack, "x", "y")
    poller = QueuePoller(queue, Recorder(crash=True), retry_delay=1)
    deadline = time.monotonic() + 10
    while poller.delivered < 2 and time.monotonic() < deadline:
        poller.poll_once()
    assert poller.delivered == 2 and poller.failed == 2
    time.sleep(1.2)
    assert bodies(stack, "WorkQueue") == ["x", "y"]
