"""The jobs API's pieces without a server: the job key layout, who the caller is, the completion event's detail,
the local stand-in for S3's presigned-POST checks, and what the jobs function loads at cold start.
(End to end over HTTP: tests/e2e/test_jobs_http.py.)"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from maas_core.batch import BatchFileError, BatchResult, reader, work
from maas_core.batch import job as batch_job
from maas_core.edge.callers import caller_of
from maas_core.errors import ForbiddenError
from maas_core.jobs import completion, records
from maas_core.settings import get_settings
from maas_local.post_policy import PolicyRefused, PostPolicyCheck
from maas_local.proxy_integration import token_claims

ROOT = Path(__file__).resolve().parents[2]
JOB = "0123456789abcdef0123456789abcdef"


def test_the_upload_metadata_is_what_the_batch_path_reads() -> None:
    """Given the metadata names the jobs package signs into the upload policy (kept apart from job.py so the
    jobs function never loads onnxruntime), then they are the batch path's own."""
    assert (records.META_VERSION, records.META_ALIAS) == (batch_job.META_VERSION, batch_job.META_ALIAS)


def test_the_work_areas_gzip_check_is_the_readers() -> None:
    """Given the gzip magic bytes the work-area module checks (kept apart from reader.py, which loads numpy, so
    the jobs function can tell a running file's path), then they are the reader's own."""
    assert work.GZIP_MAGIC == reader.GZIP_MAGIC


def test_a_job_key_names_its_job_and_no_other_key_does() -> None:
    """Given the job input keys of each format
    then each names its job and model folder, and keys outside that exact layout name no job."""
    for fmt, gz in (("csv", False), ("jsonl", False), ("csv", True), ("jsonl", True)):
        key = records.job_input_key("tiny", JOB, fmt, gz)
        assert records.job_id_of(key) == JOB and key.startswith("batch/input/tiny/jobs/")
    for key in ("batch/input/tiny/day1.csv", f"batch/input/tiny/jobs/{JOB}/other.csv",
                f"batch/input/tiny/jobs/{JOB.upper()}/input.csv", f"batch/input/tiny/x/jobs/{JOB}/input.csv",
                f"batch/input/tiny/jobs/{JOB}/input.csv\n"):
        assert records.job_id_of(key) is None, key
    assert records.is_job_id(records.new_job_id()) and not records.is_job_id(JOB + "\n")


@pytest.fixture
def auth_mode(monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_mode(mode: str) -> None:
        monkeypatch.setenv("MAAS_AUTH_MODE", mode)
        get_settings.cache_clear()
    yield set_mode
    get_settings.cache_clear()


def test_the_caller_is_the_key_id_or_the_token_subject(auth_mode: Any) -> None:
    """Given API Gateway's request context in each AuthMode
    then the owner is the API key's id or the token's subject, prefixed by kind, and a request without either
    is refused with 403 (never keyed to a shared anonymous owner)."""
    event = {"requestContext": {"identity": {"apiKeyId": "k1"}, "authorizer": {"claims": {"sub": "u1"}}}}
    auth_mode("ApiKey")
    assert caller_of(event) == "apikey:k1"
    with pytest.raises(ForbiddenError):
        caller_of({"requestContext": {"identity": {"apiKeyId": None}}})
    auth_mode("Jwt")
    assert caller_of(event) == "sub:u1"
    with pytest.raises(ForbiddenError):
        caller_of({"requestContext": {"identity": {"apiKeyId": "k1"}}})


def test_the_local_gateway_reads_a_tokens_subject() -> None:
    """Given a JWT (signature unchecked locally) and a token that is not one
    then the first gives its own claims as strings, the second a stable subject of its own."""
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "user-7", "exp": 1}).encode()).decode().rstrip("=")
    assert token_claims(f"Bearer e30.{payload}.sig") == {"sub": "user-7", "exp": "1"}
    assert token_claims("opaque") == token_claims("opaque") != token_claims("other")


