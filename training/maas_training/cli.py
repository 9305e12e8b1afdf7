"""`maas-train`: train a model from a CSV and publish it as a new version.

    maas-train --data penguins.csv --model-name penguins --target species \
        --exclude year --optional sex --promote prod

AWS comes from the usual boto3 settings; AWS_ENDPOINT_URL points it at a local moto server.
Exit codes: 0 published, 1 the job failed (message on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from maas_training.config import TrainingConfig


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maas-train",
        description="Train a Keras MLP on a CSV file, export it to ONNX (checked against Keras), "
                    "and publish it to the model bucket and registry as a new version.",
        epilog="Unset feature lists are inferred: columns whose values all parse as numbers are numeric, "
               "the others categorical. AWS_ENDPOINT_URL points every AWS call at a local moto server.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, type=Path, help="CSV file with a header row ('NA' or empty = missing)")
    data.add_argument("--model-name", required=True, help="registry name of the model")
    data.add_argument("--target", required=True, help="column to predict")
    data.add_argument("--task", choices=["binary", "multiclass", "regression"], help="default: inferred from the target")
    data.add_argument("--numeric", type=_names, metavar="COLS", help="numeric feature columns, comma-separated")
    data.add_argument("--categorical", type=_names, metavar="COLS", help="categorical feature columns, comma-separated")
    data.add_argument("--exclude", type=_names, default=[], metavar="COLS", help="columns to ignore")
    data.add_argument("--optional", type=_names, default=[], metavar="COLS",
                      help="features callers may omit (filled with the training fill); all others are required")
    data.add_argument("--test-size", type=float, default=0.2, help="holdout fraction for the metrics (default 0.2)")
    data.add_argument("--val-size", type=float, default=0.1, help="validation fraction for early stopping (default 0.1)")

    net = parser.add_argument_group("network")
    net.add_argument("--hidden-units", type=_units, default=[32, 16], metavar="N,N", help="hidden layer sizes (default 32,16)")
    net.add_argument("--epochs", type=int, default=60, help="maximum epochs (default 60)")
    net.add_argument("--batch-size", type=int, default=32, help="default 32")
    net.add_argument("--learning-rate", type=float, default=0.01, help="default 0.01")
    net.add_argument("--optimizer", choices=["adam", "sgd", "momentum", "rmsprop"], default="adam")
    net.add_argument("--l2", type=float, default=0.0, help="L2 kernel regularization (default 0)")
    net.add_argument("--dropout", type=float, default=0.0, help="dropout rate after each hidden layer (default 0)")
    net.add_argument("--early-stopping", type=int, default=10, metavar="PATIENCE",
                     help="stop after this many epochs without val_loss improvement; 0 = off (default 10)")
    net.add_argument("--seed", type=int, default=42, help="random seed for the split and the network (default 42)")

    out = parser.add_argument_group("publishing")
    out.add_argument("--bucket", help="model bucket (default: $MAAS_MODEL_BUCKET or maas-models)")
    out.add_argument("--table", help="registry table (default: $MAAS_REGISTRY_TABLE or maas-registry)")
    out.add_argument("--promote", metavar="ALIAS", help="point this alias (e.g. prod) at the new version")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    settings = {
        "data": args.data, "model_name": args.model_name, "target": args.target, "task": args.task,
        "numeric": args.numeric, "categorical": args.categorical, "exclude": args.exclude, "optional": args.optional,
        "test_size": args.test_size, "val_size": args.val_size,
        "hidden_units": args.hidden_units, "epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "optimizer": args.optimizer, "l2": args.l2, "dropout": args.dropout,
        "early_stopping_patience": args.early_stopping, "seed": args.seed, "promote": args.promote,
    }
    if args.bucket:
        settings["bucket"] = args.bucket
    if args.table:
        settings["table"] = args.table
    return TrainingConfig(**settings)


_FLAGS = {"early_stopping_patience": "early-stopping"}


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        flag = _FLAGS.get(where, where.replace("_", "-"))
        parts.append(f"--{flag}: {msg}" if where else msg)
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        parser.error(_validation_message(exc))
    if not config.data.is_file():
        parser.error(f"--data: {str(config.data)!r} does not exist or is not a file")

    from maas_training.job import run  # TensorFlow and boto3 load only for a real run

    try:
        manifest = run(config, progress=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("maas-train: interrupted; nothing was published", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI reports the failure, not a traceback
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        print(f"maas-train: error: {message}", file=sys.stderr)
        return 1
    summary = " ".join(f"{k}={v:.4g}" for k, v in manifest.metrics.items())
    print(f"done: {manifest.name} version {manifest.version} ({manifest.task}) {summary}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
