"""Large batch files on the Distributed Map path (maas_core.batch.shards/distributed, functions/batch_shards,
maas_local.distributed_map) against the single-function path, on moto, with tiny shards.

The tiny model (maas_local/testing/tiny_model.py): fields x1 (number, required), x2 (optional), colour.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from maas_core import aws
from maas_core.batch import BatchFileError, run_batch
from maas_core.batch.distributed import plan_file, remove_work, run_shards
from maas_core.batch.paths import file_id
from maas_core.batch.reader import FileFormat, Limits, read_records
from maas_core.batch.shards import plan_shards
from maas_core.predictor import Predictor
from maas_core.settings import Settings, get_settings
from maas_local.distributed_map import LocalExecutions, LocalStateMachine
from maas_local.testing.tiny_model import publish_tiny_model
from tests.conftest import AwsWorld
from tests.lambda_events import FakeLambdaContext, load_function, rest_event

# rows that straddle boundaries: quoted line breaks, a stray quote, CRLF, a lone CR, blank lines, non-ASCII,
# a rejected row, and a last row without a line break
TRICKY_CSV = ("\ufeffx1,x2,colour\n" + "".join(f"{i % 7},{i % 3},blue\n" for i in range(40))
              + '1.5,2,"re\nd"\r\n' + '2,"1",red\n' + "\n" + 'bad,1,"blue\n' + "3,1,rød\r"
              + "".join(f"{i % 5},,red\r\n" for i in range(30)) + '4,"2\n",blue\n' + "oops,2\n" + "9,1,blue")
TRICKY_JSONL = "".join(json.dumps({"x1": i % 9, "colour": "blue" if i % 2 else "rød"}) + ("\n" if i % 4 else "\n\n")
                       for i in range(60)) + "{not json}\n" + '{"x1": 1}'


def _rows(chunks: Iterator[Any]) -> list[tuple[list[int], list[dict[str, Any]], list[Any], int, int]]:
    return [(c.rows, c.errors, c.records, c.size, c.blank) for c in chunks]


@pytest.mark.parametrize(("text", "kind"), [(TRICKY_CSV, "csv"), (TRICKY_JSONL, "jsonl")])
def test_shards_read_back_exactly_the_rows_and_chunks_of_the_whole_file(text: str, kind: str) -> None:
    """Given a file whose records straddle every possible cut (quoted line breaks, a stray quote, CR/CRLF/LF,
    a BOM, multi-byte characters, no final line break),
    When it is planned into the smallest shards (one chunk of 3 rows each) and each shard is read on its own,
    Then together they give the whole file's chunks exactly: every row once, same numbers, errors and records."""
    # a small max_field_chars: a stray quote holds lines back for at most that many characters
    data, fmt, limits = text.encode(), FileFormat(kind, False), Limits(max_field_chars=40)  # type: ignore[arg-type]
    whole = _rows(read_records([data], fmt, chunk_rows=3, limits=limits))
    plan = plan_shards([data[i:i + 7] for i in range(0, len(data), 7)], fmt, size=len(data), shard_bytes=1,
                       chunk_rows=3, limits=limits)
    assert len(plan.shards) > 20 and plan.shards[0].start == 0 and plan.shards[-1].end == len(data)
    assert all(a.end == b.start for a, b in zip(plan.shards, plan.shards[1:], strict=False))
    parts = []
    for shard in plan.shards:
        head = data[:plan.header_end] if shard.start else b""
        parts += _rows(read_records([head + data[shard.start:shard.end]], fmt, chunk_rows=3, limits=limits,
                                    first_row=shard.first_row, whole_file=False))
    assert parts == whole
    assert plan.rows == sum(size for *_, size, _ in whole)


def test_the_plan_raises_the_file_errors_of_the_single_path() -> None:
    """Given files the single path refuses (not UTF-8 deep inside, too many rows, a header without x1),
    When they are planned,
    Then the plan raises the same BatchFileError code and message as reading them does."""
    fmt = FileFormat("csv", False)
    for data, limits, required in [(b"x1\n" + b"1\n" * 10 + b"\xff\n", Limits(), ["x1"]),
                                   (b"x1\n" + b"1\n" * 10, Limits(max_rows=5), ["x1"]),
                                   (b"x2\n1\n", Limits(), ["x1"])]:
        with pytest.raises(BatchFileError) as single:
            list(read_records([data], fmt, required=required, limits=limits))
        with pytest.raises(BatchFileError) as planned:
            plan_shards([data], fmt, size=len(data), shard_bytes=1, chunk_rows=1, required=required, limits=limits)
        assert (planned.value.code, planned.value.message) == (single.value.code, single.value.message)


