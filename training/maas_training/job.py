"""The training batch job: CSV -> cleaned, split columns -> fitted spec -> Keras model -> ONNX -> bundle.

    load -> resolve columns -> clean -> split -> PreprocessSpec.fit (train rows only) -> transform_columns
    -> train the baselines and candidates (maas_training.candidates: linear / MLP on feature rows, bag of words /
       Embedding -> LSTM on a text column's token ids), choose on validation, check against the trivial baseline
    -> evaluate on the test rows -> export + ONNX parity -> reserve a version -> publish -> register
    -> (optionally) promote an alias

`run` walks that line in named steps: prepare, candidates.choose, _evaluate, _export, then
maas_core.publishing.publish_version (the one path of `maas register` too), with _bundle building
the manifest and files of the version it reserves.

Nothing is written to S3 or DynamoDB until the model has trained and passed the parity check, so a
failed run leaves no trace and burns no version number.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from maas_core import aws
from maas_core.manifest import MODEL_FILE, PREPROCESS_FILE, REPORT_FILE, REPORT_TABLE_FILE, Manifest, Variant
from maas_core.preprocess import PreprocessSpec
from maas_core.publishing import publish_version
from maas_core.registry import Registry
from maas_core.store import BundleStore
from maas_training import data as ds
from maas_training.candidates import TEXT, Choice, Fit, choose, encode_targets
from maas_training.config import TrainingConfig, check_loss, default_loss
from maas_training.evaluate import baseline_statistics, probabilities
from maas_training.report_plots import report_pngs_or_none

if TYPE_CHECKING:
    from maas_training.export import ExportResult

Progress = Callable[[str], None]
# the manifest's training.model_type of each model kind
MODEL_TYPES = {"linear": "linear", "mlp": "mlp", "bow": "bag-of-words", "lstm": "embedding-lstm"}


@dataclass
class Prepared:
    """Everything decided before the network sees a row: the same inputs give the same matrices."""

    config: TrainingConfig
    task: str
    task_inferred: bool
    labels: list[str]
    features: ds.Features
    cleaning: ds.CleaningReport
    split: ds.Split
    spec: PreprocessSpec
    train_columns: ds.Columns
    val_columns: ds.Columns
    test_columns: ds.Columns
    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray  # class index (classifiers) or target value (regression)
    y_val: np.ndarray
    y_test: np.ndarray

    def rows(self) -> dict[str, int]:
        return {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)}

    @property
    def is_text(self) -> bool:
        return self.spec.text_feature is not None

    @property
    def loss(self) -> str:
        return self.config.loss or default_loss(self.task)


def prepare(config: TrainingConfig, progress: Progress = print) -> Prepared:
    """Load, clean and split the data, fit the preprocessing spec on the training rows, build matrices."""
    progress(f"loading {config.data}")
    columns = ds.load_csv(config.data)
    features = ds.resolve_features(columns, config)
    cleaned, cleaning = ds.clean(columns, config.target, features)
    progress(cleaning.summary(config.target))

    target_values = cleaned[config.target]
    task = config.task or ds.infer_task(target_values)
    check_loss(config.loss, task)
    labels: list[str] = []
    if task == "regression":
        y_all = ds.numeric_target(target_values, config.target)
        classes = None
        progress(f"task regression{' (inferred)' if config.task is None else ''} on {config.target!r}")
    else:
        labels = ds.class_labels(target_values)
        if len(labels) < 2:
            raise ValueError(f"target {config.target!r} has a single class {labels!r}: nothing to learn")
        if task == "binary" and len(labels) != 2:
            raise ValueError(f"task binary needs a target with 2 classes; {config.target!r} has {len(labels)}: "
                             f"{', '.join(labels[:10])}{' ...' if len(labels) > 10 else ''}")
        y_all = ds.encode_classes(target_values, labels)
        classes = y_all
        shown = ", ".join(labels[:10]) + (" ..." if len(labels) > 10 else "")
        progress(f"task {task}{' (inferred)' if config.task is None else ''}, {len(labels)} classes: {shown}")

    split = ds.split_indices(len(y_all), config.test_size, config.val_size, config.seed, classes)
    train_columns = ds.take(cleaned, split.train)
    val_columns = ds.take(cleaned, split.val)
    test_columns = ds.take(cleaned, split.test)

    # the spec is fitted on the training rows only: fills, scales and categories never see the holdout
    spec = PreprocessSpec.fit(train_columns, features.spec_config(config.row_norm))
    # required columns whose missing strategy is a fill: their missing training values are filled
    x_train = spec.transform_columns(train_columns, fill_required=True)
    x_val = spec.transform_columns(val_columns, fill_required=True)
    x_test = spec.transform_columns(test_columns, fill_required=True)
    rows = f"rows: train {len(x_train)}, val {len(x_val)}, test {len(x_test)}"
    if spec.text_feature:
        f = spec.text_feature
        progress(f"text column {f.name!r}: vocabulary {len(f.vocabulary)} words, {f.max_length} token ids per text "
                 f"({f.dtype}); {rows}")
    else:
        kinds = ", ".join(f"{len(names)} {kind}" for kind in ("numeric", "categorical", "boolean")
                          if (names := features.of_kind(kind)))
        progress(f"features: {kinds} -> {x_train.shape[1]} model inputs; {rows}")
    return Prepared(
        config=config, task=task, task_inferred=config.task is None, labels=labels, features=features,
        cleaning=cleaning, split=split, spec=spec,
        train_columns=train_columns, val_columns=val_columns, test_columns=test_columns,
        x_train=x_train, x_val=x_val, x_test=x_test,
        y_train=y_all[split.train], y_val=y_all[split.val], y_test=y_all[split.test],
    )


def run(
    config: TrainingConfig,
    registry: Registry | None = None,
    store: BundleStore | None = None,
    progress: Progress = print,
) -> Manifest:
    """Train, check and publish one model version; returns the published manifest."""
    from maas_training import model as nn

    started = time.monotonic()
    registry = registry or Registry(config.table)
    store = store or BundleStore(config.bucket)
    preflight(registry, store)

    p = prepare(config, progress)
    nn.configure_tensorflow()
    choice = choose(p, progress)  # baselines and candidates; NoBetterModel when the choice is useless
    trained = choice.chosen.fit
    holdout = _evaluate(choice, p, progress)
    checked = _export(trained.net, p, holdout, progress)
    # only now, with a model that passed every check, is a version number reserved (maas_core.publishing)
    return publish_version(store, registry, config.model_name,
                           lambda version: _bundle(version, p, choice, holdout, checked, started, progress),
                           promote=config.promote, progress=progress)


@dataclass
class Holdout:
    """The network's outputs and metrics on the test rows."""

    outputs: np.ndarray
    metrics: dict[str, float]
    confusion: list[list[int]] | None  # classifiers only


