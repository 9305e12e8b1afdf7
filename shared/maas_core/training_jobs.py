"""Training as a cloud batch job: which uploads start one, and how it is submitted to AWS Batch.

    datasets/{model}/{path}.csv | .jsonl           a dataset: its upload starts a training job
    datasets/{model}/{folder}/training.json        the training config used for the datasets beside it
        (or training.yaml / training.yml)          (the dataset's own folder first, then datasets/{model}/)

Rules (`request_for_upload`):
- a `.csv` or `.jsonl` file under `datasets/{model}/` starts one job that trains `{model}` on it;
- a config file (`training.json|yaml|yml`) uploaded alone starts nothing: upload the config first,
  then the dataset (or upload the dataset again to retrain with a changed config);
- the job needs to know the target column: from the config, or from the dataset's object metadata
  `maas-target` (`aws s3 cp d.csv s3://.../datasets/m/d.csv --metadata maas-target=species`); optional
  `maas-promote` metadata points an alias at the new version. A dataset with neither a config nor
  `maas-target` is refused before anything is submitted, as is any other file (`notes.txt`), a key
  with no model folder (`datasets/d.csv`) or an invalid model name. Folder placeholders are ignored.

The job is the training container (training/Dockerfile, entrypoint `maas-train`) run with
`--data s3://... --model-name {model} [--config s3://...] --bucket ... --table ...`: it downloads its
inputs, trains, publishes `models/{model}/{version}/` and registers the version, exactly as a local
`maas-train` run does. Its name is deterministic (`maas-train-{model}-{file}-{hash of the object
version}`, sanitised to Batch's 128 characters of [A-Za-z0-9_-]), so `maas train --remote` finds the
job the trigger submitted for its upload.

`MAAS_TRAINING_RUNNER=inprocess` (set by the local stack: no Batch, no Docker there) runs the same
command line in this process instead, with the trainer the local stack installs (`maas_training.cli.main`,
through `install_in_process_trainer`): the core describes the job and never imports the training package
above it. The deployed function never runs in process, and its layers hold no TensorFlow.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from maas_core import aws
from maas_core.errors import UnprocessableError
from maas_core.registry import NAME_PATTERN
from maas_core.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_batch.type_defs import KeyValuePairTypeDef

DATASETS_PREFIX = "datasets/"
DATASET_SUFFIXES = (".csv", ".jsonl")
CONFIG_NAMES = ("training.json", "training.yaml", "training.yml")
TARGET_METADATA = "maas-target"
PROMOTE_METADATA = "maas-promote"
JOB_NAME_MAX = 128
_JOB_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED")


class TrainingSettings(Settings):
    """The trigger's environment (template.yaml sets it; the local stack sets the runner): the serving
    settings (MAAS_ prefix, registry table) plus where training runs."""

    training_runner: Literal["batch", "inprocess"] = Field(
        default="batch", description="batch: submit to AWS Batch; inprocess: train here (local stack only)")
    training_job_queue: str = Field(default="", description="Batch job queue name or ARN")
    training_job_definition: str = Field(default="", description="Batch job definition name or ARN")


class TrainingRequestError(UnprocessableError):
    """An upload under datasets/ that cannot start a training job; nothing is submitted."""

    code = "invalid_training_dataset"


class TrainingRequest(BaseModel):
    """One training job to run: train `model` on the dataset object, with the config beside it."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    bucket: str = Field(min_length=3)
    model: str
    dataset_key: str
    config_key: str | None = None
    # the uploaded object's identity (S3 version id, else ETag): same upload -> same job name
    object_version: str = ""
    target: str | None = None
    promote: str | None = None

    @field_validator("model")
    @classmethod
    def _check_model(cls, v: str) -> str:
        if not NAME_PATTERN.match(v):
            raise ValueError(f"model folder {v!r} is not a model name: use 1-64 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
        return v

    @field_validator("promote")
    @classmethod
    def _check_promote(cls, v: str | None) -> str | None:
        if v is not None and not NAME_PATTERN.match(v):
            raise ValueError(f"{PROMOTE_METADATA} {v!r} is not an alias name: use 1-64 letters, digits, '.', '_' "
                             "or '-', starting with a letter or digit")
        return v

    @property
    def dataset_uri(self) -> str:
        return f"s3://{self.bucket}/{self.dataset_key}"

    @property
    def config_uri(self) -> str | None:
        return f"s3://{self.bucket}/{self.config_key}" if self.config_key else None

    @property
    def job_name(self) -> str:
        return job_name(self.model, self.dataset_key, self.object_version)

    def command(self, table: str) -> list[str]:
        """The arguments of the container's `maas-train` entrypoint (flags win over the config file)."""
        args = ["--data", self.dataset_uri, "--model-name", self.model]
        if self.config_uri:
            args += ["--config", self.config_uri]
        if self.target:
            args += ["--target", self.target]
        if self.promote:
            args += ["--promote", self.promote]
        return args + ["--bucket", self.bucket, "--table", table]


def job_name(model: str, dataset_key: str, object_version: str = "") -> str:
    """`maas-train-{model}-{file stem}-{12 hex}`: deterministic for one uploaded object version, at most
    128 characters of [A-Za-z0-9_-] (what Batch accepts), the hash keeping truncated names apart."""
    digest = hashlib.sha256(f"{dataset_key}\n{object_version}".encode()).hexdigest()[:12]
    stem = dataset_key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    readable = _JOB_NAME_UNSAFE.sub("-", f"maas-train-{model}-{stem}").strip("-_")
    return f"{readable[:JOB_NAME_MAX - len(digest) - 1].rstrip('-_')}-{digest}"


# --- which uploads start a job --------------------------------------------------------------------


def is_config_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in CONFIG_NAMES


def parse_dataset_key(key: str) -> tuple[str, str]:
    """datasets/{model}/{rest} -> (model, rest) for a dataset file; TrainingRequestError otherwise."""
    if not key.startswith(DATASETS_PREFIX):
        raise TrainingRequestError(f"{key!r} is not under {DATASETS_PREFIX} "
                                   f"(expected {DATASETS_PREFIX}{{model}}/FILE.csv)",
                                   [{"key": key, "reason": "outside datasets/"}])
    model, sep, rest = key[len(DATASETS_PREFIX):].partition("/")
    if not sep or not model or not rest:
        raise TrainingRequestError(
            f"{key!r} names no model folder: upload datasets to {DATASETS_PREFIX}{{model}}/FILE.csv",
            [{"key": key, "reason": "no model folder"}])
    if not NAME_PATTERN.match(model):
        raise TrainingRequestError(
            f"{key!r}: model folder {model!r} is not a model name (1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit)", [{"key": key, "field": "model", "value": model}])
    if not rest.lower().endswith(DATASET_SUFFIXES) or rest.rsplit("/", 1)[-1].startswith("."):
        raise TrainingRequestError(
            f"{key!r} is not a dataset: expected a {' or '.join(DATASET_SUFFIXES)} file (or a training config "
            f"named {', '.join(CONFIG_NAMES)})", [{"key": key, "reason": "unsupported file type"}])
    return model, rest


def config_folders(dataset_key: str) -> list[str]:
    """Where a dataset's config may be, nearest first: its own folder, then datasets/{model}/."""
    model, rest = parse_dataset_key(dataset_key)
    own = dataset_key.rsplit("/", 1)[0] + "/"
    top = f"{DATASETS_PREFIX}{model}/"
    return [own] if own == top else [own, top]


def find_config(bucket: str, dataset_key: str, s3: Any = None) -> str | None:
    """The key of the training config beside the dataset (CONFIG_NAMES order within a folder), or None."""
    s3 = s3 or aws.client("s3")
    for folder in config_folders(dataset_key):
        try:
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=folder + "training.", MaxKeys=100)
        except (ClientError, BotoCoreError) as exc:
            raise aws.unavailable("the model bucket", exc) from exc
        present = {o["Key"] for o in listed.get("Contents", [])}
        for name in CONFIG_NAMES:
            if folder + name in present:
                return folder + name
    return None