# --- both paths on moto -------------------------------------------------------------------------------


@pytest.fixture
def world(aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsWorld, Predictor, Any]]:
    """The tiny model published; tiny shards and chunks; the state machine in moto, run by the local stand-in."""
    import moto.s3.models

    from maas_core.batch import distributed

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 256)  # so tiny shard outputs copy as parts
    monkeypatch.setattr(distributed, "ASSEMBLY_PART_SIZE", 256)
    publish_tiny_model(aws_world.store, aws_world.registry)
    for name, value in {"MAAS_BATCH_CHUNK_ROWS": "4", "MAAS_BATCH_SHARD_BYTES": "100",
                        # a stray quote holds lines back for at most MAAS_MAX_FIELD_CHARS characters
                        "MAAS_MAX_FIELD_CHARS": "40",
                        "MAAS_BATCH_DISTRIBUTED_THRESHOLD_BYTES": "100"}.items():
        monkeypatch.setenv(name, value)
    executions = LocalExecutions(boto3.client("stepfunctions"), LocalStateMachine(max_workers=2))
    monkeypatch.setenv("MAAS_BATCH_STATE_MACHINE_ARN", executions.create())
    get_settings.cache_clear()
    apps = [load_function("batch"), load_function("batch_shards")]
    for app in apps:
        app.predictor.cache_clear()
    executions.machine._handler = apps[1].lambda_handler
    yield aws_world, Predictor(Settings(), aws_world.registry, aws_world.store), (apps[0], executions)
    get_settings.cache_clear()
    aws.reset_clients()


def _event(bucket: str, key: str) -> dict[str, Any]:
    s3 = {"bucket": {"name": bucket}, "object": {"key": key}}
    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": s3}]}


def _outputs(bucket: str, key: str) -> dict[str, tuple[bytes, dict[str, str]]]:
    s3 = boto3.client("s3")
    rest = key.removeprefix("batch/input/")
    out = {}
    for kind in ("predictions", "errors"):
        k = f"batch/output/{rest}.{kind}.jsonl"
        obj = s3.get_object(Bucket=bucket, Key=k)
        out[kind] = (obj["Body"].read(), obj["Metadata"])
        s3.delete_object(Bucket=bucket, Key=k)
    return out


