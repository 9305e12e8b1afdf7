"""Local stand-in for the datasets/ -> TrainTriggerFunction trigger: S3 notification -> SQS -> poller
thread -> functions/train_trigger/app.py's handler, in-process (the same plumbing as BatchTrigger).

    with LocalStack() as stack, TrainTrigger(stack.names["ModelBucket"]):
        ...   # upload datasets/penguins/training.json, then datasets/penguins/penguins.csv: a new version

The handler is the deployed function's code; only its runner differs: LocalStack sets
MAAS_TRAINING_RUNNER=inprocess (there is no AWS Batch, and no Docker for its container), so the dataset's
`maas-train` command line runs in this process (TensorFlow included) instead of being submitted: the
trigger installs maas_training.cli.main as maas_core.training_jobs' in-process trainer. A run takes
seconds to minutes and blocks this poller only: predictions keep being served meanwhile.

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

from pathlib import Path

from maas_core.training_jobs import install_in_process_trainer
from maas_local.batch_trigger import BatchTrigger, Handler
from maas_local.lambda_runtime import load_function

DATASETS_PREFIX = "datasets/"


def load_train_trigger_handler(repo_root: str | Path | None = None) -> Handler:
    """functions/train_trigger/app.py's lambda_handler, imported from the repository."""
    return load_function("train_trigger", repo_root).lambda_handler  # type: ignore[no-any-return]


def penguins_training_config() -> dict[str, object]:
    """The demo's training.json for datasets/penguins/: maas_training.datasets.penguins_config's settings
    (the trigger supplies the data and the model name), promoting to prod."""
    from maas_training.datasets import penguins_config  # the training package, only when asked

    return penguins_config(promote="prod").model_dump(mode="json", exclude_unset=True, exclude={"data", "model_name"})


class TrainTrigger(BatchTrigger):
    """S3 bucket notification (ObjectCreated, prefix datasets/) -> SQS -> the train trigger handler.

    One attempt per event (a failed training is not retried, as the Batch job definition's
    RetryStrategy says); a handler that raises (e.g. the bucket is gone) lands in the local DLQ."""

    thread_name = "maas-train-trigger"
    notification_id = "maas-local-train"
    function_name = "maas-local-TrainTriggerFunction"
    # a training run holds its message for minutes: keep it invisible meanwhile, as Lambda's async queue
    # does for the deployed trigger, so it is never handed out twice
    queue_attributes = {"VisibilityTimeout": "3600"}

    def __init__(self, bucket: str, *, handler: Handler | None = None, queue_name: str = "maas-local-train-events",
                 dead_letter_queue_name: str = "maas-local-train-dlq", wait_seconds: int = 1,
                 endpoint_url: str | None = None) -> None:
        super().__init__(bucket, handler=handler, queue_name=queue_name, dead_letter_queue_name=dead_letter_queue_name,
                         prefix=DATASETS_PREFIX, max_attempts=1, wait_seconds=wait_seconds, endpoint_url=endpoint_url)
        from maas_training.cli import main as train_main  # the training package, only when asked

        install_in_process_trainer(train_main)  # what MAAS_TRAINING_RUNNER=inprocess runs (LocalStack sets it)

    @property
    def handler(self) -> Handler:
        if self._handler is None:
            self._handler = load_train_trigger_handler()
        return self._handler
