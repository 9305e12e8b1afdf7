#!/usr/bin/env bash
# Build the SAM application without Docker, then check what would ship to Lambda.
#
#   scripts/sam-build.sh [--architecture x86_64|arm64] [--no-precompile] [--no-strip] [extra `sam build` arguments...]
#
# `sam build` builds python3.12 functions and layers with the `python3.12` it finds on PATH
# (no Docker needed when the runtime matches a local Python). For the other architecture (arm64 on an
# x86-64 machine, or the reverse) it still needs no Docker: aws-lambda-builders downloads the layers'
# binary wheels for the target with `pip download --only-binary=:all: --platform manylinux2014_aarch64
# --platform manylinux_2_28_aarch64 ... --implementation cp --abi cp312` (numpy's and onnxruntime's
# aarch64 wheels are manylinux_2_28, which the python3.12 runtime's glibc 2.34 accepts). This script:
#   1. finds a python3.12 that really runs (a pyenv shim refuses unless a version is selected):
#      `python3.12` on PATH, else $(pyenv root)/versions/3.12.*/bin/python3.12, else the shim
#      with PYENV_VERSION=3.12.x; it puts that interpreter first on PATH for `sam build`;
#   2. uses `sam` from $SAM, PATH or .venv-sam/, and installs aws-sam-cli into .venv-sam/ with
#      pip when there is none;
#   3. runs `sam build --build-dir $MAAS_BUILD_DIR` (default .aws-sam/build) with the template parameter
#      Architecture (--architecture, default $MAAS_ARCHITECTURE or x86_64) and --cached in
#      .aws-sam/cache/<architecture> (a layer whose requirements did not change is copied, not downloaded again);
#   4. strips what serving never imports (unless --no-strip): numpy's test suites, onnxruntime's
#      tools/, transformers/ and quantization/ packages (quantizing happens in the training job),
#      type stubs and every __pycache__ pip or sam left behind; then, when the build's architecture is this
#      machine's, checks that Powertools, pydantic and pydantic-settings import from the base layer alone
#      and numpy and onnxruntime from the base + inference layers;
#   5. precompiles every .py to .pyc (unless --no-precompile; unchecked-hash, so Lambda's read-only
#      /opt and /var/task never need to compile, and no timestamp is checked): the predict handler's
#      import drops from ~1.6 s to ~0.7 s on a cold start, for ~15 MB more unzipped bytes;
#   6. prints the unzipped size of every function plus its layers and fails above Lambda's
#      250 MB limit, fails if TensorFlow, Keras, tf2onnx or TensorBoard is in the output, and fails
#      unless every native file (ELF: .so, executables) is built for the architecture
#      (scripts/check_native_arch.py).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

build_dir=${MAAS_BUILD_DIR:-.aws-sam/build}
architecture=${MAAS_ARCHITECTURE:-x86_64}
precompile=1
strip=1
sam_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --precompile) precompile=1 ;;  # the default; kept for old command lines
        --no-precompile) precompile=0 ;;
        --no-strip) strip=0 ;;
        --architecture) architecture=${2:-}; shift ;;
        --architecture=*) architecture=${1#--architecture=} ;;
        *) sam_args+=("$1") ;;
    esac
    shift
done
export SAM_CLI_TELEMETRY=${SAM_CLI_TELEMETRY:-0}

say() { printf '%s\n' "$*" >&2; }
die() { say "sam-build: $*"; exit 1; }

case "$architecture" in
    x86_64|arm64) ;;
    *) die "--architecture must be x86_64 or arm64, not '$architecture'" ;;
esac
case "$(uname -m)" in
    x86_64|amd64) host_architecture=x86_64 ;;
    aarch64|arm64) host_architecture=arm64 ;;
    *) host_architecture=other ;;
esac
# one sam cache per architecture: its entries are keyed by the sources, not by the target
cache_dir=${MAAS_SAM_CACHE_DIR:-.aws-sam/cache}/$architecture

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
        .venv-sam/bin/python -m pip install --quiet "aws-sam-cli==1.170.0"
        sam=.venv-sam/bin/sam
    fi
fi
say "sam: $sam ($("$sam" --version))"

# --- 3. build -----------------------------------------------------------------------------------
say "architecture: $architecture (this machine: $host_architecture)"
PATH="$py_dir:$PATH" "$sam" build --build-dir "$build_dir" --cached --cache-dir "$cache_dir" \
    --parameter-overrides "Architecture=$architecture" ${sam_args[@]+"${sam_args[@]}"}
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
    if [ "$architecture" = "$host_architecture" ]; then
        base="$build_dir/BaseLayer/python" inference="$build_dir/InferenceLayer/python"
        "$py312" -S -B -c 'import sys; sys.path[:0] = sys.argv[1:]; import pydantic, pydantic_settings, aws_lambda_powertools.event_handler' "$base" \
            || die "the stripped base layer $base no longer imports"
        "$py312" -S -B -c 'import sys; sys.path[:0] = sys.argv[1:]; import numpy, onnxruntime' "$inference" "$base" \
            || die "the stripped inference layer $inference no longer imports"
    else
        say "not importing the $architecture layers on this $host_architecture machine (their ELF headers are checked below)"
    fi
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
for layer in BaseLayer CoreLayer; do
    if [ -n "$(find "$build_dir/$layer" \( -name 'numpy' -o -name 'onnxruntime' \) -type d -print -quit)" ]; then
        die "$layer holds numpy or onnxruntime: only InferenceLayer may (the model-free functions do not carry it)"
    fi
done
"$py312" scripts/check_native_arch.py "$build_dir" "$architecture"