def _keys(bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


@pytest.mark.parametrize(("name", "text"), [("tricky.csv", TRICKY_CSV), ("tricky.jsonl", TRICKY_JSONL)])
def test_the_same_file_through_both_paths_gives_byte_identical_outputs(world: Any, name: str, text: str) -> None:
    """Given a file with rows straddling shard boundaries, uploaded once,
    When the single function runs it, and then (outputs removed) the batch function hands it to the state machine,
    Then the predictions and errors files are byte-identical with the same metadata, the execution had several
    shards copied into a multipart upload, predicted + rejected + blank = read, and no work objects remain."""
    w, predictor, (batch_app, executions) = world
    key = f"batch/input/tiny/{name}"
    boto3.client("s3").put_object(Bucket=w.bucket, Key=key, Body=text.encode())
    single = run_batch(w.bucket, key, predictor, chunk_rows=4)
    expected = _outputs(w.bucket, key)

    started = batch_app.lambda_handler(_event(w.bucket, key), FakeLambdaContext())["processed"][0]
    assert started["status"] == "started"
    assert executions.run_pending() == 1
    outcome = next(iter(executions.outcomes.values()))
    assert outcome["status"] == "SUCCEEDED", outcome
    result = outcome["output"]["done"]["result"]
    assert outcome["output"]["plan"]["job"]["shards"] > 3
    assert _outputs(w.bucket, key) == expected
    assert {k: result[k] for k in ("rows", "predicted", "rejected", "blank", "version", "etag")} == \
        {k: getattr(single, k) for k in ("rows", "predicted", "rejected", "blank", "version", "etag")}
    assert result["predicted"] + result["rejected"] + result["blank"] == result["rows"]
    assert result["multipart"] is True
    assert _keys(w.bucket, "batch/work/") == []


def test_a_redelivered_event_starts_no_second_execution(world: Any) -> None:
    """Given a large file's S3 event,
    When it is delivered twice while the execution runs and once more after it finished, and then the same
    bytes are uploaded again,
    Then there is one execution for the upload; the late delivery is skipped; the re-upload's execution
    plans, finds the outputs of this ETag and version and stops there (no shard runs, the outputs stay)."""
    w, _, (batch_app, executions) = world
    key = "batch/input/tiny/again.csv"
    boto3.client("s3").put_object(Bucket=w.bucket, Key=key, Body=TRICKY_CSV.encode())
    first = [batch_app.lambda_handler(_event(w.bucket, key), FakeLambdaContext())["processed"][0] for _ in range(2)]
    assert [r["status"] for r in first] == ["started", "started"]
    assert executions.run_pending() == 1
    again = batch_app.lambda_handler(_event(w.bucket, key), FakeLambdaContext())["processed"][0]
    assert again["status"] == "skipped"
    assert executions.run_pending() == 0
    assert len(executions.sfn.list_executions(stateMachineArn=executions.arn)["executions"]) == 1
    assert executions.machine.invocations.count("plan") == 1
    written = _keys(w.bucket, "batch/output/")
    # the same bytes uploaded again: a new execution, whose plan finds this ETag and version done (S3's
    # LastModified, part of the execution's name, has one-second resolution: an upload in the same second
    # would be the same upload)
    time.sleep(1.1)
    boto3.client("s3").put_object(Bucket=w.bucket, Key=key, Body=TRICKY_CSV.encode())
    assert batch_app.lambda_handler(_event(w.bucket, key), FakeLambdaContext())["processed"][0]["status"] == "started"
    assert executions.run_pending() == 1
    assert [o["status"] for o in executions.outcomes.values()] == ["SUCCEEDED", "SUCCEEDED"]
    assert "shard" not in executions.machine.invocations[-2:] and executions.machine.invocations[-1] == "plan"
    assert _keys(w.bucket, "batch/output/") == written


def test_a_failing_shard_leaves_no_output_and_a_failure_report(world: Any) -> None:
    """Given a large file whose third shard keeps failing (after retries),
    When its execution runs,
    Then the execution fails, nothing is under batch/output/ or batch/work/, and batch/failed/ holds a report
    naming the input; the shard was tried 1 + 3 times (the definition's Retry)."""
    w, _, (batch_app, executions) = world
    real = executions.machine.handler

    def flaky(event: dict[str, Any], context: Any) -> Any:
        if event.get("step") == "shard" and event["Items"][0]["index"] == 2:
            raise ConnectionError("the shard's host went away")
        return real(event, context)

    executions.machine._handler = flaky
    key = "batch/input/tiny/flaky.csv"
    boto3.client("s3").put_object(Bucket=w.bucket, Key=key, Body=TRICKY_CSV.encode())
    batch_app.lambda_handler(_event(w.bucket, key), FakeLambdaContext())
    executions.run_pending()
    outcome = next(iter(executions.outcomes.values()))
    assert (outcome["status"], outcome["error"]) == ("FAILED", "BatchFileFailed")
    assert _keys(w.bucket, "batch/output/") == [] and _keys(w.bucket, "batch/work/") == []
    report = json.loads(boto3.client("s3").get_object(Bucket=w.bucket, Key="batch/failed/tiny/flaky.csv.error.json")[
        "Body"].read())
    assert report["input"] == f"s3://{w.bucket}/{key}" and report["error"] == "internal_error"
    assert executions.machine.invocations.count("fail") == 1


def test_a_file_error_found_by_the_plan_gives_the_single_paths_report(world: Any) -> None:
    """Given a large CSV with a byte that is not UTF-8 deep inside,
    When the single path runs it and then the state machine does,
    Then both write the same failure report and neither leaves outputs."""
    w, predictor, (batch_app, executions) = world
    key = "batch/input/tiny/broken.csv"
    boto3.client("s3").put_object(Bucket=w.bucket, Key=key, Body=TRICKY_CSV.encode() + b"\n1,\xff,red\n")
    failed = "batch/failed/tiny/broken.csv.error.json"
    with pytest.raises(BatchFileError):
        run_batch(w.bucket, key, predictor, chunk_rows=4)
    single = boto3.client("s3").get_object(Bucket=w.bucket, Key=failed)["Body"].read()
    boto3.client("s3").delete_object(Bucket=w.bucket, Key=failed)
    batch_app.lambda_handler(_event(w.bucket, key), FakeLambdaContext())
    executions.run_pending()
    assert boto3.client("s3").get_object(Bucket=w.bucket, Key=failed)["Body"].read() == single
    assert _keys(w.bucket, "batch/output/") == [] and _keys(w.bucket, "batch/work/") == []
    assert "shard" not in executions.machine.invocations


def test_append_object_copies_large_pieces_server_side_and_reads_only_small_ones(
        aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given objects of sizes around S3's minimum part (here 1 KiB: moto's minimum lowered alike), small ones
    between large ones,
    When they are appended in order to one AtomicS3Writer and committed,
    Then the object is their exact concatenation, completed as a multipart upload moto accepts (every part
    but the last at least the minimum), and most of its bytes were copied server-side, not read back."""
    import moto.s3.models

    from maas_core.batch.writer import AtomicS3Writer

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1024)
    s3 = boto3.client("s3")
    sizes = [5000, 10, 300, 2500, 1023, 1024, 7, 4096, 1]
    pieces = [bytes([65 + i]) * n for i, n in enumerate(sizes)]
    for i, piece in enumerate(pieces):
        s3.put_object(Bucket=aws_world.bucket, Key=f"parts/{i}", Body=piece)
    with AtomicS3Writer(s3, aws_world.bucket, "joined", part_size=1024) as out:
        for i, n in enumerate(sizes):
            out.append_object(f"parts/{i}", n)
        out.commit()
    assert s3.get_object(Bucket=aws_world.bucket, Key="joined")["Body"].read() == b"".join(pieces)
    assert out.multipart and out.copied_bytes > sum(sizes) / 2


def test_a_large_job_file_ends_its_job_once_through_the_state_machine(world: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a job created for the tiny model (jobs table in moto) and a rule that sends maas.batch events to SQS,
    When the job's large file is uploaded, handed to the state machine and run,
    Then the job is done with the file's counts and output keys, and exactly one completion event was put (by
    the assemble step: the hand-off itself announces nothing)."""
    from maas_core.jobs import JobStore, create_job, describe_job
    from maas_core.jobs.schemas import JobRequest

    w, _, (batch_app, executions) = world
    ddb, events, sqs = boto3.client("dynamodb"), boto3.client("events"), boto3.client("sqs")
    ddb.create_table(TableName="jobs", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}])
    monkeypatch.setenv("MAAS_JOBS_TABLE", "jobs")
    get_settings.cache_clear()
    queue = sqs.create_queue(QueueName="batch-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="batch-ends", EventPattern=json.dumps({"source": ["maas.batch"]}))
    events.put_targets(Rule="batch-ends", Targets=[{"Id": "q", "Arn": arn}])
    store, settings = JobStore("jobs"), get_settings()
    job = create_job(w.registry, store, boto3.client("s3"), settings, "apikey:k1", "tiny", JobRequest())
    key = job.upload.fields["key"]
    boto3.client("s3").put_object(Bucket=w.bucket, Key=key, Body=TRICKY_CSV.encode(), ContentType="text/csv",
                                  Metadata={"maas-job": job.job_id})

    assert batch_app.lambda_handler(_event(w.bucket, key), FakeLambdaContext())["processed"][0]["status"] == "started"
    assert executions.run_pending() == 1
    status = describe_job(store, boto3.client("s3"), settings, "apikey:k1", job.job_id)
    assert status.status == "done" and status.counts is not None, status
    assert status.counts.predicted + status.counts.rejected + status.counts.blank == status.counts.rows > 70
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    details = [json.loads(m["Body"]) for m in messages]
    assert [(d["detail-type"], d["detail"]["job_id"], d["detail"]["rows"]) for d in details] == \
        [("Batch job succeeded", job.job_id, status.counts.rows)]


# --- a running job's progress (GET /v1/jobs/{job_id}) ------------------------------------------------


@pytest.fixture
def jobs_api(world: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The world above with a jobs table: the jobs function's handler over API Gateway events, by API key."""
    boto3.client("dynamodb").create_table(
        TableName="jobs", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}])
    monkeypatch.setenv("MAAS_JOBS_TABLE", "jobs")
    get_settings.cache_clear()
    jobs = load_function("jobs")

    def call(method: str, path: str, body: Any = None, api_key: str = "key-1") -> tuple[int, dict[str, Any]]:
        event = rest_event(method, path, body=body)
        event["requestContext"].setdefault("identity", {})["apiKeyId"] = api_key
        resp = jobs.lambda_handler(event, FakeLambdaContext())
        return resp["statusCode"], json.loads(resp["body"])

    return call


