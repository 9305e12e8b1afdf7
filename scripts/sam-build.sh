#!/usr/bin/env bash
# Build the SAM application without Docker, then check what would ship to Lambda.
#
#   scripts/sam-build.sh [--no-precompile] [--no-strip] [extra `sam build` arguments...]
#
# `sam build` builds python3.12 functions and layers with the `python3.12` it finds on PATH
# (no Docker needed when the runtime matches a local Python). This script:
#   1. finds a python3.12 that really runs (a pyenv shim refuses unless a version is selected):
#      `python3.12` on PATH, else $(pyenv root)/versions/3.12.*/bin/python3.12, else the shim
#      with PYENV_VERSION=3.12.x; it puts that interpreter first on PATH for `sam build`;
#   2. uses `sam` from $SAM, PATH or .venv-sam/, and installs aws-sam-cli into .venv-sam/ with
#      pip when there is none;
#   3. runs `sam build --build-dir $MAAS_BUILD_DIR` (default .aws-sam/build);
#   4. strips what serving never imports (unless --no-strip): numpy's test suites, onnxruntime's
#      tools/, transformers/ and quantization/ packages (quantizing happens in the training job),
#      type stubs and every __pycache__ pip or sam left behind; then checks that numpy, onnxruntime,
#      Powertools, pydantic and pydantic-settings still import from the stripped layer alone;
#   5. precompiles every .py to .pyc (unless --no-precompile; unchecked-hash, so Lambda's read-only
#      /opt and /var/task never need to compile, and no timestamp is checked): the predict handler's
#      import drops from ~1.6 s to ~0.7 s on a cold start, for ~15 MB more unzipped bytes;
#   6. prints the unzipped size of every function plus its layers and fails above Lambda's
#      250 MB limit, and fails if TensorFlow, Keras, tf2onnx or TensorBoard is in the output.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

build_dir=${MAAS_BUILD_DIR:-.aws-sam/build}
precompile=1
strip=1
sam_args=()
for arg in "$@"; do
    case "$arg" in
        --precompile) precompile=1 ;;  # the default; kept for old command lines
        --no-precompile) precompile=0 ;;
        --no-strip) strip=0 ;;
        *) sam_args+=("$arg") ;;
    esac
done
export SAM_CLI_TELEMETRY=${SAM_CLI_TELEMETRY:-0}

say() { printf '%s\n' "$*" >&2; }
die() { say "sam-build: $*"; exit 1; }

# --- 1. a python3.12 that runs ------------------------------------------------------------------
py312=$(scripts/find-python312.sh) || die "no runnable python3.12 found"

# `sam build` looks up `python3.12` on PATH: give it exactly this interpreter (a wrapper, not a
# symlink, so that a virtualenv's python3.12 keeps its environment)
py_dir=$(mktemp -d "${TMPDIR:-/tmp}/maas-py312.XXXXXX")
trap 'rm -rf "$py_dir"' EXIT
printf '#!/bin/sh\nexec "%s" "$@"\n' "$py312" >"$py_dir/python3.12"
chmod +x "$py_dir/python3.12"
say "python3.12: $py312"

# --- 2. sam -------------------------------------------------------------------------------------
sam=${SAM:-}
if [ -z "$sam" ]; then
    if command -v sam >/dev/null 2>&1; then
        sam=$(command -v sam)
    elif [ -x .venv-sam/bin/sam ]; then
        sam=.venv-sam/bin/sam
    else
        say "sam not found: installing aws-sam-cli into .venv-sam/"
        "$py312" -m venv .venv-sam
        .venv-sam/bin/python -m pip install --quiet --upgrade pip
        .venv-sam/bin/python -m pip install --quiet aws-sam-cli
        sam=.venv-sam/bin/sam
    fi
fi
say "sam: $sam ($("$sam" --version))"

# --- 3. build -----------------------------------------------------------------------------------
PATH="$py_dir:$PATH" "$sam" build --build-dir "$build_dir" ${sam_args[@]+"${sam_args[@]}"}
[ -f "$build_dir/template.yaml" ] || die "no $build_dir/template.yaml after sam build"