def object_version(head: dict[str, Any]) -> str:
    """What names one upload of an object (in job names): its VersionId, or its ETag in an unversioned bucket."""
    version = head.get("VersionId")
    return version if version not in (None, "null") else str(head.get("ETag", "")).strip('"')


def request_for_upload(bucket: str, key: str, s3: Any = None) -> TrainingRequest | None:
    """The training job an upload starts, None for an upload that starts none (a folder placeholder or
    a config file alone), or TrainingRequestError for a key that can never start one."""
    if key.endswith("/") and key.startswith(DATASETS_PREFIX):
        return None
    if key.startswith(DATASETS_PREFIX) and is_config_key(key):
        return None  # a config alone: it is read when a dataset beside it arrives
    model, _ = parse_dataset_key(key)
    s3 = s3 or aws.client("s3")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if aws.is_not_found(exc):  # deleted since the event: nothing to train on
            raise TrainingRequestError(f"{key!r} no longer exists", [{"key": key, "reason": "not found"}]) from exc
        raise aws.unavailable("the model bucket", exc) from exc
    except BotoCoreError as exc:
        raise aws.unavailable("the model bucket", exc) from exc
    metadata = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    config_key = find_config(bucket, key, s3)
    target = metadata.get(TARGET_METADATA) or None
    if config_key is None and target is None:
        raise TrainingRequestError(
            f"{key!r}: no training config beside it ({' / '.join(CONFIG_NAMES)} in {' or '.join(config_folders(key))}) "
            f"and no {TARGET_METADATA!r} metadata, so the job would not know which column to predict",
            [{"key": key, "reason": "no training config"}])
    try:
        return TrainingRequest(bucket=bucket, model=model, dataset_key=key, config_key=config_key,
                               object_version=object_version(head),
                               target=target, promote=metadata.get(PROMOTE_METADATA) or None)
    except ValidationError as exc:  # e.g. a bad maas-promote alias
        reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise TrainingRequestError(f"{key!r}: {reasons}", [{"key": key}]) from exc


