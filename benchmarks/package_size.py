"""Package size and handler import time of what `sam build` ships to Lambda.

Builds the SAM application with scripts/sam-build.sh from a temp copy of the repository (without
.git and virtualenvs) into a temp build dir (MAAS_BUILD_DIR), or reuses a build dir given with
--build-dir, then reports for every function the unzipped size of the function plus its layers
(Lambda's 250 MB limit applies to that sum; the functions that never run a model carry no numpy or
onnxruntime layer, and two rows compare them with predict) and the import time of its handler module in a fresh
process whose sys.path holds ONLY the build output (the function dir, then its layers' python/ dirs,
as Lambda's /var/task and /opt/python) plus boto3, which the Lambda runtime provides (pip-installed
with --target into a temp dir, .pyc included; same version as here).

Imports run with -B (Lambda's /var/task and /opt are read-only: nothing compiled is written back), once
on the build as scripts/sam-build.sh ships it (stripped, precompiled: unchecked-hash .pyc) and once on a
copy without any .pyc (what plain `sam build` ships: every cold start compiles every module it imports).
The baseline is `import numpy, onnxruntime` from the same build. Medians over repeats, interleaved.

Needs network access to PyPI (sam build, pip) unless --build-dir and --boto3-dir are given.

    python -m benchmarks.package_size [--build-dir DIR] [--boto3-dir DIR] [--sam PATH] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Row, fmt_time, machine, print_table

TARGET_MB = 160.0  # predict function + layers, unzipped
MODEL_FREE = ("AdminFunction", "CaptureFunction", "MetricsFunction", "TrainTriggerFunction")  # no InferenceLayer
LAMBDA_LIMIT = 262_144_000  # 250 MiB
COPY_IGNORE = (".git", ".venv", ".venv-*", ".aws-sam", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache",
               ".ruff_cache", "*.egg-info", "artifacts", ".maas")

IMPORT_CODE = r"""
import sys, time, json
t0 = time.perf_counter()
sys.path[:0] = json.loads(sys.argv[1])
mods = sys.argv[2].split(",")
import importlib
for m in mods:
    importlib.import_module(m)
