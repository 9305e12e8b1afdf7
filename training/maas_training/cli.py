"""`maas-train`: train a model from a CSV and publish it as a new version.

    maas-train --data penguins.csv --model-name penguins --target species \
        --exclude year --optional sex --promote prod
    maas-train --config train.yaml --epochs 20          # flags override the file's values

A --config file (JSON, or YAML with pyyaml) holds TrainingConfig fields by name, e.g.

    data: penguins.csv            # relative to the file's folder
    model_name: penguins
    target: species
    exclude: [year]
    scaler: robust                # default for every numeric column
    columns:                      # per-column options win over the defaults
      body_mass_g: {kind: numeric, outliers: iqr, outlier_action: drop}
      sex: {kind: categorical, required: false, unseen: other}

--data and --config may be s3:// URIs (the cloud batch job: maas_core.training_jobs), downloaded for the
run; a .jsonl dataset (one JSON object per line) is read as CSV (maas_training.sources).

AWS comes from the usual boto3 settings; AWS_ENDPOINT_URL points it at a local moto server. `--local`, or
a machine with no AWS credentials (and no --bucket), publishes to the local stack `make demo` keeps serving
on 127.0.0.1:4566 (maas_core.aws_target).
Exit codes: 0 published, 1 the job failed (message on stderr), 2 bad arguments, 3 the chosen model does not
beat the trivial baseline on the holdout (nothing published; --allow-no-better publishes it anyway).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from maas_core.aws_target import LOCAL_ENDPOINT, NoTargetError, choose_target
from maas_training.config import TrainingConfig, read_config_file
from maas_training.sources import fetched_inputs, path_or_s3

_DEFAULTS = {name: f.get_default(call_default_factory=True) for name, f in TrainingConfig.model_fields.items()}
# argparse dest -> TrainingConfig field, where they differ
_FIELDS = {"early_stopping": "early_stopping_patience"}
_FLAGS = {field: dest.replace("_", "-") for dest, field in _FIELDS.items()}


def _names(text: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']; '' -> []."""
    return [n.strip() for n in text.split(",") if n.strip()]


def _units(text: str) -> list[int]:
    try:
        units = [int(n) for n in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes like 32,16, got {text!r}") from None
    if not units or any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"expected positive layer sizes like 32,16, got {text!r}")
    return units


