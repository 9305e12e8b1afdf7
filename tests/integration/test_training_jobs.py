"""Training as a cloud batch job: the datasets/ trigger (functions/train_trigger, maas_core.training_jobs)
submitting to moto's AWS Batch, `maas train --remote`, the training job's s3:// inputs, and the local
in-process runner.

moto's Batch runs no container here (`"batch": {"use_docker": False}`): a submitted job is recorded with
its name, queue, definition and command, and moves to SUCCEEDED on its own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from maas_core import aws
from maas_core.errors import ServiceUnavailableError
from maas_core.registry import Registry
from maas_core.training_jobs import (
    JOB_NAME_MAX,
    TrainingRequestError,
    config_folders,
    install_in_process_trainer,
    job_name,
    parse_dataset_key,
    request_for_upload,
)
from maas_training.cli import main as train_main
from maas_training.datasets import PENGUINS
from tests.conftest import create_registry_table
from tests.lambda_events import FakeLambdaContext, load_function

BUCKET = "jobs-models"
TABLE = "jobs-registry"
PENGUINS_CONFIG = {"target": "species", "exclude": ["year"], "optional": ["sex"], "epochs": 3, "model": "mlp"}


@dataclass
class BatchWorld:
    bucket: str
    table: str
    queue_arn: str
    definition_arn: str
    app: Any

    def batch(self) -> Any:
        return boto3.client("batch")

    def s3(self) -> Any:
        return boto3.client("s3")

    def put(self, key: str, body: bytes | str, **kwargs: Any) -> dict[str, Any]:
        data = body.encode() if isinstance(body, str) else body
        return self.s3().put_object(Bucket=self.bucket, Key=key, Body=data, **kwargs)

    def trigger(self, *keys: str) -> dict[str, Any]:
        return self.app.lambda_handler(s3_event(self.bucket, *keys), FakeLambdaContext(remaining_ms=30_000))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job submitted to the training queue, fully described."""
        summaries = self.batch().list_jobs(jobQueue=self.queue_arn, jobStatus="SUCCEEDED")["jobSummaryList"]
        summaries += [j for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "FAILED")
                      for j in self.batch().list_jobs(jobQueue=self.queue_arn, jobStatus=status)["jobSummaryList"]]
        ids = sorted({j["jobId"] for j in summaries})
        return self.batch().describe_jobs(jobs=ids)["jobs"] if ids else []


