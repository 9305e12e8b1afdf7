"""The actions behind each `maas` subcommand. Each takes the Context and the parsed arguments, prints its
result (a table or a line for people, JSON with --json) and returns the exit code. Failures are raised
as MaasError (printed by main as `maas: <message>`, exit 1) or UsageError (exit 2)."""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from maas_cli import files
from maas_cli.context import Context
from maas_cli.output import alias_json, alias_line, emit_json, emit_table, metrics_summary, percent, when
from maas_core.admin import check_leftover_files
from maas_core.errors import MaasError, NotFoundError
from maas_core.guardrails import MoveRequest, move_alias, parse_bake
from maas_core.registration import register_onnx, serving_spec
from maas_core.store import BundleStore, bundle_prefix


class UsageError(Exception):
    """The command line cannot be acted on as given (exit 2)."""


def models(ctx: Context, args: argparse.Namespace) -> int:
    found = ctx.registry.list_models()
    if ctx.as_json:
        emit_json(found)
    elif not found:
        print(f"no models in registry table {ctx.table!r}")
    else:
        emit_table(["MODEL", "LATEST", "VERSIONS", "ALIASES"], [
            [m["name"], m["latest_version"] or "-", m["versions"],
             ", ".join(f"{a}={v}" for a, v in sorted(m["aliases"].items())) or "-"] for m in found])
    return 0


def versions(ctx: Context, args: argparse.Namespace) -> int:
    info = ctx.registry.describe(args.model)
    pointing: dict[str, list[str]] = {}
    for alias, target in sorted(info["aliases"].items()):
        pointing.setdefault(target["version"], []).append(alias)
        if target.get("canary_version"):
            pointing.setdefault(target["canary_version"], []).append(
                f"{alias} (canary {percent(float(target.get('canary_weight', 0)))})")
    for v in info["versions"]:
        v["aliases"] = pointing.get(v["version"], [])
    if ctx.as_json:
        emit_json(info)
    elif not info["versions"]:
        print(f"model {args.model!r} has no registered versions")
    else:
        rows = [[v["version"], when(v.get("created_at")), v.get("task", ""), metrics_summary(v.get("metrics")),
                 ", ".join(v["aliases"]) or "-"] for v in info["versions"]]
        headers = ["VERSION", "CREATED (UTC)", "TASK", "METRICS", "ALIASES"]
        if any(v.get("choice") for v in info["versions"]):  # trained with baselines: the chosen model's margins
            headers.append("MODEL (MARGIN OVER BASELINES)")
            for row, v in zip(rows, info["versions"], strict=True):
                row.append(choice_summary(v.get("choice")))
        emit_table(headers, rows)
        moves = sorted(((alias, m) for alias, t in info["aliases"].items() for m in t.get("moves", [])),
                       key=lambda am: am[1]["at"])[-MOVES_SHOWN:]
        if moves:
            print()
            emit_table(["ALIAS", "MOVED (UTC)", "ACTION", "NOW", "BY", "REASON"], [
                [alias, when(m["at"]), m["action"], _moved_to(m), m.get("by") or "-", m.get("reason") or "-"]
                for alias, m in moves])
    return 0


MOVES_SHOWN = 10


def _moved_to(move: dict[str, Any]) -> str:
    canary = move.get("canary_version")
    return f"{move['version']} + canary {canary} ({percent(float(move.get('canary_weight', 0)))})" if canary \
        else str(move["version"])


def choice_summary(choice: dict[str, Any] | None) -> str:
    """'mlp rmse +5.4 vs trivial, -8.5 vs linear' (positive: better), from the registry's version summary."""
    if not choice:
        return "-"
    margins = ", ".join(f"{float(m):+.4g} vs {name}" for name, m in choice.get("margins", {}).items())
    flag = " (published anyway)" if choice.get("allowed_no_better") else ""
    return f"{choice.get('chosen')} {choice.get('metric')} {margins}{flag}"


def show(ctx: Context, args: argparse.Namespace) -> int:
    if args.version is not None:  # `--version ""` is a (refused) version, not "the latest"
        version = args.version
        ctx.registry.get_version(args.model, version)  # a clear 404 for an unknown model or version
    elif args.alias:
        version = ctx.registry.resolve_alias(args.model, args.alias).version
    else:
        listed = ctx.registry.describe(args.model)["versions"]
        if not listed:
            raise NotFoundError(f"model {args.model!r} has no registered versions")
        version = listed[0]["version"]
    manifest = ctx.store.load_manifest(args.model, version)
    emit_json(manifest.model_dump(mode="json"))
    if not ctx.as_json and manifest.variants:  # for people, on stderr: stdout stays one JSON document
        emit_table(["VARIANT", "FILE", "SIZE", "METRICS", "VS FLOAT"], [
            [name, v.file, f"{v.size / 1024:.1f} KB", metrics_summary(v.metrics, limit=2),
             " ".join(f"{k}={x:.4g}" for k, x in (v.parity or {}).items()) or "-"]
            for name, v in manifest.variants.items()], out=sys.stderr)
    if not ctx.as_json and manifest.candidates is not None:  # the baselines and candidates, on stderr too
        print("\n".join(manifest.candidates.lines()), file=sys.stderr)
    return 0