def _default(name: str) -> str:
    value = _DEFAULTS[name]
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return f" (default {value})" if value is not None else ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maas-train",
        description="Train a Keras model on a CSV file (an MLP on feature columns, or Embedding -> LSTM on one "
                    "text column), export it to ONNX (checked against Keras), and publish it to the model bucket "
                    "and registry as a new version.",
        epilog="Columns without a kind are inferred: numbers -> numeric, true/false/yes/no -> boolean, a lone "
               "column of free text (> 5 words on average) -> text, anything else -> categorical. Preprocessing "
               "flags are defaults for every column of their kind; a --config file's `columns` entries win "
               "over them. AWS_ENDPOINT_URL points every AWS call at a local moto server.",
    )
    parser.add_argument("--config", type=path_or_s3, metavar="FILE",
                        help="JSON or YAML file of settings (TrainingConfig fields), or an s3:// URI of one; flags "
                             "override its values")
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=path_or_s3,
                      help="CSV file with a header row ('NA' or empty = missing), a JSONL file of objects, or an "
                           "s3:// URI of either (the cloud batch job)")
    data.add_argument("--model-name", help="registry name of the model")
    data.add_argument("--target", help="column to predict")
    data.add_argument("--task", choices=["binary", "multiclass", "regression"],
                      help="default: inferred from the target")
    for kind in ("numeric", "categorical", "boolean"):
        data.add_argument(f"--{kind}", type=_names, metavar="COLS", help=f"{kind} feature columns, comma-separated")
    data.add_argument("--text", type=_names, metavar="COL",
                      help="the free-text column of a text model (its only feature: exclude the others)")
    data.add_argument("--exclude", type=_names, metavar="COLS", help="columns to ignore")
    data.add_argument("--optional", type=_names, metavar="COLS",
                      help="features callers may omit (filled with the training fill); all others are required")
    data.add_argument("--sensitive", type=_names, metavar="COLS",
                      help="features holding personal data: masked in captured predictions, never quoted in errors")
    data.add_argument("--test-size", type=float, help="holdout fraction for the metrics" + _default("test_size"))
    data.add_argument("--val-size", type=float, help="validation fraction for early stopping" + _default("val_size"))

    prep = parser.add_argument_group("preprocessing (defaults for every column of the matching kind)")
    prep.add_argument("--scaler", choices=["standard", "minmax", "robust", "none"], help="numeric (default standard)")
    prep.add_argument("--missing", choices=["drop", "mean", "median", "most_frequent"],
                      help="training rows with a missing value: drop them, or fill (mean / median: numeric only). "
                           "Default: drop for required columns, mean / most frequent for optional ones")
    prep.add_argument("--outliers", choices=["none", "iqr", "zscore"],
                      help="numeric outlier bounds, fitted on the training split (default: iqr at K=3, with "
                           "--outlier-action impute; none turns it off)")
    prep.add_argument("--outlier-action", choices=["clip", "impute", "drop"],
                      help="clip values to the bounds, or replace a value outside them by the training median "
                           "(both in training and serving), or drop training rows outside them (default clip; impute "
                           "when --outliers is not given)")
    prep.add_argument("--outlier-threshold", type=float, metavar="K",
                      help="IQR multiple (1.5; 3 when --outliers is not given) or z-score (3.0)")
    prep.add_argument("--encoding", choices=["onehot", "ordinal"], help="categorical (default onehot)")
    prep.add_argument("--unseen", choices=["ignore", "other", "reject"],
                      help="categorical values not seen in training (default ignore)")
    prep.add_argument("--max-categories", type=int, metavar="N", help="keep the N most frequent categories")
    prep.add_argument("--row-norm", choices=["l1", "l2"], help="scale each feature row to unit norm (default off)")

    net = parser.add_argument_group("network")
    net.add_argument("--model", choices=["auto", "linear", "mlp", "lstm", "bow"],
                     help="the model to train; auto (the default) trains the candidates that fit the data "
                          "(linear and mlp on feature columns, bow and lstm on a text column) and keeps the best "
                          "on the validation split (cross-validated under 2,000 rows)")
    net.add_argument("--allow-no-better", action="store_true", default=None,
                     help="publish even when the chosen model does not beat the trivial baseline (majority class / "
                          "training mean) on the holdout; the manifest records it")
    net.add_argument("--hidden-units", type=_units, metavar="N,N",
                     help="MLP hidden layer sizes" + _default("hidden_units"))
    net.add_argument("--embed-dim", type=int, help="text model embedding size" + _default("embed_dim"))
    net.add_argument("--lstm-units", type=int, help="text model LSTM units" + _default("lstm_units"))
    net.add_argument("--loss", choices=["crossentropy", "focal", "mse", "mae", "huber"],
                     help="classification: crossentropy (default) or focal; regression: mse (default), mae or huber")
    net.add_argument("--epochs", type=int, help="maximum epochs" + _default("epochs"))
    net.add_argument("--batch-size", type=int, help=_default("batch_size").strip(" ()"))
    net.add_argument("--learning-rate", type=float, help=_default("learning_rate").strip(" ()"))
    net.add_argument("--optimizer", choices=["adam", "sgd", "momentum", "rmsprop"], help="default adam")
    net.add_argument("--l2", type=float, help="L2 kernel regularization" + _default("l2"))
    net.add_argument("--dropout", type=float,
                     help="dropout rate after each hidden layer / the LSTM" + _default("dropout"))
    net.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                     help="stop after this many epochs without val_loss improvement; 0 = off"
                          + _default("early_stopping_patience"))
    net.add_argument("--seed", type=int, help="random seed for the split and the network" + _default("seed"))

    out = parser.add_argument_group("publishing")
    out.add_argument("--bucket", help="model bucket (default: $MAAS_MODEL_BUCKET or maas-models)")
    out.add_argument("--table", help="registry table (default: $MAAS_REGISTRY_TABLE or maas-registry)")
    out.add_argument("--local", nargs="?", const=LOCAL_ENDPOINT, metavar="URL",
                     help=f"publish to the local stack (make demo's moto server, default {LOCAL_ENDPOINT}); the "
                          "default too when no AWS credentials, AWS_ENDPOINT_URL or --bucket are set")
    out.add_argument("--promote", metavar="ALIAS", help="point this alias (e.g. prod) at the new version")
    out.add_argument("--no-quantize", dest="quantize", action="store_false", default=None,
                     help="publish the float model only, without the INT8 variant (a --config file's "
                          "`quantize: {max_metric_drop: 0.02}` sets its accuracy tolerance)")
    return parser


