"""`maas train --remote`: the same flags as `maas train`, but the training runs as the cloud batch job.

    maas train --remote --data penguins.csv --model-name penguins --target species --exclude year \\
        --promote prod --stack maas --wait

The settings are checked here first (the same TrainingConfig as a local run: a bad flag fails before
anything is uploaded). Then the settings go to `datasets/{model}/{run}/training.json` and the dataset
beside it (`datasets/{model}/{run}/{file name}`, uploaded last): that upload is what starts the job, through
the datasets/ trigger (TrainTriggerFunction), exactly as a dataset dropped there by hand. `{run}` is a UTC
timestamp, so runs never overwrite each other's config.

The trigger names the job after the uploaded object (maas_core.training_jobs.job_name), so this command
finds it in the job queue (`--job-queue`, $MAAS_TRAINING_JOB_QUEUE or the stack's TrainingJobQueueArn
output with `--stack`) and prints its id; `--wait` then follows it (describe_jobs) until SUCCEEDED (exit 0)
or FAILED (exit 1). Without a known queue it stops after the upload. Locally (`maas-demo`), the local
stack's trigger trains in-process instead: there is no Batch queue to follow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from maas_cli.context import Context, stack_outputs
from maas_core import aws
from maas_core.errors import MaasError
from maas_core.training_jobs import DATASETS_PREFIX, find_job, follow_job, job_name, object_version, parse_dataset_key

QUEUE_OUTPUT = "TrainingJobQueueArn"
CONFIG_NAME = "training.json"


class RemoteUsageError(Exception):
    """The command line cannot be acted on (exit 2)."""


def _remote_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maas train --remote", add_help=False, allow_abbrev=False)
    p.add_argument("--remote", action="store_true")
    p.add_argument("--wait", action="store_true", help="follow the job until it succeeds or fails")
    p.add_argument("--job-queue", help="the Batch job queue (default: $MAAS_TRAINING_JOB_QUEUE or the stack output)")
    p.add_argument("--stack", help="read ModelBucketName, RegistryTableName and TrainingJobQueueArn from this stack")
    p.add_argument("--poll-seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--find-timeout", type=float, default=180.0, help=argparse.SUPPRESS)
    return p


def train_remote(ctx: Context, argv: list[str], stack: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    from maas_training.cli import ConfigError, build_parser, checked_config

    opts, rest = _remote_parser().parse_known_args(argv)
    stack = opts.stack or stack
    outputs = stack_outputs(stack) if stack else {}
    parser = build_parser()
    parser.prog = "maas train --remote"
    args = parser.parse_args(rest)  # SystemExit(2) on bad flags, as `maas train`
    if isinstance(args.data, str) or isinstance(args.config, str):
        raise RemoteUsageError("--remote uploads local files: give a local --data (and --config), not an s3:// URI")
    try:
        config = checked_config(args)
    except ConfigError as exc:
        raise RemoteUsageError(str(exc)) from None

    bucket = args.bucket or outputs.get("ModelBucketName") or ctx.bucket
    queue = opts.job_queue or os.environ.get("MAAS_TRAINING_JOB_QUEUE") or outputs.get(QUEUE_OUTPUT)
    if opts.wait and not queue:
        raise RemoteUsageError("--wait needs the training job queue: --job-queue, $MAAS_TRAINING_JOB_QUEUE or "
                               f"--stack (output {QUEUE_OUTPUT}, present when the stack was deployed with training)")

    run = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = f"{DATASETS_PREFIX}{config.model_name}/{run}/"
    dataset_key = folder + config.data.name
    parse_dataset_key(dataset_key)  # .csv / .jsonl only: the trigger would refuse anything else
    # the job gets --data, --model-name, --bucket and --table from the trigger; the rest is this file
    settings = config.model_dump(mode="json", exclude_unset=True, exclude={"data", "bucket", "table"})
    s3 = aws.client("s3")
    try:
        s3.put_object(Bucket=bucket, Key=folder + CONFIG_NAME, Body=json.dumps(settings, indent=2).encode(),
                      ContentType="application/json")
        s3.upload_file(str(config.data), bucket, dataset_key)  # last: this upload starts the job
        head = s3.head_object(Bucket=bucket, Key=dataset_key)
    except (ClientError, BotoCoreError) as exc:
        raise MaasError(f"uploading to s3://{bucket}/{folder} failed: {exc}") from exc
    name = job_name(config.model_name, dataset_key, object_version(head))  # the name the trigger gives the job
    result: dict[str, Any] = {"model": config.model_name, "dataset": f"s3://{bucket}/{dataset_key}",
                              "config": f"s3://{bucket}/{folder}{CONFIG_NAME}", "job_name": name}
    _say(ctx, f"uploaded {result['config']} and {result['dataset']}")
    if not queue:
        _say(ctx, f"the datasets/ trigger starts training job {name} (pass --job-queue or --stack to follow it)")
        return _finish(ctx, result, 0)

    job = _wait_for_submission(queue, name, opts.find_timeout, opts.poll_seconds, sleep)
    result.update(job_id=job["jobId"], job_queue=queue, status=job["status"])
    _say(ctx, f"training job {name}: id {job['jobId']} ({job['status']})")
    if not opts.wait:
        return _finish(ctx, result, 0)
    started = time.monotonic()
    final: dict[str, Any] = job
    for final in follow_job(job["jobId"], poll_seconds=opts.poll_seconds, sleep=sleep):
        reason = f": {final['statusReason']}" if final.get("statusReason") else ""
        _say(ctx, f"  [{time.monotonic() - started:6.0f} s] {final['status']}{reason}")
    result["status"] = final["status"]
    log_stream = (final.get("container") or {}).get("logStreamName")
    if log_stream:
        result["log_stream"] = log_stream
        _say(ctx, f"logs: CloudWatch log stream {log_stream}")
    if final["status"] == "SUCCEEDED":
        _say(ctx, f"done: see `maas versions {config.model_name}`")
        return _finish(ctx, result, 0)
    print(f"maas: training job {name} failed{': ' + final['statusReason'] if final.get('statusReason') else ''}",
          file=sys.stderr)
    return _finish(ctx, result, 1)


def _wait_for_submission(queue: str, name: str, timeout: float, poll: float,
                         sleep: Callable[[float], None]) -> dict[str, Any]:
    """The job the trigger submitted for the upload (it takes the trigger a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = find_job(queue, name)
        except (ClientError, BotoCoreError) as exc:
            raise MaasError(f"listing jobs of queue {queue!r} failed: {exc}") from exc
        if job is not None:
            return job
        if time.monotonic() >= deadline:
            raise MaasError(f"no training job named {name} appeared in {queue} within {timeout:.0f} s: is the stack "
                            "deployed with training (TrainingImageUri, TrainingSubnetIds, TrainingSecurityGroupIds)? "
                            "The trigger's log (TrainTriggerFunction) says why it did not submit")
        sleep(min(poll, 5.0))


def _say(ctx: Context, line: str) -> None:
    print(line, file=sys.stderr if ctx.as_json else sys.stdout, flush=True)


def _finish(ctx: Context, result: dict[str, Any], code: int) -> int:
    if ctx.as_json:
        print(json.dumps(result, indent=2))
    return code