def register(ctx: Context, args: argparse.Namespace) -> int:
    onnx_bytes = files.read_bytes(Path(args.onnx), "ONNX model")
    declaration = files.load_declaration(Path(args.declaration))
    spec = files.load_spec(Path(args.spec)) if args.spec else None
    background = (files.load_background(Path(args.background), serving_spec(declaration, spec))
                  if args.background else None)
    manifest = register_onnx(ctx.store, ctx.registry, args.model, onnx_bytes, declaration, spec=spec,
                             promote=args.promote, background=background)
    if ctx.as_json:
        emit_json(manifest.model_dump(mode="json"))
        return 0
    where = f"s3://{ctx.bucket}/{bundle_prefix(manifest.name, manifest.version)}"
    print(f"registered {manifest.name} version {manifest.version} ({manifest.task}, "
          f"{len(manifest.input_schema)} input fields) at {where}")
    if args.promote:
        print(f"{manifest.name}: alias {args.promote!r} -> version {manifest.version}")
    return 0


def promote(ctx: Context, args: argparse.Namespace) -> int:
    return _move(ctx, args, MoveRequest("promote", args.version, expected_version=args.expect, by=_who()))


def canary(ctx: Context, args: argparse.Namespace) -> int:
    if args.bake is not None and not args.promote_after:
        raise UsageError("--bake goes with --promote-after: how long the canary runs before it is promoted")
    if args.promote_after and args.bake is None:
        raise UsageError("--promote-after needs --bake, e.g. --bake 30m")
    bake = parse_bake(args.bake) if args.bake is not None else None
    return _move(ctx, args, MoveRequest("canary", args.version, args.weight, args.expect, bake, args.promote_after,
                                        by=_who()))


def rollback(ctx: Context, args: argparse.Namespace) -> int:
    return _move(ctx, args, MoveRequest("rollback", expected_version=args.expect, by=_who()))


def _move(ctx: Context, args: argparse.Namespace, move: MoveRequest) -> int:
    """Every alias move goes through the guardrails, as the admin API's do: a canary start creates its alarms
    (and promotion schedule), and every move deletes those of canaries that ended."""
    target, watch = move_alias(ctx.registry, ctx.guardrails, args.model, args.alias, move)
    if ctx.as_json:
        emit_json(alias_json(args.model, target) | ({"guardrails": asdict(watch)} if watch else {}))
        return 0
    print(alias_line(args.model, target))
    if watch is not None:
        print(f"  watched by {len(watch.alarms)} alarm(s): {', '.join(watch.alarms)}")
        if watch.promotion is not None:
            print(f"  promoted at {watch.promotion.due_at} unless an alarm fires or the alias is moved first")
    return 0


def _who() -> str:
    """`by` of a CLI move: the local user (the registry write itself is signed by the AWS identity)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this environment (some containers)
        return "cli"


def delete(ctx: Context, args: argparse.Namespace) -> int:
    """Delete the registry entry (refused while an alias names the version), then the bundle's S3 objects.
    A version whose registry entry is already gone but whose objects remain (an earlier, interrupted
    delete) has just its objects removed; objects of a version never registered only with --unregistered."""
    model, version = args.model, args.version
    prefix = bundle_prefix(model, version)
    store = BundleStore(ctx.bucket, ctx.s3)
    try:
        ctx.registry.get_version(model, version)  # also checks the names, before they make an S3 prefix
        in_registry = True
    except NotFoundError as not_found:
        check_leftover_files(ctx.registry, store, model, version, not_found, allow_unregistered=args.unregistered)
        in_registry = False
    if in_registry:
        ctx.registry.check_unaliased(model, version)  # refuse before asking; delete_version checks again
    if not args.yes:
        _confirm(f"delete {model} version {version}"
                 + (" from the registry and" if in_registry else " (already gone from the registry):")
                 + f" all objects under s3://{ctx.bucket}/{prefix}?")
    if in_registry:
        ctx.registry.delete_version(model, version)
    removed = store.delete_bundle(model, version)
    result = {"model": model, "version": version, "registry_entry_deleted": in_registry, "objects_deleted": removed}
    if ctx.as_json:
        emit_json(result)
    else:
        what = "registry entry and " if in_registry else ""
        print(f"deleted {model} version {version}: {what}{removed} object(s) under s3://{ctx.bucket}/{prefix}")
    return 0


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise UsageError("refusing to delete without confirmation: stdin is not a terminal, pass --yes")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise MaasError("not confirmed; nothing was deleted")


def train(ctx: Context | None, rest: list[str], stack: str | None = None) -> int:
    """`maas train ...` is `maas-train ...`: one training CLI. Bucket and table are passed on unless given.
    `maas train --remote ...` uploads the dataset for the cloud batch job instead (maas_cli.remote_train)."""
    from maas_training.cli import main as train_main

    if "--remote" in rest and ctx is not None:
        from maas_cli.remote_train import RemoteUsageError, train_remote

        try:
            return train_remote(ctx, list(rest), stack=stack)
        except RemoteUsageError as exc:
            raise UsageError(str(exc)) from None
        except SystemExit as exc:  # argparse's usage errors and --help
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    argv = list(rest)
    if ctx is not None:
        if not any(a == "--bucket" or a.startswith("--bucket=") for a in argv):
            argv += ["--bucket", ctx.bucket]
        if not any(a == "--table" or a.startswith("--table=") for a in argv):
            argv += ["--table", ctx.table]
    try:
        return train_main(argv)
    except SystemExit as exc:  # argparse's usage errors and --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