def flag_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainingConfig fields given as flags (unset flags are None and leave file values alone)."""
    return {_FIELDS.get(dest, dest): value for dest, value in vars(args).items()
            if dest not in ("config", "local") and value is not None}


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """The --config file's settings (if any), with every flag given on the command line on top.
    ValueError for an unreadable file; ValidationError for bad settings."""
    settings = read_config_file(args.config) if args.config else {}
    settings.update(flag_settings(args))
    return TrainingConfig(**settings)


def _validation_message(exc: ValidationError, flags: set[str], config_file: Path | None) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:
            parts.append(msg)
            continue
        field = loc[0]
        flag = "--" + _FLAGS.get(field, field.replace("_", "-"))
        if err["type"] == "missing" and len(loc) == 1:
            also = f", or `{field}` in the --config file" if config_file else ", or a --config file"
            parts.append(f"{flag} is required (give {flag}{also})")
        elif field in flags or config_file is None:
            parts.append(f"{flag}: {msg}")
        else:
            parts.append(f"{config_file}: {'.'.join(loc)}: {msg}")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        choose_target(args.local, bucket_given=bool(args.bucket or os.environ.get("MAAS_MODEL_BUCKET")),
                      announce=lambda line: print(f"maas-train: {line}", flush=True))
    except NoTargetError as exc:
        print(f"maas-train: error: {exc}", file=sys.stderr)
        return 1
    try:  # s3:// inputs are downloaded (and JSONL turned into CSV) for the run: maas_training.sources
        with fetched_inputs(args):
            return _run(parser, args)
    except ValueError as exc:
        print(f"maas-train: error: {exc}", file=sys.stderr)
        return 1


class ConfigError(ValueError):
    """A bad command line or --config file; the message names the flag or the file's key."""


def checked_config(args: argparse.Namespace) -> TrainingConfig:
    """The run's TrainingConfig, with a local --data file that exists; ConfigError otherwise."""
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        raise ConfigError(_validation_message(exc, set(flag_settings(args)), args.config)) from None
    except ValueError as exc:  # an unreadable or malformed --config file
        raise ConfigError(f"--config: {exc}") from None
    if not config.data.is_file():
        raise ConfigError(f"--data: {str(config.data)!r} does not exist or is not a file")
    return config


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        config = checked_config(args)
    except ConfigError as exc:
        parser.error(str(exc))

    from maas_training.candidates import NoBetterModel
    from maas_training.job import run  # TensorFlow and boto3 load only for a real run

    try:
        manifest = run(config, progress=lambda line: print(line, flush=True))
    except NoBetterModel as exc:
        print(f"maas-train: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("maas-train: interrupted; nothing was published", file=sys.stderr)
        return 130
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        print(f"maas-train: error: {message}", file=sys.stderr)
        return 1
    summary = " ".join(f"{k}={v:.4g}" for k, v in manifest.metrics.items())
    print(f"done: {manifest.name} version {manifest.version} ({manifest.task}) {summary}")
    for name, variant in manifest.variants.items():  # float, and int8 when it passed its checks
        scores = " ".join(f"{k}={v:.4g}" for k, v in variant.metrics.items())
        print(f"  variant {name}: {variant.file} {variant.size / 1024:.1f} KB {scores}")
    if manifest.candidates is not None:
        c = manifest.candidates
        margins = ", ".join(f"{name} {c.metric} {margin[c.metric]:+.4g}" for name, margin in c.margins.items())
        print(f"  chosen {c.chosen} ({c.selection}); margin over {margins}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
