"""A/B of the predict handler's cold start: two trees (or one tree under two environments), interleaved.

    python -m benchmarks.cold_ab --a HEAD~1                  # that commit (A) vs the working tree (B)
    python -m benchmarks.cold_ab --a abc123 --b def456       # two commits
    python -m benchmarks.cold_ab --env-b NAME=VALUE          # the working tree, without vs with a variable
    python -m benchmarks.cold_ab --a HEAD --b /tmp/experiment  # a commit vs a patched copy of the tree

Each pair of rounds starts one fresh process per side (benchmarks/_child.py handler: `import app`, one API
Gateway event for the penguins model on the moto server, the template's default configuration), the order
alternating A B, B A, ... so that a machine whose load drifts (other jobs on the same cores) shifts both
sides alike. A commit is exported with `git archive` into a temporary folder; PYTHONPATH decides whose
maas_core and functions/ the child runs. Medians over the repeats, their difference and ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import CHILD, RECORD, ROOT, PenguinsWorld, child_env, machine, predict_event


def pythonpath(tree: Path) -> str:
    return ":".join(str(tree / d) for d in ("shared", "training", "local", "cli"))


@contextlib.contextmanager
def tree_of(ref: str | None) -> Iterator[Path]:
    """The working tree (ref None), a folder holding a copy of the repository, or the commit `ref` exported into a
    temporary folder (removed afterwards)."""
    if ref is None or Path(ref).is_dir():
        yield Path(ref) if ref else ROOT
        return
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory(prefix="maas-ab-") as folder:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        yield Path(folder)


def cold_once(tree: Path, event: Path, out: Path, extra_env: dict[str, str]) -> dict[str, float]:
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(CHILD), "handler", "--function-dir", str(tree / "functions" / "predict"),
           "--event", str(event), "--out", str(out)]
    start = time.time()
    proc = subprocess.run(cmd, env=child_env(PYTHONPATH=pythonpath(tree), **extra_env), cwd=out.parent,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"cold start in {tree} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    return {"total": result["end"] - start, "import": result["import"], "first_call": result["first_call"],
            "peak_rss_mb": result.get("peak_rss_mb", 0.0)}


def ab(a: Path, b: Path, env_a: dict[str, str], env_b: dict[str, str], repeats: int) -> dict[str, list[dict]]:
    with tempfile.TemporaryDirectory(prefix="maas-ab-run-") as tmp:
        event = Path(tmp) / "event.json"
        event.write_text(json.dumps(predict_event([RECORD])))
        out = Path(tmp) / "result.json"
        sides = {"A": (a, env_a), "B": (b, env_b)}
        for tree, env in sides.values():  # warm-up, discarded: the OS file cache, the .pyc of both trees
            cold_once(tree, event, out, env)
        results: dict[str, list[dict]] = {"A": [], "B": []}
        for i in range(repeats):
            for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
                tree, env = sides[side]
                results[side].append(cold_once(tree, event, out, env))
    return results


def parse_env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", help="git ref or folder of side A (default: the working tree)")
    parser.add_argument("--b", help="git ref or folder of side B (default: the working tree)")
    parser.add_argument("--env-a", action="append", default=[], help="NAME=VALUE for side A's processes")
    parser.add_argument("--env-b", action="append", default=[], help="NAME=VALUE for side B's processes")
    parser.add_argument("--repeats", type=int, default=9, help="fresh processes per side")
    parser.add_argument("--model-dir", help="cache of the trained bundle: reused if it holds one, else trained into")
    args = parser.parse_args(argv)
    print(machine())
    with PenguinsWorld(args.model_dir) as _, tree_of(args.a) as a, tree_of(args.b) as b:
        results = ab(a, b, parse_env(args.env_a), parse_env(args.env_b), args.repeats)
    med = {side: {k: statistics.median(r[k] for r in rs) for k in ("total", "import", "first_call")}
           for side, rs in results.items()}
    print(f"A = {args.a or 'working tree'} {' '.join(args.env_a)}".rstrip())
    print(f"B = {args.b or 'working tree'} {' '.join(args.env_b)}".rstrip())
    print(f"cold start medians of {args.repeats} interleaved fresh processes per side (seconds):")
    for key in ("total", "import", "first_call"):
        d = med["B"][key] - med["A"][key]
        print(f"  {key:<10}  A {med['A'][key]:.3f}  B {med['B'][key]:.3f}  B-A {d * 1e3:+.0f} ms  "
              f"B/A {med['B'][key] / med['A'][key]:.2f}")
    spread = {side: sorted(r["total"] for r in rs) for side, rs in results.items()}
    print(f"  totals A {spread['A'][0]:.3f}-{spread['A'][-1]:.3f}, B {spread['B'][0]:.3f}-{spread['B'][-1]:.3f}")


if __name__ == "__main__":
    main()