t1 = time.perf_counter()
bad = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras", "tf2onnx", "tensorboard"})
print(json.dumps({"import": t1 - t0, "end": time.time(), "modules": len(sys.modules), "heavy": bad}))
"""


def find_sam(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("SAM"), shutil.which("sam"), str(ROOT / ".venv-sam" / "bin" / "sam")):
        if candidate and Path(candidate).exists():
            return candidate
    return None  # scripts/sam-build.sh installs aws-sam-cli into the copy's .venv-sam


def copy_repo(dest: Path) -> None:
    if shutil.which("rsync"):
        excludes = [arg for pattern in COPY_IGNORE for arg in ("--exclude", pattern)]
        subprocess.run(["rsync", "-a", *excludes, f"{ROOT}/", f"{dest}/"], check=True)
    else:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*COPY_IGNORE), symlinks=True)


def sam_build(work: Path, sam: str | None) -> tuple[Path, float]:
    """(build dir, seconds) for scripts/sam-build.sh run on a copy of the repository."""
    repo, build = work / "repo", work / "build"
    copy_repo(repo)
    env = {**os.environ, "MAAS_BUILD_DIR": str(build)}
    if sam:
        env["SAM"] = sam
    start = time.perf_counter()
    proc = subprocess.run(["bash", "scripts/sam-build.sh"], cwd=repo, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/sam-build.sh failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return build, time.perf_counter() - start


def install_boto3(dest: Path) -> None:
    version = metadata.version("boto3")
    # compiled (pip's default), as the runtime's own boto3 is: only the build output is measured without .pyc
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--target", str(dest), f"boto3=={version}"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install --target {dest} boto3=={version} failed:\n{proc.stderr[-3000:]}")


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def functions_of(build: Path) -> dict[str, list[Path]]:
    """Function logical id -> [its code dir, then its layers' dirs], from the built template."""
    from maas_local.template import load_template

    template = load_template(build / "template.yaml")
    global_layers = ((template.get("Globals") or {}).get("Function") or {}).get("Layers") or []
    out: dict[str, list[Path]] = {}
    for name, res in sorted((template.get("Resources") or {}).items()):
        if not isinstance(res, dict) or res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        dirs = [build / name]
        for layer in props.get("Layers", global_layers) or []:
            ref = layer.get("Ref") if isinstance(layer, dict) else None
            if ref and (build / ref).is_dir():
                dirs.append(build / ref)
        out[name] = dirs
    return out


def sys_path_for(dirs: list[Path], boto3_dir: Path) -> list[str]:
    """Lambda's order: /var/task (the function), /opt/python (layers), then the runtime's boto3."""
    paths = [str(dirs[0])]
    for layer in dirs[1:]:
        for sub in ("python", f"python/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"):
            if (layer / sub).is_dir():
                paths.append(str(layer / sub))
    return paths + [str(boto3_dir)]


def import_once(paths: list[str], modules: list[str], cwd: Path) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "POWERTOOLS_SERVICE_NAME": "maas", "POWERTOOLS_LOG_LEVEL": "INFO", "LANG": "C.UTF-8"}
    start = time.time()
    proc = subprocess.run([sys.executable, "-S", "-E", "-B", "-c", IMPORT_CODE, json.dumps(paths), ",".join(modules)],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"importing {modules} from the build failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["total"] = result["end"] - start
    return result


def largest_parts(dirs: list[Path], top: int = 8) -> list[tuple[str, int]]:
    parts = []
    for d in dirs:
        base = d / "python" if (d / "python").is_dir() else d
        for child in base.iterdir():
            size = tree_size(child) if child.is_dir() else child.stat().st_size
            parts.append((child.name, size))
    return sorted(parts, key=lambda p: -p[1])[:top]


def trimmable(dirs: list[Path]) -> dict[str, int]:
    """Bytes that serving never imports: test suites, type stubs, onnxruntime's training-time tool packages."""
    found = {"tests": 0, "onnxruntime tools/transformers/quantization": 0, ".pyi stubs": 0, "dist-info": 0}
    for d in dirs:
        for root, subdirs, files in os.walk(d):
            rel = Path(root)
            if rel.name in ("tests", "testing") and "numpy" in rel.parts:
                found["tests"] += tree_size(rel)
                subdirs[:] = []
                continue
            if rel.parent.name == "onnxruntime" and rel.name in ("tools", "transformers", "quantization"):
                found["onnxruntime tools/transformers/quantization"] += tree_size(rel)
                subdirs[:] = []
                continue
            if rel.name.endswith(".dist-info"):
                found["dist-info"] += tree_size(rel)
                subdirs[:] = []
                continue
            found[".pyi stubs"] += sum(os.lstat(rel / f).st_size for f in files if f.endswith(".pyi"))
    return found


def uncompiled_copy(build: Path, dest: Path) -> Path:
    """The build without any .pyc: what a plain `sam build` ships."""
    shutil.copytree(build, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def run(build_dir: str | None = None, boto3_dir: str | None = None, sam: str | None = None, repeats: int = 5,
        verbose: bool = True) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="maas-size-") as tmp:
        work = Path(tmp)
        build_seconds = None
        if build_dir:
            build = Path(build_dir).resolve()
            if not (build / "template.yaml").exists():
                raise SystemExit(f"{build} holds no template.yaml: not a sam build dir")
        else:
            build, build_seconds = sam_build(work, find_sam(sam))
        b3 = Path(boto3_dir) if boto3_dir else work / "boto3"
        if not (b3 / "boto3").is_dir():
            install_boto3(b3)

        fns = functions_of(build)
        sizes = {name: sum(tree_size(d) for d in dirs) for name, dirs in fns.items()}
        pyc_in_build = sum(1 for _ in build.rglob("*.pyc"))
        plain = uncompiled_copy(build, work / "no-pyc")
        fns_plain = functions_of(plain)
        cwd = work / "cwd"
        cwd.mkdir()

        # what to import: every handler module (app), and the floor (numpy + onnxruntime) from the predict build
        jobs: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
        for variant, table in (("as built", fns), ("no .pyc", fns_plain)):
            for name, dirs in table.items():
                jobs[(variant, name)] = (sys_path_for(dirs, b3), ["app"])
            predict_dirs = table.get("PredictFunction") or next(iter(table.values()))
            jobs[(variant, "floor: numpy + onnxruntime")] = (sys_path_for(predict_dirs, b3), ["numpy", "onnxruntime"])
        for paths, modules in jobs.values():  # warm-up: the OS file cache, once each
            import_once(paths, modules, cwd)
        times: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in jobs}
        for _ in range(repeats):
            for key, (paths, modules) in jobs.items():
                times[key].append(import_once(paths, modules, cwd))
        heavy = sorted({h for results in times.values() for r in results for h in r["heavy"]})

        def med(key: tuple[str, str], field: str = "import") -> float:
            return statistics.median(r[field] for r in times[key])

        predict_dirs = fns["PredictFunction"]
        if verbose:
            where = f"reused {build}" if build_dir else f"sam build {build_seconds:.0f} s"
            print(f"package size and handler imports ({where}; {pyc_in_build} .pyc files in the build; "
                  f"imports: medians of {repeats} fresh processes, -S -B, build output + boto3 only):")
            print(f"  {'function':<20} {'unzipped':>10}  {'import (no .pyc)':>17} {'import (.pyc)':>14}  parts")
            for name, dirs in fns.items():
                print(f"  {name:<20} {mb(sizes[name]):>10}  {fmt_time(med(('no .pyc', name))):>17} "
                      f"{fmt_time(med(('as built', name))):>14}  {' + '.join(d.name for d in dirs)}")
            floor = "floor: numpy + onnxruntime"
            print(f"  {floor:<20} {'':>10}  {fmt_time(med(('no .pyc', floor))):>17} "
                  f"{fmt_time(med(('as built', floor))):>14}")
            predict_plain = sum(tree_size(d) for d in fns_plain["PredictFunction"])
            print(f"  the .pyc files add {mb(tree_size(build) - tree_size(plain))} over all build dirs "
                  f"(predict: {mb(sizes['PredictFunction'] - predict_plain)})")
            print("  largest parts of the predict package: "
                  + ", ".join(f"{name} {mb(size)}" for name, size in largest_parts(predict_dirs)))
            print("  never imported when serving (could be stripped): "
                  + ", ".join(f"{k} {mb(v)}" for k, v in trimmable(predict_dirs).items()))
            if heavy:
                print(f"  WARNING: TensorFlow-family modules imported: {heavy}")

    size = sizes["PredictFunction"]
    over_limit = [n for n, s in sizes.items() if s > LAMBDA_LIMIT]
    built, plain_import = med(("as built", "PredictFunction")), med(("no .pyc", "PredictFunction"))
    floor_built = med(("as built", "floor: numpy + onnxruntime"))
    model_free = [n for n in MODEL_FREE if n in fns]
    heaviest = max(model_free, key=lambda n: sizes[n])
    slowest = max(model_free, key=lambda n: med(("as built", n)))
    free_import = med(("as built", slowest))
    return [
        Row(benchmark="predict package: function + layers, unzipped", measured=mb(size),
            baseline=f"target {TARGET_MB:.0f} MB (Lambda max 262 MB)", ratio=size / (TARGET_MB * 1e6),
            target=f"< {TARGET_MB:.0f} MB", passed=size < TARGET_MB * 1e6 and not over_limit and not heavy,
            ratio_format="{:.2f}x target"),
        Row(benchmark="predict handler import from the build (.pyc, as shipped)", measured=f"import {fmt_time(built)}",
            baseline=f"numpy+onnxruntime {fmt_time(floor_built)}", ratio=built / floor_built,
            target="(no target)", ratio_format="{:.1f}x floor"),
        Row(benchmark=f"model-free package, largest ({heaviest}): function + layers", measured=mb(sizes[heaviest]),
            baseline=f"predict {mb(size)}", ratio=size / sizes[heaviest], target="(no target)",
            ratio_format="{:.1f}x smaller"),
        Row(benchmark=f"model-free handler import, slowest ({slowest}, .pyc)",
            measured=f"import {fmt_time(free_import)}",
            baseline=f"predict {fmt_time(built)}", ratio=built / free_import, target="(no target)",
            ratio_format="{:.1f}x faster"),
        Row(benchmark="predict handler import, precompiled vs no .pyc", measured=f"import {fmt_time(built)}",
            baseline=f"no .pyc {fmt_time(plain_import)}", ratio=plain_import / built, target="(no target)",
            ratio_format="{:.1f}x faster"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", help="an existing sam build dir to measure instead of building")
    parser.add_argument("--boto3-dir",
                        help="boto3 installed with pip --target (installed into a temp dir if not given)")
    parser.add_argument("--sam", help="the sam executable (default: $SAM, sam on PATH, .venv-sam/bin/sam)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(machine())
    print_table(run(args.build_dir, args.boto3_dir, args.sam, args.repeats))


if __name__ == "__main__":
    main()