# --- running the job ------------------------------------------------------------------------------


@dataclass
class SubmittedJob:
    job_id: str
    job_name: str
    runner: str
    status: str = "SUBMITTED"
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "job_name": self.job_name, "runner": self.runner, "status": self.status,
                **self.details}


SUBMIT_ATTEMPTS = 3
SUBMIT_BACKOFF_SECONDS = 0.5  # doubled after each transient failure
# SubmitJob is not idempotent: botocore must not repeat it after a timeout (Batch may have accepted the first)
_SUBMIT_ONCE = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=3, read_timeout=10)


def submit_training_job(request: TrainingRequest, *, job_queue: str, job_definition: str, table: str,
                        batch: Any = None, submit_client: Any = None) -> SubmittedJob:
    """batch.submit_job for the request: the container gets the `maas-train` arguments as its command.

    Idempotent per upload: a job of the request's (deterministic) name already in the queue, whatever its
    status, is returned instead of submitting another, so neither S3 delivering an event twice nor a retry
    after a SubmitJob whose answer was lost (a timeout after Batch accepted it) starts a second job. So
    SubmitJob goes out once per attempt (no botocore retry), and each transient failure (throttling, 5xx,
    timeout) is followed by a look for the job before the next attempt; after SUBMIT_ATTEMPTS it raises 503
    (Lambda retries the event). Access denied or a bad queue raise at once.
    """
    if not job_queue or not job_definition:
        raise ValueError("MAAS_TRAINING_JOB_QUEUE and MAAS_TRAINING_JOB_DEFINITION must name the Batch job queue "
                         "and job definition")
    batch = batch or aws.client("batch")
    submitter = submit_client or aws.new_client("batch", _SUBMIT_ONCE)
    env: list[KeyValuePairTypeDef] = [{"name": "MAAS_MODEL_BUCKET", "value": request.bucket},
                                      {"name": "MAAS_REGISTRY_TABLE", "value": table}]
    details = {"job_queue": job_queue, "dataset": request.dataset_uri, "config": request.config_uri}
    failure: Exception | None = None
    for attempt in range(SUBMIT_ATTEMPTS):
        try:
            existing = find_job(job_queue, request.job_name, batch)
        except (ClientError, BotoCoreError) as exc:
            raise aws.unavailable("AWS Batch", exc) from exc
        if existing is not None:
            return SubmittedJob(job_id=existing["jobId"], job_name=existing["jobName"], runner="batch",
                                status=existing.get("status", "SUBMITTED"),
                                details={**details, "already_submitted": True})
        try:
            resp = submitter.submit_job(jobName=request.job_name, jobQueue=job_queue, jobDefinition=job_definition,
                                        containerOverrides={"command": request.command(table), "environment": env})
        except (ClientError, BotoCoreError) as exc:
            if not _transient(exc):
                raise aws.unavailable("AWS Batch", exc) from exc
            failure = exc
            if attempt + 1 < SUBMIT_ATTEMPTS:
                time.sleep(SUBMIT_BACKOFF_SECONDS * 2 ** attempt)
            continue
        return SubmittedJob(job_id=resp["jobId"], job_name=resp["jobName"], runner="batch", details=details)
    assert failure is not None
    raise aws.unavailable("AWS Batch", failure) from failure