def s3_event(bucket: str, *keys: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """An S3 notification as Lambda receives it (keys URL-encoded, as S3 sends them)."""
    from urllib.parse import quote_plus

    return {"Records": [{"eventSource": "aws:s3", "eventName": event_name,
                         "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(k, safe="/")}}} for k in keys]}


def create_batch_queue() -> tuple[str, str]:
    """A Fargate compute environment, job queue and job definition in moto (as template.yaml declares them)."""
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="maas-training", Description="training", VpcId=vpc)["GroupId"]
    iam = boto3.client("iam")
    # the compute environment's service role: moto wants one
    role = iam.create_role(RoleName="maas-batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    job_role = iam.create_role(RoleName="maas-training-job", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = boto3.client("batch")
    env = batch.create_compute_environment(
        computeEnvironmentName="maas-training", type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "FARGATE", "maxvCpus": 16, "subnets": [subnet], "securityGroupIds": [group]})
    queue = batch.create_job_queue(jobQueueName="maas-training", state="ENABLED", priority=1, computeEnvironmentOrder=[
        {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])
    definition = batch.register_job_definition(
        jobDefinitionName="maas-training", type="container", platformCapabilities=["FARGATE"],
        containerProperties={"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/maas-training:1",
                             "command": ["--help"], "jobRoleArn": job_role, "executionRoleArn": job_role,
                             "resourceRequirements": [{"type": "VCPU", "value": "2"},
                                                      {"type": "MEMORY", "value": "4096"}],
                             "networkConfiguration": {"assignPublicIp": "ENABLED"}})
    return queue["jobQueueArn"], definition["jobDefinitionArn"]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchWorld]:
    """Given a moto account with a versioned model bucket, the registry table and a Batch job queue, and the
    trigger's environment as template.yaml sets it (runner batch, the queue and the job definition)."""
    with mock_aws(config={"batch": {"use_docker": False}}):
        aws.reset_clients()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        create_registry_table(TABLE)
        queue, definition = create_batch_queue()
        for name, value in {"MAAS_MODEL_BUCKET": BUCKET, "MAAS_REGISTRY_TABLE": TABLE, "MAAS_TRAINING_RUNNER": "batch",
                            "MAAS_TRAINING_JOB_QUEUE": queue, "MAAS_TRAINING_JOB_DEFINITION": definition}.items():
            monkeypatch.setenv(name, value)
        yield BatchWorld(BUCKET, TABLE, queue, definition, load_function("train_trigger"))
        aws.reset_clients()


# --- which uploads start a job (no AWS) -----------------------------------------------------------


def test_dataset_keys_name_the_model_and_anything_else_is_refused_with_the_reason() -> None:
    assert parse_dataset_key("datasets/penguins/penguins.csv") == ("penguins", "penguins.csv")
    assert parse_dataset_key("datasets/penguins/2024/jan.JSONL") == ("penguins", "2024/jan.JSONL")
    refused = {
        "batch/input/penguins/p.csv": "not under datasets/",
        "datasets/p.csv": "no model folder",
        "datasets/bad name!/p.csv": "is not a model name",
        "datasets/penguins/notes.txt": "expected a .csv or .jsonl file",
        "datasets/penguins/p.csv.gz": "expected a .csv or .jsonl file",
        "datasets/penguins/.csv": "expected a .csv or .jsonl file",
    }
    for key, reason in refused.items():
        with pytest.raises(TrainingRequestError) as err:
            parse_dataset_key(key)
        assert reason in err.value.message and err.value.status == 422, (key, err.value.message)
    assert config_folders("datasets/penguins/p.csv") == ["datasets/penguins/"]
    assert config_folders("datasets/penguins/run/p.csv") == ["datasets/penguins/run/", "datasets/penguins/"]


def test_job_names_are_deterministic_sanitised_and_fit_batch_limits() -> None:
    """Given dataset keys with spaces, dots, unicode and a 300-character file name,
    then each job name is at most 128 characters of [A-Za-z0-9_-] starting with a letter, the same for the same
    object version and different for another version or key."""
    import re

    keys = ["datasets/penguins/penguins.csv", "datasets/my.model/2024 jan/données été.csv",
            "datasets/m/" + "x" * 300 + ".jsonl"]
    for key in keys:
        model = key.split("/")[1]
        name = job_name(model, key, "v1")
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,127}", name) and len(name) <= JOB_NAME_MAX, name
        assert name == job_name(model, key, "v1")
        assert name != job_name(model, key, "v2")
    assert job_name("penguins", keys[0], "v1").startswith("maas-train-penguins-penguins-")
    assert (job_name("m", "datasets/m/" + "x" * 300 + ".jsonl", "v")
            != job_name("m", "datasets/m/" + "x" * 299 + "y.jsonl", "v"))


# --- the trigger submitting to Batch ---------------------------------------------------------------


def test_a_dataset_with_a_config_beside_it_submits_one_job_running_maas_train_on_it(world: BatchWorld) -> None:
    """Given datasets/penguins/training.json and then datasets/penguins/penguins.csv uploaded,
    when the trigger gets the dataset's ObjectCreated event,
    then one job is submitted to the training queue with the training job definition, named after the object
    version, whose container command is maas-train's arguments for that dataset and config."""
    world.put("datasets/penguins/training.json", json.dumps(PENGUINS_CONFIG))
    version = world.put("datasets/penguins/penguins.csv", PENGUINS.read_bytes())["VersionId"]
    out = world.trigger("datasets/penguins/penguins.csv")
    assert out["rejected"] == [] and out["ignored"] == [] and len(out["started"]) == 1
    jobs = world.jobs()
    assert len(jobs) == 1
    job = jobs[0]
    assert job["jobId"] == out["started"][0]["job_id"]
    assert job["jobName"] == job_name("penguins", "datasets/penguins/penguins.csv", version)
    assert job["jobQueue"] == world.queue_arn
    assert job["jobDefinition"] == world.definition_arn
    assert job["container"]["command"] == [
        "--data", f"s3://{BUCKET}/datasets/penguins/penguins.csv", "--model-name", "penguins",
        "--config", f"s3://{BUCKET}/datasets/penguins/training.json", "--bucket", BUCKET, "--table", TABLE]
    env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert (env["MAAS_MODEL_BUCKET"], env["MAAS_REGISTRY_TABLE"]) == (BUCKET, TABLE)

    # the same upload delivered again gets the same name; a new upload of the same key another one
    again = world.trigger("datasets/penguins/penguins.csv")["started"][0]
    assert again["job_name"] == job["jobName"]
    world.put("datasets/penguins/penguins.csv", PENGUINS.read_bytes())
    assert world.trigger("datasets/penguins/penguins.csv")["started"][0]["job_name"] != job["jobName"]


def test_the_config_nearest_the_dataset_is_used_then_the_models_own(world: BatchWorld) -> None:
    """Given a config in datasets/penguins/ (YAML) and another in datasets/penguins/run2/,
    then a dataset in run2/ uses run2's, and one in run1/ (no config there) uses the model folder's."""
    world.put("datasets/penguins/training.yaml", "target: species\n")
    world.put("datasets/penguins/run2/training.json", json.dumps(PENGUINS_CONFIG))
    world.put("datasets/penguins/run2/training.json.bak", "{}")  # not a config name
    for key in ("datasets/penguins/run1/p.csv", "datasets/penguins/run2/p.csv"):
        world.put(key, PENGUINS.read_bytes())
    started = world.trigger("datasets/penguins/run1/p.csv", "datasets/penguins/run2/p.csv")["started"]
    assert [s["config"] for s in started] == [f"s3://{BUCKET}/datasets/penguins/training.yaml",
                                              f"s3://{BUCKET}/datasets/penguins/run2/training.json"]
    commands = {j["jobName"]: j["container"]["command"] for j in world.jobs()}
    assert len(commands) == 2
    assert all(c[c.index("--config") + 1] in {s["config"] for s in started} for c in commands.values())


def test_uploading_a_config_alone_starts_nothing(world: BatchWorld) -> None:
    """Given only datasets/penguins/training.json (and a folder placeholder) uploaded,
    then the trigger ignores both and submits nothing."""
    world.put("datasets/penguins/training.json", json.dumps(PENGUINS_CONFIG))
    world.put("datasets/penguins/", b"")
    out = world.trigger("datasets/penguins/training.json", "datasets/penguins/")
    assert out == {"started": [], "ignored": ["datasets/penguins/training.json", "datasets/penguins/"], "rejected": []}
    assert world.jobs() == []


def test_maas_target_metadata_stands_in_for_a_config(world: BatchWorld) -> None:
    """Given a JSONL dataset with no config beside it but maas-target / maas-promote metadata,
    then the job gets --target and --promote and no --config."""
    world.put("datasets/tiny/rows.jsonl", '{"x": 1, "y": "a"}\n',
              Metadata={"maas-target": "y", "maas-promote": "staging"})
    started = world.trigger("datasets/tiny/rows.jsonl")["started"]
    assert len(started) == 1 and started[0]["config"] is None
    command = world.jobs()[0]["container"]["command"]
    assert "--config" not in command
    assert command[command.index("--target") + 1] == "y" and command[command.index("--promote") + 1] == "staging"


def test_keys_that_cannot_start_a_job_are_rejected_with_the_reason_and_nothing_is_submitted(world: BatchWorld) -> None:
    """Given uploads that are not datasets (a .txt, a file with no model folder, a bad model name), a dataset
    with neither a config nor maas-target metadata, one with a bad maas-promote alias, and a deleted one,
    when the trigger gets their events (in one SQS-wrapped batch, plus an s3:TestEvent),
    then each is rejected with a message naming the key and what is wrong, the invocation succeeds (a retry
    cannot fix a key) and no job is submitted."""
    reasons = {
        "datasets/penguins/notes.txt": "expected a .csv or .jsonl file",
        "datasets/orphan.csv": "no model folder",
        "datasets/bad name!/p.csv": "is not a model name",
        "datasets/penguins/p.csv": "no training config beside it",
        "datasets/tiny/p.csv": "promote",
        "datasets/penguins/gone.csv": "no longer exists",
    }
    for key in reasons:
        if key != "datasets/penguins/gone.csv":
            world.put(key, "a,b\n1,2\n", **({"Metadata": {"maas-target": "b", "maas-promote": "bad alias!"}}
                                           if key.startswith("datasets/tiny/") else {}))
    wrapped = {"Records": [{"messageId": "m1", "body": json.dumps(s3_event(BUCKET, *reasons))},
                           {"messageId": "m2", "body": json.dumps({"Event": "s3:TestEvent"})},
                           {"messageId": "m3", "body": "not json"}]}
    out = world.app.lambda_handler(wrapped, FakeLambdaContext())
    assert out["started"] == [] and out["ignored"] == []
    assert [r["key"] for r in out["rejected"]] == list(reasons)
    for rejected in out["rejected"]:
        assert rejected["code"] == "invalid_training_dataset"
        assert rejected["key"] in rejected["message"] and reasons[rejected["key"]] in rejected["message"], rejected
    assert world.jobs() == []


def test_a_batch_api_failure_fails_the_invocation_so_lambda_retries(world: BatchWorld,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a job queue that does not exist (e.g. a misconfigured stack),
    then the trigger raises (503-class, retried by Lambda) instead of dropping the dataset silently."""
    monkeypatch.setenv("MAAS_TRAINING_JOB_QUEUE", "arn:aws:batch:us-east-1:123456789012:job-queue/missing")
    world.put("datasets/penguins/training.json", json.dumps(PENGUINS_CONFIG))
    world.put("datasets/penguins/p.csv", PENGUINS.read_bytes())
    with pytest.raises(ServiceUnavailableError):
        world.trigger("datasets/penguins/p.csv")


def test_request_for_upload_uses_the_etag_on_an_unversioned_bucket(world: BatchWorld) -> None:
    world.s3().create_bucket(Bucket="plain-bucket")
    etag = world.s3().put_object(Bucket="plain-bucket", Key="datasets/m/d.csv", Body=b"a\n1\n",
                                 Metadata={"maas-target": "a"})["ETag"].strip('"')
    request = request_for_upload("plain-bucket", "datasets/m/d.csv")
    assert request is not None and request.object_version == etag
    assert request.job_name == job_name("m", "datasets/m/d.csv", etag)


def test_the_local_train_trigger_sits_beside_the_batch_trigger_on_one_bucket(world: BatchWorld) -> None:
    """Given the local stack's two S3 -> SQS triggers configured on the same bucket,
    then the bucket keeps both notifications (distinct ids, prefixes batch/input/ and datasets/), and a dataset
    upload reaches only the train trigger's queue, whose handler submits the job."""
    from maas_local.batch_trigger import BatchTrigger
    from maas_local.train_trigger import TrainTrigger

    batch = BatchTrigger(BUCKET, handler=lambda event, context: {"processed": []}).configure()
    train = TrainTrigger(BUCKET, handler=world.app.lambda_handler).configure()
    config = world.s3().get_bucket_notification_configuration(Bucket=BUCKET)["QueueConfigurations"]
    assert sorted((c["Id"], c["Filter"]["Key"]["FilterRules"][0]["Value"]) for c in config) == [
        ("maas-local-batch", "batch/input/"), ("maas-local-train", "datasets/")]
    world.put("datasets/penguins/training.json", json.dumps(PENGUINS_CONFIG))
    world.put("datasets/penguins/penguins.csv", PENGUINS.read_bytes())
    train.drain(timeout=30)
    batch.drain(timeout=30)
    started = [s for r in train.processed for s in r["started"]]
    assert [s["dataset"] for s in started] == [f"s3://{BUCKET}/datasets/penguins/penguins.csv"]
    assert [r for r in batch.processed if r["processed"]] == []
    assert len(world.jobs()) == 1


# --- maas train --remote ------------------------------------------------------------------------


def _run_cli(argv: list[str]) -> int:
    from maas_cli.main import main

    return main(argv)


def test_maas_train_remote_uploads_and_follows_the_job_the_trigger_submits(world: BatchWorld, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Given the bucket's ObjectCreated notifications under datasets/ going (through SQS, as the local stack
    wires them) to the trigger, polling in a thread,
    when `maas train --remote --wait` runs with maas-train's flags and the job queue,
    then it uploads training.json (the flags as settings) and the dataset under datasets/penguins/<run>/, finds
    the job the trigger submitted by its name, prints its id and follows it to SUCCEEDED (exit 0)."""
    from maas_local.train_trigger import TrainTrigger

    trigger = TrainTrigger(BUCKET, handler=world.app.lambda_handler, wait_seconds=0).configure()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if trigger.poll_once() == 0:
                stop.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        data = tmp_path / "penguins.csv"
        data.write_bytes(PENGUINS.read_bytes())
        code = _run_cli(["--bucket", BUCKET, "--table", TABLE, "train", "--remote", "--data", str(data),
                         "--model-name", "penguins", "--target", "species", "--exclude", "year", "--epochs", "7",
                         "--promote", "prod", "--job-queue", world.queue_arn, "--wait", "--poll-seconds", "0.05"])
    finally:
        stop.set()
        thread.join(10)
    out = capsys.readouterr().out
    assert code == 0, out
    jobs = world.jobs()
    assert len(jobs) == 1 and jobs[0]["status"] == "SUCCEEDED"
    assert f"id {jobs[0]['jobId']}" in out and "SUCCEEDED" in out
    command = jobs[0]["container"]["command"]
    dataset_uri = command[command.index("--data") + 1]
    config_uri = command[command.index("--config") + 1]
    assert dataset_uri.startswith(f"s3://{BUCKET}/datasets/penguins/") and dataset_uri.endswith("/penguins.csv")
    assert config_uri == dataset_uri.rsplit("/", 1)[0] + "/training.json"
    uploaded = json.loads(world.s3().get_object(Bucket=BUCKET, Key=config_uri.split("/", 3)[3])["Body"].read())
    assert uploaded == {"model_name": "penguins", "target": "species", "exclude": ["year"], "epochs": 7,
                        "promote": "prod"}


def test_maas_train_remote_refuses_bad_settings_before_uploading_anything(
        world: BatchWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Given `maas train --remote` without --target, with a .txt dataset, or with --wait but no job queue,
    then it exits 2 naming the problem and the bucket stays empty."""
    data = tmp_path / "penguins.csv"
    data.write_bytes(PENGUINS.read_bytes())
    notes = tmp_path / "notes.txt"
    notes.write_text("a,b\n1,2\n")
    base = ["--bucket", BUCKET, "--table", TABLE, "train", "--remote"]
    assert _run_cli(base + ["--data", str(data), "--model-name", "penguins"]) == 2
    assert "--target is required" in capsys.readouterr().err
    monkeypatch.delenv("MAAS_TRAINING_JOB_QUEUE")
    assert _run_cli(base + ["--data", str(data), "--model-name", "penguins", "--target", "species", "--wait"]) == 2
    assert "--wait needs the training job queue" in capsys.readouterr().err
    assert _run_cli(base + ["--data", str(notes), "--model-name", "penguins", "--target", "b"]) == 1
    assert "expected a .csv or .jsonl file" in capsys.readouterr().err
    assert world.s3().list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


# --- the training job's inputs (maas_training.sources) --------------------------------------------


def test_maas_train_reports_a_missing_s3_dataset_without_training(world: BatchWorld,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from maas_training.cli import main

    code = main(["--data", f"s3://{BUCKET}/datasets/penguins/missing.csv", "--model-name", "penguins",
                 "--target", "species", "--bucket", BUCKET, "--table", TABLE])
    assert code == 1
    assert f"s3://{BUCKET}/datasets/penguins/missing.csv does not exist" in capsys.readouterr().err


def test_jsonl_datasets_become_csv_with_every_key_as_a_column(tmp_path: Path) -> None:
    from maas_training.data import load_csv
    from maas_training.sources import jsonl_to_csv

    src = tmp_path / "rows.jsonl"
    src.write_text('{"a": 1.5, "b": "x"}\n\n{"b": "y, z", "c": true}\n{"a": null, "b": "w"}\n')
    columns = load_csv(jsonl_to_csv(src, tmp_path))
    assert columns == {"a": ["1.5", None, None], "b": ["x", "y, z", "w"], "c": [None, "true", None]}
    src.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2: expected a JSON object"):
        jsonl_to_csv(src, tmp_path)


# --- locally: the same trigger trains in-process ---------------------------------------------------


@pytest.fixture
def in_process_trainer() -> Iterator[None]:
    """Given maas-train's main installed as the in-process trainer, as the local stack's trigger installs it
    (maas_local.train_trigger.TrainTrigger)."""
    install_in_process_trainer(train_main)
    yield
    install_in_process_trainer(None)


def test_the_in_process_runner_without_a_trainer_fails_the_invocation(world: BatchWorld,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Given MAAS_TRAINING_RUNNER=inprocess in a process where nothing installed a trainer (the core never imports
    the training package itself),
    when a dataset's upload reaches the trigger,
    then the invocation fails (so Lambda would retry it), naming who installs one, and nothing is submitted."""
    monkeypatch.setenv("MAAS_TRAINING_RUNNER", "inprocess")
    install_in_process_trainer(None)
    world.put("datasets/penguins/training.json", json.dumps(PENGUINS_CONFIG))
    world.put("datasets/penguins/penguins.csv", PENGUINS.read_bytes())
    with pytest.raises(RuntimeError, match="no trainer is installed.*maas_local.train_trigger"):
        world.trigger("datasets/penguins/penguins.csv")
    assert world.jobs() == []


@pytest.mark.training
@pytest.mark.usefixtures("in_process_trainer")
def test_the_local_runner_trains_and_registers_the_uploaded_dataset_in_process(world: BatchWorld,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Given MAAS_TRAINING_RUNNER=inprocess (what the local stack sets), maas-train's main as the in-process
    trainer, and the penguins dataset uploaded under datasets/penguins/ with a training.json promoting to prod,
    when the trigger gets the event,
    then the job's own command line runs here: version 1 is published and registered, prod points at it, and
    nothing is submitted to Batch."""
    monkeypatch.setenv("MAAS_TRAINING_RUNNER", "inprocess")
    world.put("datasets/penguins/training.json", json.dumps({**PENGUINS_CONFIG, "promote": "prod"}))
    world.put("datasets/penguins/penguins.csv", PENGUINS.read_bytes())
    out = world.trigger("datasets/penguins/penguins.csv")
    assert [(s["runner"], s["status"], s["exit_code"]) for s in out["started"]] == [("inprocess", "SUCCEEDED", 0)]
    registry = Registry(TABLE)
    assert registry.resolve_alias("penguins", "prod").version == "1"
    listed = world.s3().list_objects_v2(Bucket=BUCKET, Prefix="models/penguins/1/")
    assert {o["Key"].rsplit("/", 1)[-1] for o in listed["Contents"]} >= {"model.onnx", "preprocess.json",
                                                                         "manifest.json"}
    assert world.jobs() == []