# --- 4. strip what serving never imports --------------------------------------------------------
if [ "$strip" -eq 1 ]; then
    before=$(du -sk "$build_dir" | cut -f1)
    find "$build_dir" -type d -name __pycache__ -prune -exec rm -rf {} +
    find "$build_dir" -type f -name '*.pyi' -delete
    for site in "$build_dir"/*/python; do
        [ -d "$site/numpy" ] && find "$site/numpy" -type d -name tests -prune -exec rm -rf {} +
        for extra in tools transformers quantization; do
            rm -rf "$site/onnxruntime/$extra"
        done
    done
    say "stripped $(( (before - $(du -sk "$build_dir" | cut -f1)) / 1024 )) MB (tests, onnxruntime tools, stubs, __pycache__)"
    for site in "$build_dir"/*/python; do
        [ -d "$site/onnxruntime" ] || continue
        "$py312" -S -B -c 'import sys; sys.path.insert(0, sys.argv[1]); import numpy, onnxruntime, pydantic, pydantic_settings, aws_lambda_powertools.event_handler' "$site" \
            || die "the stripped layer $site no longer imports"
    done
fi

# --- 5. precompile -------------------------------------------------------------------------------
if [ "$precompile" -eq 1 ]; then
    say "precompiling .pyc files (unchecked-hash) in $build_dir"
    "$py312" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$build_dir" >/dev/null
fi

# --- 6. checks ----------------------------------------------------------------------------------
# Sizes: a YAML-capable Python reads the built template (sam's own interpreter has PyYAML);
# without one, only per-directory sizes are printed.
yaml_py=""
for candidate in "$(head -n 1 "$sam" 2>/dev/null | sed -n 's/^#! *//p' | cut -d' ' -f1)" "$py312" python3; do
    if [ -n "$candidate" ] && "$candidate" -c 'import yaml' >/dev/null 2>&1; then
        yaml_py=$candidate
        break
    fi
done
[ -n "$yaml_py" ] || { say "no Python with PyYAML: printing per-directory sizes only"; yaml_py=$py312; }

"$yaml_py" - "$build_dir" <<'PY'
import os
import sys

LIMIT = 262_144_000  # Lambda: 250 MB unzipped, function plus all its layers
build = sys.argv[1]


def size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def mb(n: int) -> str:
    return f"{n / 1_000_000:9.2f} MB"


dirs = sorted(d for d in os.listdir(build) if os.path.isdir(os.path.join(build, d)))
sizes = {d: size(os.path.join(build, d)) for d in dirs}
print("unzipped size per build directory:")
for d in dirs:
    print(f"  {mb(sizes[d])}  {d}")

try:
    import yaml
except ImportError:
    sys.exit(0)


class Loader(yaml.SafeLoader):
    pass


# the built template is plain YAML, but tolerate CloudFormation short tags anyway
Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
with open(os.path.join(build, "template.yaml"), encoding="utf-8") as fh:
    template = yaml.load(fh, Loader=Loader)

resources = template.get("Resources", {})
global_layers = (template.get("Globals") or {}).get("Function", {}).get("Layers", [])
failed = False
print("unzipped size per function (function + its layers; Lambda limit 250 MB = 262.1 MB):")
for name, res in sorted(resources.items()):
    if res.get("Type") != "AWS::Serverless::Function":
        continue
    props = res.get("Properties") or {}
    parts = [name] if name in sizes else []
    unknown = []
    for layer in props.get("Layers", global_layers) or []:
        ref = layer.get("Ref") if isinstance(layer, dict) else None
        if ref in sizes:
            parts.append(ref)
        else:
            unknown.append(str(layer))
    total = sum(sizes[p] for p in parts)
    note = f"  (+ layers not built here: {', '.join(unknown)})" if unknown else ""
    print(f"  {mb(total)}  {name} = {' + '.join(parts)}{note}")
    if total > LIMIT:
        print(f"  ERROR: {name} is over Lambda's 250 MB unzipped limit", file=sys.stderr)
        failed = True
sys.exit(1 if failed else 0)
PY

heavy=$(find "$build_dir" \( -iname 'tensorflow*' -o -iname 'keras*' -o -iname 'tf_keras*' \
    -o -iname 'tf2onnx*' -o -iname 'tensorboard*' -o -iname 'libtensorflow*' \) \
    \( -type d -o -name '*.so*' \) -print)
if [ -n "$heavy" ]; then
    say "FAIL: TensorFlow in build output (serving must not ship it, docs/architecture.md, principle 1):"
    say "$heavy"
    exit 1
fi
echo "OK: no TensorFlow/Keras/tf2onnx/TensorBoard in $build_dir"