def _transient(exc: Exception) -> bool:
    """Worth another attempt: no answer (timeout, connection), throttling, or a 5xx."""
    if not isinstance(exc, ClientError):
        return True
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return status >= 500 or "Throttl" in aws.error_code(exc) or aws.error_code(exc) == "TooManyRequestsException"


Trainer = Callable[[list[str]], int]
"""`maas-train`'s entry point: the container's command line (arguments only) -> exit code."""

_in_process_trainer: Trainer | None = None


def install_in_process_trainer(trainer: Trainer | None) -> None:
    """The trainer MAAS_TRAINING_RUNNER=inprocess runs (None: none). The local stack installs
    maas_training.cli.main (maas_local.train_trigger); a deployed function has no training package."""
    global _in_process_trainer
    _in_process_trainer = trainer


def run_in_process(request: TrainingRequest, table: str) -> SubmittedJob:
    """The container's command line, run here by the installed trainer (the local stack's runner): only
    MAAS_TRAINING_RUNNER=inprocess gets here."""
    train_main = _in_process_trainer
    if train_main is None:
        raise RuntimeError("MAAS_TRAINING_RUNNER=inprocess, but no trainer is installed in this process "
                           "(the local stack installs maas-train's: maas_local.train_trigger)")
    started = time.monotonic()
    try:
        code = train_main(request.command(table))
    except SystemExit as exc:  # argparse usage errors (bad settings in the config)
        code = exc.code if isinstance(exc.code, int) else 2
    status = "SUCCEEDED" if code == 0 else "FAILED"
    return SubmittedJob(job_id=f"local-{uuid.uuid4()}", job_name=request.job_name, runner="inprocess", status=status,
                        details={"exit_code": code, "seconds": round(time.monotonic() - started, 1),
                                 "dataset": request.dataset_uri, "config": request.config_uri})


def start_training(request: TrainingRequest, settings: TrainingSettings) -> SubmittedJob:
    if settings.training_runner == "inprocess":
        return run_in_process(request, settings.registry_table)
    return submit_training_job(request, job_queue=settings.training_job_queue,
                               job_definition=settings.training_job_definition, table=settings.registry_table)


# --- following a job (maas train --remote --wait) -------------------------------------------------


def find_job(job_queue: str, name: str, batch: Any = None) -> dict[str, Any] | None:
    """The newest job of that name in the queue (any status), or None."""
    batch = batch or aws.client("batch")
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"jobQueue": job_queue, "filters": [{"name": "JOB_NAME", "values": [name]}]}
    while True:
        resp = batch.list_jobs(**kwargs)
        found += [j for j in resp.get("jobSummaryList", []) if j.get("jobName") == name]
        if not resp.get("nextToken"):
            break
        kwargs["nextToken"] = resp["nextToken"]
    return max(found, key=lambda j: j.get("createdAt", 0)) if found else None


def follow_job(job_id: str, batch: Any = None, poll_seconds: float = 10.0,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """describe_jobs every `poll_seconds`, yielding the job each time its status changes, until it ends."""
    batch = batch or aws.client("batch")
    last = None
    while True:
        jobs = batch.describe_jobs(jobs=[job_id]).get("jobs", [])
        if not jobs:
            raise TrainingRequestError(f"Batch job {job_id!r} was not found", [{"job_id": job_id}])
        job = jobs[0]
        if job["status"] != last:
            last = job["status"]
            yield job
        if last in TERMINAL_STATUSES:
            return
        sleep(poll_seconds)
