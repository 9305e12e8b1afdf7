"""What `sam build` ships, for both architectures: scripts/sam-build.sh run for real (no Docker).

Each architecture is built into .aws-sam/test-build-<architecture> with the script's sam cache
(.aws-sam/cache/<architecture>): the first run downloads the layers' wheels (~150 MB per architecture, plus
aws-sam-cli into .venv-sam/ if there is no sam), later runs copy the cached layers.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
# what onnxruntime >= 1.26.0 prints, without its default logger, when cpuinfo fails (before: an abort on import)
FIXED_CPUINFO_MESSAGE = b"onnxruntime warning: cpuinfo_initialize failed"


def check_native_arch() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_native_arch", ROOT / "scripts" / "check_native_arch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["x86_64", "arm64"])
def build(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(architecture, build dir) of scripts/sam-build.sh --architecture <it> (no .pyc: not what is checked)."""
    architecture = request.param
    build_dir = ROOT / ".aws-sam" / f"test-build-{architecture}"
    env = {**os.environ, "MAAS_BUILD_DIR": str(build_dir)}
    proc = subprocess.run(["bash", "scripts/sam-build.sh", "--architecture", architecture, "--no-precompile"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return architecture, build_dir


def test_every_native_file_is_built_for_the_architecture(build) -> None:
    """Given the build for x86_64 and the build for arm64 (cross-built on this machine, no Docker),
    when every file's ELF header is read,
    then numpy's and onnxruntime's shared objects are there, and every native file has the e_machine of the
    build's architecture (EM_X86_64 or EM_AARCH64)."""
    architecture, build_dir = build
    found = check_native_arch().native_files(build_dir)
    names = {p.name for p in found}
    assert any(n.startswith("onnxruntime_pybind11_state") for n in names), sorted(names)[:20]
    assert any(n.startswith("_multiarray_umath") for n in names), sorted(names)[:20]
    wrong = {str(p.relative_to(build_dir)): m for p, m in found.items() if m != architecture}
    assert not wrong, wrong


def test_only_the_inference_layer_holds_numpy_and_onnxruntime(build) -> None:
    """Given either build,
    when we look for numpy and onnxruntime,
    then they are in InferenceLayer and nowhere else, and the model-free functions' packages (their code,
    BaseLayer and CoreLayer) hold no native code but pydantic-core's."""
    _architecture, build_dir = build
    holders = {p.relative_to(build_dir).parts[0] for name in ("numpy", "onnxruntime")
               for p in build_dir.glob(f"*/python/{name}")}
    assert holders == {"InferenceLayer"}
    natives = check_native_arch().native_files(build_dir)
    outside = {str(p.relative_to(build_dir)) for p in natives if p.relative_to(build_dir).parts[0] != "InferenceLayer"}
    assert outside and all("pydantic_core" in p for p in outside), sorted(outside)


def test_the_onnxruntime_shipped_has_the_arm64_lambda_import_fix(build) -> None:
    """Given either build,
    when we read onnxruntime's libraries,
    then they hold the message onnxruntime >= 1.26.0 writes instead of aborting when cpuinfo cannot
    initialise, as on arm64 Lambda (onnxruntime issue 10038; docs/deploying.md)."""
    _architecture, build_dir = build
    libraries = sorted((build_dir / "InferenceLayer" / "python" / "onnxruntime" / "capi").glob("*.so*"))
    assert libraries
    assert any(FIXED_CPUINFO_MESSAGE in lib.read_bytes() for lib in libraries), [lib.name for lib in libraries]