def _uploaded_job(w: AwsWorld, call: Any, data: bytes, **request: Any) -> tuple[str, dict[str, Any]]:
    """A job created over the API and its file put where its form would put it; the file as the state machine's
    Plan step is given it (no S3 event: the test runs the steps itself)."""
    status, job = call("POST", "/v1/models/tiny/jobs", request)
    assert status == 200, job
    key = job["upload"]["fields"]["key"]
    s3 = boto3.client("s3")
    s3.put_object(Bucket=w.bucket, Key=key, Body=data, ContentType=job["upload"]["content_type"],
                  Metadata={"maas-job": job["job_id"]})
    head = s3.head_object(Bucket=w.bucket, Key=key)
    etag = head["ETag"].strip('"')
    return job["job_id"], {"bucket": w.bucket, "key": key, "etag": etag,
                           "file_id": file_id(w.bucket, key, etag, head["LastModified"])}


def _progress(call: Any, job_id: str) -> dict[str, Any]:
    status, body = call("GET", f"/v1/jobs/{job_id}")
    assert status == 200 and body["status"] == "running", body
    return dict(body["progress"])


def test_a_running_large_job_reports_its_stage_and_the_shards_done(jobs_api: Any, world: Any) -> None:
    """Given a job whose large CSV is uploaded,
    When its Plan step has not run, then has, then some shards (the last among them) and at last all are done,
    and Assemble ends the file,
    Then GET says distributed: planning with no counts; predicting with k of n shards and exactly their rows and
    bytes; assembling with every row and byte of the file; then done with the same rows. Another caller's GET
    is a 404 meanwhile, and the work area is under the prefix the jobs function's role may list and read."""
    w, predictor, (_, executions) = world
    data = TRICKY_CSV.encode()
    job_id, file = _uploaded_job(w, jobs_api, data)
    progress = _progress(jobs_api, job_id)
    assert progress == {"uploaded_bytes": len(data), "uploaded_at": progress["uploaded_at"], "path": "distributed",
                        "stage": "planning"}

    plan = plan_file(file, predictor)
    job = plan["job"]
    assert fnmatch.fnmatchcase(job["work"], "batch/work/*/jobs/*"), job["work"]  # JobsFunction's IAM prefix
    shards = json.loads(boto3.client("s3").get_object(Bucket=w.bucket, Key=job["work"] + "shards.json")["Body"].read())
    n = len(shards)
    assert n > 3 and _progress(jobs_api, job_id)["shards_done"] == 0
    first = run_shards(job, [shards[1], shards[-1]], predictor)
    progress = _progress(jobs_api, job_id)
    assert {k: progress[k] for k in ("path", "stage", "shards_total", "shards_done")} == \
        {"path": "distributed", "stage": "predicting", "shards_total": n, "shards_done": 2}
    assert progress["rows_done"] == sum(d["rows"] for d in first)
    assert progress["bytes_done"] == sum(s["end"] - s["start"] for s in (shards[1], shards[-1]))
    assert jobs_api("GET", f"/v1/jobs/{job_id}", api_key="key-2")[0] == 404

    run_shards(job, [s for s in shards if s not in (shards[1], shards[-1])], predictor)
    progress = _progress(jobs_api, job_id)
    assert (progress["stage"], progress["shards_done"], progress["rows_done"], progress["bytes_done"]) == \
        ("assembling", n, job["rows"], len(data))

    executions.machine.handler({"step": "assemble", "job": job}, FakeLambdaContext())
    status, body = jobs_api("GET", f"/v1/jobs/{job_id}")
    assert status == 200 and body["status"] == "done" and "progress" not in body, body
    assert body["counts"]["rows"] == job["rows"]


