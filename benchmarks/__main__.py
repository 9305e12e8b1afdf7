"""Every benchmark, one table: `python -m benchmarks [--skip-size] [--markdown]`.

Trains the penguins model once (the real training job, published to a moto server on loopback) and
runs, each against its own baseline measured in the same run, in the template's default configuration
(EMF metrics and prediction capture on): cold start (vs the S3-loading ONNX floor, vs TensorFlow), warm
latency (vs Keras, vs session.run), capture's own cost (on vs off, 1 to 1,000 records), throughput (vs
json + spec + session.run), the preprocessing spec (vs a Python loop), INT8 vs float demo models (size,
session.run latency, holdout metrics; unless --skip-quantization) and, unless --skip-size (it needs PyPI for
`sam build`), the package size and handler import time of the `sam build` output.
"""

from __future__ import annotations

import argparse
import time

from benchmarks import (
    batch_throughput,
    capture_overhead,
    cold_start,
    preprocess_spec,
    quantization,
    throughput,
    warm_latency,
)
from benchmarks.common import (
    PenguinsWorld,
    Row,
    cpu_model,
    machine,
    markdown_table,
    print_table,
    versions,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-size", action="store_true",
                        help="skip the sam build package size benchmark (needs PyPI)")
    parser.add_argument("--skip-quantization", action="store_true",
                        help="skip INT8 vs float (it trains the two demo models: about a minute)")
    parser.add_argument("--model-dir", help="cache of the trained bundle: reused if it holds one, else trained into")
    parser.add_argument("--cold-repeats", type=int, default=7, help="fresh processes per cold-start variant (>= 5)")
    parser.add_argument("--calls", type=int, default=2000, help="warm handler calls per round (>= 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="warm latency rounds")
    parser.add_argument("--build-dir", help="package size: measure this sam build dir instead of building")
    parser.add_argument("--boto3-dir", help="package size: boto3 installed with pip --target")
    parser.add_argument("--sam", help="package size: the sam executable")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--batch-rows", type=int, default=1_000_000,
                        help="rows of the batch-file throughput benchmark (0 skips it; 1M takes a few minutes)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    print(machine(), "|", cpu_model())
    print(", ".join(f"{k} {v}" for k, v in versions().items()))
    rows: list[Row] = []
    with PenguinsWorld(args.model_dir) as world:
        trained = f"trained in {world.train_seconds:.0f} s" if world.train_seconds else f"reused from {world.dir}"
        print(f"penguins model version {world.version} on moto at {world.stack.endpoint_url} ({trained})\n")
        rows += cold_start.run(world, args.cold_repeats)
        print()
        rows += warm_latency.run(world, args.calls, args.rounds)
        print()
        rows += capture_overhead.run(world)
        print()
        rows += throughput.run(world)
        print()
        if args.batch_rows:
            rows += batch_throughput.run(world, args.batch_rows)
            print()
    rows.append(preprocess_spec.run())
    if not args.skip_quantization:
        rows += quantization.run(f"{args.model_dir}/quantization" if args.model_dir else None)
        print()
    if not args.skip_size:
        from benchmarks import package_size

        rows += package_size.run(args.build_dir, args.boto3_dir, args.sam)
        print()
    print_table(rows)
    if args.markdown:
        print()
        print(markdown_table(rows))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
