"""The worst request (or batch file) of each hostile class: status, time and peak memory, this tree
against an earlier commit, in the same run.

    python -m benchmarks.hostile_requests                    # this tree only
    python -m benchmarks.hostile_requests --before f661aa5   # and that commit, side by side
    python -m benchmarks.hostile_requests --case deep-json --case nfkc-text

Each case runs in a fresh process (benchmarks/_hostile_child.py) on in-process moto, calling the
function's handler as API Gateway would (or run_batch on an uploaded file). The child is the same
for both trees; PYTHONPATH decides whose maas, functions/ and test helpers it drives (the earlier
commit is checked out with `git worktree` into a temporary folder). Peak memory is resident memory
sampled every 2 ms during the call, above what the process held before it. A case whose process is
killed (out of memory) or takes longer than --timeout is reported as such.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, child_env, machine

CHILD = Path(__file__).resolve().parent / "_hostile_child.py"
CASES = ["long-string", "1mb-string", "deep-json", "huge-int", "100k-records", "1m-records", "explain-wide",
         "nfkc-text", "csv-long-cell", "csv-stray-quote", "gzip-bomb"]


def pythonpath(tree: Path) -> str:
    return ":".join(str(tree / d) for d in ("shared", "training", "local", "cli", "."))


def run_case(case: str, tree: Path, timeout: float) -> dict[str, Any]:
    try:
        proc = subprocess.run([sys.executable, str(CHILD), case], cwd=tree, capture_output=True, text=True,
                              timeout=timeout, env=child_env(PYTHONPATH=pythonpath(tree)))
    except subprocess.TimeoutExpired:
        return {"case": case, "status": "timeout", "seconds": timeout, "peak_mb": None, "note": f"over {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"case"')]
    if proc.returncode != 0 or not lines:
        why = "killed (out of memory?)" if proc.returncode < 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"case": case, "status": f"crash {proc.returncode}", "seconds": None, "peak_mb": None, "note": why[:100]}
    return json.loads(lines[-1])


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """`ref` checked out (detached) in a temporary worktree, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="maas-before-"))
    subprocess.run(["git", "worktree", "add", "--detach", "--force", str(folder), ref], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, capture_output=True)


def cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return ""
    seconds = "" if result["seconds"] is None else f"{result['seconds']:.2f} s"
    peak = "" if result["peak_mb"] is None else f"{result['peak_mb']:.0f} MB"
    return f"{result['status']}, {seconds}, {peak}".strip(", ")


def ratio(before: dict[str, Any] | None, after: dict[str, Any], key: str) -> str:
    if not before or before.get(key) is None or after.get(key) is None:
        return ""
    value = before[key] / max(after[key], 0.001 if key == "seconds" else 0.1)
    return f"{value:.0f}x" if value >= 10 else f"{value:.1f}x"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="a git ref to measure side by side (e.g. f661aa5)")
    parser.add_argument("--case", action="append", choices=CASES, help="only these cases (repeatable)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds one case may take")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    cases = args.case or CASES
    print(f"hostile requests, {machine()}", file=sys.stderr)
    with contextlib.ExitStack() as stack:
        before_tree = stack.enter_context(checkout(args.before)) if args.before else None
        rows = []
        for case in cases:
            before = run_case(case, before_tree, args.timeout) if before_tree else None
            after = run_case(case, ROOT, args.timeout)
            rows.append((after.get("description", case), before, after))
            print(f"{case}: before {cell(before)} | after {cell(after)} | {after.get('note', '')}", file=sys.stderr)
    head = ["case", f"before ({args.before})" if args.before else "", "after (this tree)", "time ratio",
            "memory ratio", "answer before", "answer now"]
    table = [head] + [[d, cell(b), cell(a), ratio(b, a, "seconds"), ratio(b, a, "peak_mb"),
                       str((b or {}).get("note", ""))[:60], str(a.get("note", ""))[:60]] for d, b, a in rows]
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in table[1:]:
            print("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    else:
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        for r in table:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