def _all_shards_done(jobs_api: Any, world: Any) -> tuple[str, dict[str, Any]]:
    """A large job's file planned and every shard run (Assemble not yet): its job id and the execution's job."""
    w, predictor, _ = world
    job_id, file = _uploaded_job(w, jobs_api, TRICKY_CSV.encode())
    job = plan_file(file, predictor)["job"]
    shards = json.loads(boto3.client("s3").get_object(Bucket=w.bucket, Key=job["work"] + "shards.json")["Body"].read())
    run_shards(job, shards, predictor)
    return job_id, job


def test_a_work_area_removed_while_it_is_read_is_the_file_ending_not_an_error(jobs_api: Any, world: Any) -> None:
    """Given a large job whose shards are all done,
    When its work area is removed (Assemble's last act) between the GET's listing and its read of the plan,
    and then when it is gone before the GET (the job's end not recorded yet: Failed removes first),
    Then the first GET is 200 running, assembling, with no counts; the second 200 running, planning."""
    w, _, _ = world
    job_id, job = _all_shards_done(jobs_api, world)

    def removed_first(params: dict[str, Any], **kwargs: Any) -> None:
        if params["Key"].startswith(job["work"]):
            remove_work(boto3.client("s3"), w.bucket, job["work"])

    events = aws.presigning_s3().meta.events  # the jobs function's client
    events.register("before-parameter-build.s3.GetObject", removed_first)
    try:
        progress = _progress(jobs_api, job_id)
    finally:
        events.unregister("before-parameter-build.s3.GetObject", removed_first)
    assert (progress["path"], progress["stage"]) == ("distributed", "assembling") and "shards_done" not in progress
    assert _keys(w.bucket, job["work"]) == []
    assert _progress(jobs_api, job_id)["stage"] == "planning"


