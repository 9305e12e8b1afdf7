"""`maas`: argument parsing and error reporting; the actions live in commands.py.

    maas models                                   models, latest version, aliases
    maas versions iris                            versions, newest first
    maas show iris --alias prod                   a version's manifest (JSON)
    maas train --data iris.csv --model-name iris --target species
    maas train --remote --data iris.csv --model-name iris --target species --stack maas --wait
    maas register iris-ext --onnx m.onnx --declaration m.json --promote staging
    maas promote iris prod 3 --expect 2
    maas canary iris prod 4 --weight 0.1          (--weight 0 removes the canary)
    maas canary iris prod 4 --weight 0.1 --bake 30m --promote-after --stack maas
    maas rollback iris prod
    maas delete iris 1 --yes
    maas report iris --days 7 --window 1d --out iris.html --png

Exit codes: 0 done, 1 the action failed (`maas: <message>` on stderr), 2 bad command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from maas_cli import commands, report
from maas_cli.context import Context, resolve
from maas_core.aws_target import LOCAL_ENDPOINT, NoTargetError, choose_target
from maas_core.errors import MaasError, ServiceUnavailableError

VERSION_HELP = "a whole number without leading zeros, e.g. 3"


def _weight(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.1, got {text!r}") from None


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """On the main parser and (defaults suppressed) on every subcommand, so they go before or after it."""
    default = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument("--bucket", help="model bucket (default: $MAAS_MODEL_BUCKET, the stack's output, "
                                         "or maas-models)", **default)
    parser.add_argument("--table", help="registry table (default: $MAAS_REGISTRY_TABLE, the stack's output, "
                                        "or maas-registry)", **default)
    parser.add_argument("--stack", metavar="NAME", help="read ModelBucketName and RegistryTableName from the "
                                                        "outputs of this CloudFormation stack (after sam deploy)",
                        **default)
    parser.add_argument("--local", nargs="?", const=LOCAL_ENDPOINT, metavar="URL",
                        help=f"work on the local stack (make demo's moto server, default {LOCAL_ENDPOINT}); the "
                             "default too when no AWS credentials, AWS_ENDPOINT_URL, --bucket or --stack are set",
                        **default)
    parser.add_argument("--json", action="store_true", help="machine-readable output", **default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maas", allow_abbrev=False,
        description="Model lifecycle: list, inspect, train, register, promote, canary, roll back and delete "
                    "model versions in the model bucket and registry.",
        epilog="AWS comes from the usual boto3 settings (AWS_PROFILE, AWS_DEFAULT_REGION); AWS_ENDPOINT_URL "
               "points every call at a local moto server.")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)

    def command(name: str, help: str, run: Callable[..., int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[common], allow_abbrev=False)
        p.set_defaults(run=run)
        return p

    command("models", "list models with their latest version and aliases", commands.models)
    p = command("versions", "list a model's versions, newest first, with the aliases naming each", commands.versions)
    p.add_argument("model")
    p = command("show", "print a version's manifest as JSON (default: the latest version)", commands.show)
    p.add_argument("model")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", help="this version (" + VERSION_HELP + ")")
    which.add_argument("--alias", help="the version this alias points at")
    p = command("register", "register an ONNX model not made by maas train, checked against a declaration",
                commands.register)
    p.add_argument("model")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the ONNX model")
    p.add_argument("--declaration", required=True, metavar="FILE",
                   help="JSON or YAML: task, labels, features, input_name, output_name[, description, metrics]")
    p.add_argument("--spec", metavar="FILE", help="preprocess.json to apply before the model "
                                                  "(default: the declared numeric fields, passed through)")
    p.add_argument("--background", metavar="FILE.csv",
                   help="a sample of the model's training data (CSV with a header): explanations occlude fields "
                        "with its statistics (or declare a baseline record; without either, explain is refused)")
    p.add_argument("--promote", metavar="ALIAS", help="point this alias at the new version")
    p = command("promote", "point an alias at a version (ends any canary; the old version is kept for rollback)",
                commands.promote)
    _alias_args(p, version=True)
    p = command("canary", "send a fraction of an alias's traffic to another version", commands.canary)
    _alias_args(p, version=True)
    p.add_argument("--weight", type=_weight, required=True,
                   help="fraction of requests, 0 <= w < 1; 0 removes the canary")
    p.add_argument("--promote-after", action="store_true",
                   help="promote the canary when --bake has passed with none of its alarms in ALARM (an EventBridge "
                        "Scheduler schedule: needs the stack's outputs, --stack)")
    p.add_argument("--bake", metavar="DURATION", help="with --promote-after: how long the canary runs first, "
                                                      "e.g. 30m, 2h (1 minute to 7 days)")
    p = command("rollback", "point an alias back at the version it named before", commands.rollback)
    _alias_args(p, version=False)
    p = command("delete", "delete a version no alias names: its registry entry and its S3 objects", commands.delete)
    p.add_argument("model")
    p.add_argument("version", help=VERSION_HELP)
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--unregistered", action="store_true",
                   help="also delete the files of a version that was never registered (a failed publish left "
                        "them; without this they are kept, as they may be a publish in progress)")
    p = command("report", "render quality, volume, latency and drift over time windows to an HTML page "
                          "(and PNG charts) from the captured predictions", report.run)
    report.add_arguments(p)
    # everything after `train` goes to maas-train untouched (so its --help is maas-train's)
    sub.add_parser("train", help="train a model from a CSV and publish it (maas-train; see maas train --help)",
                   add_help=False, allow_abbrev=False).set_defaults(run=None)
    return parser


def _alias_args(p: argparse.ArgumentParser, version: bool) -> None:
    p.add_argument("model")
    p.add_argument("alias")
    if version:
        p.add_argument("version", help=VERSION_HELP)
    p.add_argument("--expect", metavar="VERSION",
                   help="only if the alias still points at this version (else 409: someone moved it)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(argv)
        if rest and args.command != "train":
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    except SystemExit as exc:  # usage errors (2) and --help (0)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    ctx: Context | None = None
    try:
        choose_target(args.local, bucket_given=bool(args.bucket or args.stack or os.environ.get("MAAS_MODEL_BUCKET")),
                      announce=lambda line: print(f"maas: {line}", file=sys.stderr))
    except NoTargetError as exc:
        print(f"maas: {exc}", file=sys.stderr)
        return 1
    try:
        ctx = resolve(args.bucket, args.table, args.stack, args.json)
        if args.command == "train":
            return commands.train(ctx, rest, stack=args.stack)
        return args.run(ctx, args)
    except MaasError as exc:
        _report(exc.message, exc.details)
        if isinstance(exc, ServiceUnavailableError) and ctx is not None:
            print(f"  (bucket {ctx.bucket!r}, table {ctx.table!r}: check --bucket/--table/--stack, AWS credentials "
                  "and AWS_ENDPOINT_URL)", file=sys.stderr)
        return 1
    except commands.UsageError as exc:
        print(f"maas: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:  # e.g. no region or credentials configured
        _report(f"AWS call failed: {exc}", [])
        print("  (check AWS_PROFILE / AWS credentials, AWS_DEFAULT_REGION and AWS_ENDPOINT_URL)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("maas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `maas versions x --json | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _report(message: str, details: list[dict]) -> None:
    print(f"maas: {message}", file=sys.stderr)
    for d in details:
        print("  - " + ", ".join(f"{k}: {v}" for k, v in d.items()), file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