@dataclass
class Checked:
    """The ONNX export that passed the parity check, and the variants published with it."""

    exported: ExportResult
    variants: dict[str, Variant]
    variant_files: dict[str, bytes]  # model.int8.onnx, when the variant passed
    quantization: dict[str, Any]  # what became of each candidate variant, for the manifest's `training`


def _evaluate(choice: Choice, p: Prepared, progress: Progress) -> Holdout:
    """The chosen model's metrics on the test rows (and the confusion matrix of a classifier)."""
    outputs, metrics = choice.chosen.outputs, choice.chosen.metrics
    confusion = None
    if p.task != "regression":
        confusion = _confusion(p.y_test, probabilities(p.task, outputs).argmax(axis=1), len(p.labels))
    progress(f"holdout ({choice.record.chosen}): " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return Holdout(outputs=outputs, metrics=metrics, confusion=confusion)


def _export(net: Any, p: Prepared, holdout: Holdout, progress: Progress) -> Checked:
    """ONNX export checked for parity with the network on the test rows, and the INT8 variant
    (maas_training.quantize), checked on the same rows: one that fails is left out."""
    from maas_training.export import export_and_check  # looked up at call time: benchmarks/_child.py wraps it
    from maas_training.quantize import build_variants

    exported = export_and_check(net, p.x_test, p.config.parity_tolerance, dtype=p.spec.output_dtype())
    progress(f"ONNX export: {len(exported.onnx_bytes) / 1024:.1f} KB, parity max abs diff {exported.max_abs_diff:.3g}")
    variants, variant_files, quantization = build_variants(
        p.config.quantize.enabled, p.config.quantize.max_metric_drop, exported.onnx_bytes,
        p.x_test.astype(p.spec.output_dtype()), p.y_test, p.task, holdout.metrics, progress)
    return Checked(exported=exported, variants=variants, variant_files=variant_files, quantization=quantization)


def _bundle(version: str, p: Prepared, choice: Choice, holdout: Holdout, checked: Checked, started: float,
            progress: Progress) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and files of the reserved `version`: the model (and its variants), the spec, the report
    and its plots."""
    config, exported, trained = p.config, checked.exported, choice.chosen.fit
    history = trained.history
    training = _training_record(p, trained, checked, started)
    manifest = Manifest(
        name=config.model_name,
        version=version,
        task=p.task,  # type: ignore[arg-type]
        labels=p.labels,
        target=config.target,
        input_schema=p.spec.input_schema(),
        model_input=exported.model_input,
        model_output=exported.model_output,
        metrics=holdout.metrics,
        baseline=baseline_statistics(p.train_columns, p.features.numeric, p.features.categorical,
                                     boolean=p.features.boolean, text=p.spec.text_feature,
                                     holdout=p.val_columns),
        frameworks=framework_versions(),
        training=training,
        variants=checked.variants,
        candidates=choice.record,
    )
    report = {
        "name": config.model_name, "version": version, "task": p.task, "target": config.target, "labels": p.labels,
        "metrics": holdout.metrics, "confusion_matrix": holdout.confusion, "rows": p.rows(),
        "cleaning": p.cleaning.as_dict(), "history": history.as_dict(),
        "onnx_parity_max_abs_diff": exported.max_abs_diff,
        "candidates": choice.record.model_dump(mode="json"),
    }
    files = {
        MODEL_FILE: exported.onnx_bytes,
        **checked.variant_files,
        PREPROCESS_FILE: p.spec.to_json().encode(),
        REPORT_FILE: json.dumps(report, indent=2).encode(),
        REPORT_TABLE_FILE: f"# {config.model_name} version {version}\n\n{choice.record.markdown()}".encode(),
        # report_confusion_matrix / report_roc_curve / report_residuals / report_training_curves .png
        **report_pngs_or_none(p.task, p.labels, p.y_test, holdout.outputs, history.as_dict(), progress,
                              candidates=choice.record.model_dump(mode="json")),
    }
    return manifest, files


def _training_record(p: Prepared, trained: Fit, checked: Checked, started: float) -> dict[str, Any]:
    """The manifest's `training`: how the model was made, from which data, and how its export compares."""
    from maas_training.export import OPSET

    config, exported = p.config, checked.exported
    record: dict[str, Any] = {
        "data": config.data.name,
        "model_type": MODEL_TYPES[trained.kind],
        "hyperparameters": {**config.hyperparameters(text=trained.kind in TEXT), "loss": p.loss},
        "task_inferred": p.task_inferred,
        "features": {**p.features.as_dict(), "encoded": p.spec.feature_names()},
        "preprocessing": p.features.spec_config(config.row_norm).model_dump(mode="json"),
        "cleaning": p.cleaning.as_dict(),
        "rows": p.rows(),
        "epochs_run": trained.history.epochs_run,
        "best_epoch": trained.history.best_epoch,
        "onnx_parity_max_abs_diff": exported.max_abs_diff,
        "onnx_parity_max_scaled_diff": exported.max_scaled_diff,
        "onnx_opset": OPSET,
        "quantization": checked.quantization,
        "duration_seconds": round(time.monotonic() - started, 2),
    }
    if trained.kind == "linear":  # the MLP builder with no hidden layer
        record["hyperparameters"]["hidden_units"] = []
    if trained.target_scale is not None:
        record["target_scale"] = trained.target_scale
    return record


def _training_targets(p: Prepared) -> tuple[np.ndarray, np.ndarray, dict[str, float] | None]:
    """The split's targets in the shape the loss wants (maas_training.candidates.encode_targets)."""
    return encode_targets(p.task, p.loss, len(p.labels), p.y_train, p.y_val)


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> list[list[int]]:
    """rows: true class, columns: predicted class (label order)."""
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m.tolist()


def framework_versions() -> dict[str, str]:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    versions = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }
    try:
        versions["maas"] = metadata.version("maas")
    except metadata.PackageNotFoundError:
        pass
    return versions


def preflight(registry: Registry, store: BundleStore) -> None:
    """Fail before training, not after, when the bucket or table is missing or AWS is unreachable.

    Only 'does not exist' and connection problems fail: a role that may write but not describe
    (no s3:ListBucket / dynamodb:DescribeTable) is left to the real writes.
    """
    checks = (
        (f"model bucket {store.bucket!r}", lambda: store.s3.head_bucket(Bucket=store.bucket)),
        (f"registry table {registry.table!r}", lambda: registry.ddb.describe_table(TableName=registry.table)),
    )
    for what, check in checks:
        try:
            check()
        except ClientError as exc:
            if aws.is_not_found(exc):
                raise RuntimeError(f"the {what} does not exist (create it, or pass --bucket / --table)") from exc
        except BotoCoreError as exc:
            raise RuntimeError(f"cannot reach the {what}: {exc}") from exc