@pytest.mark.parametrize("denied_is_gone", [True, False])
def test_a_denied_read_is_the_file_ending_only_when_the_key_is_gone(jobs_api: Any, world: Any,
                                                                      denied_is_gone: bool) -> None:
    """Given a large job whose shards are all done,
    When the GET's read of the plan is refused with AccessDenied (what S3 answers for a missing key to a caller
    whose listing right is conditional), once after the area was removed and once with the plan still there,
    Then the first is 200 running, assembling; the second a 500 naming a permissions problem, not hidden."""
    w, _, _ = world
    job_id, job = _all_shards_done(jobs_api, world)

    def denied(params: dict[str, Any], **kwargs: Any) -> None:
        if params["Key"].startswith(job["work"]):
            if denied_is_gone:
                remove_work(boto3.client("s3"), w.bucket, job["work"])
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")

    events = aws.presigning_s3().meta.events  # the jobs function's client
    events.register("before-parameter-build.s3.GetObject", denied)
    try:
        status, body = jobs_api("GET", f"/v1/jobs/{job_id}")
    finally:
        events.unregister("before-parameter-build.s3.GetObject", denied)
    if denied_is_gone:
        assert status == 200 and body["progress"]["stage"] == "assembling", body
        assert "shards_done" not in body["progress"]
    else:
        assert status == 500 and "permissions" in body["error"]["message"], body


@pytest.mark.parametrize(("request_body", "data"), [
    ({}, b"x1,colour\n1,red\n"),  # at most the threshold (100 bytes)
    ({"gzip": True}, gzip.compress(TRICKY_CSV.encode(), mtime=0)),  # gzip: never split
    ({}, gzip.compress(TRICKY_CSV.encode() * 4, mtime=0)),  # gzip bytes under input.csv: the single path too
])
def test_a_running_file_on_the_single_path_says_so(jobs_api: Any, world: Any, request_body: dict[str, Any],
                                                  data: bytes) -> None:
    """Given a job whose file takes the single-function path (small, a gzip job, or gzip bytes named .csv),
    When it is running,
    Then its progress says path single, stage predicting, with no shard counts."""
    w, _, _ = world
    job_id, _ = _uploaded_job(w, jobs_api, data, **request_body)
    assert len(data) <= 100 or len(data) > 100 and data[:2] == b"\x1f\x8b"
    progress = _progress(jobs_api, job_id)
    assert progress == {"uploaded_bytes": len(data), "uploaded_at": progress["uploaded_at"], "path": "single",
                        "stage": "predicting"}