def test_the_event_detail_of_each_ending() -> None:
    """Given a file that was done, one that failed and one that was gone
    then the detail names the outputs and counts, the failure's code and report, or `gone`; and a job's
    changes carry the same (the output keys relative to the bucket)."""
    key = records.job_input_key("tiny", JOB, "csv", False)
    done = BatchResult(input=f"s3://b/{key}", status="done", model="tiny", version="2", etag="e", rows=5,
                       predicted=4, rejected=1)
    detail = completion.event_detail("b", key, done)
    assert detail["status"] == "done" and detail["rows"] == 5 and detail["predicted"] == 4
    assert detail["predictions"] == f"s3://b/batch/output/tiny/jobs/{JOB}/input.csv.predictions.jsonl"
    changes = completion.job_changes("b", detail)
    assert changes["counts"] == {"rows": 5, "predicted": 4, "rejected": 1, "blank": 0}
    assert changes["errors_key"] == f"batch/output/tiny/jobs/{JOB}/input.csv.errors.jsonl"
    failed = completion.event_detail("b", "batch/input/tiny/a.csv", BatchFileError("missing_columns", "x" * 5000))
    assert failed["error"] == {"code": "missing_columns", "message": "x" * completion.MAX_MESSAGE_CHARS}
    assert failed["failure_report"] == "s3://b/batch/failed/tiny/a.csv.error.json"
    gone = completion.event_detail("b", key, BatchResult(input="", status="gone", model="tiny"))
    assert gone["status"] == "failed" and gone["error"]["code"] == "gone"


def _presigned(max_bytes: int = 100, expires_in: int = 60) -> dict[str, Any]:
    s3 = boto3.session.Session(aws_access_key_id="AKID", aws_secret_access_key="secret").client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1", config=Config(signature_version="s3v4"))
    fields = {"Content-Type": "text/csv", "x-amz-meta-maas-job": JOB}
    post = s3.generate_presigned_post(Bucket="b", Key="batch/input/t/x.csv", Fields=fields, ExpiresIn=expires_in,
                                      Conditions=[*({k: v} for k, v in fields.items()),
                                                  ["content-length-range", 1, max_bytes]])
    return {k.lower(): v for k, v in post["fields"].items()}


def test_the_local_post_policy_check_refuses_what_s3_refuses() -> None:
    """Given a form botocore presigned (SigV4, 60 s, 1-100 bytes, a Content-Type and metadata)
    then the check passes it as signed, and refuses a tampered policy, an unknown access key, an expired
    policy, a bigger or empty file, a changed condition field and a field no condition covers, in S3's codes."""
    check = PostPolicyCheck(lambda environ, start: [], {"AKID": "secret"})
    fields = _presigned()
    check.check(fields, bucket="b", size=100)

    def refused(**kwargs: Any) -> str:
        with pytest.raises(PolicyRefused) as info:
            check.check(**{"fields": fields, "bucket": "b", "size": 10, **kwargs})
        return info.value.code

    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"].append(["content-length-range", 1, 10**9])
    tampered = {**fields, "policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    assert refused(fields=tampered) == "SignatureDoesNotMatch"
    assert refused(fields={**fields, "x-amz-credential": "OTHER/" + fields["x-amz-credential"].split("/", 1)[1]}) \
        == "InvalidAccessKeyId"
    assert refused(now=datetime.now(UTC) + timedelta(seconds=61)) == "AccessDenied"
    assert refused(size=101) == "EntityTooLarge"
    assert refused(size=0) == "EntityTooSmall"
    assert refused(fields={**fields, "content-type": "text/html"}) == "AccessDenied"
    assert refused(fields={**fields, "key": "batch/input/t/other.csv"}) == "AccessDenied"
    assert refused(fields={**fields, "x-amz-meta-maas-version": "1"}) == "AccessDenied"
    assert refused(bucket="other") == "AccessDenied"


def test_the_jobs_function_loads_no_model_runtime() -> None:
    """Given a fresh interpreter importing the jobs function's handler module
    then neither onnxruntime nor the batch path's job module is loaded: its cold start is boto3's and the
    registry's, which is why the routes are a function of their own (predict's init loads onnxruntime)."""
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('jobs_app', {str(ROOT / 'functions/jobs/app.py')!r})\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "heavy = ('onnxruntime', 'maas_core.batch.job', 'maas_core.predictor')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
