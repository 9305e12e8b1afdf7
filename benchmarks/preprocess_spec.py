"""Vectorised spec vs a per-record pure-Python loop doing the same work.

Transforms N raw tabular records (JSON-like dicts: numbers, strings, a missing optional field now
and then) into the feature matrix, once with PreprocessSpec.transform and once with a plain loop,
checks the two matrices agree, and prints records/s for both and the ratio.

    python -m benchmarks.preprocess_spec [--records 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import csv
import math

import numpy as np

from benchmarks.common import Row, machine, median_seconds, print_table
from maas_core.preprocess import CategoricalFeature, ColumnConfig, NumericFeature, PreprocessSpec, SpecConfig
from maas_training.datasets import PENGUINS

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def fitted_spec() -> PreprocessSpec:
    """The penguins spec, fitted on the shipped data (numeric fields clipped, robust-scaled; sex optional)."""
    with open(PENGUINS, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["bill_length_mm"] != "NA"]
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    config = {n: ColumnConfig(kind="numeric", outliers="iqr", scaler="robust") for n in NUMERIC}
    config["island"] = ColumnConfig(kind="categorical")
    config["sex"] = ColumnConfig(kind="categorical", required=False, unseen="other")
    return PreprocessSpec.fit(columns, SpecConfig(columns=config))


def make_records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    numbers = rng.normal([44, 17, 200, 4200], [5, 2, 14, 800], size=(n, 4)).round(1)
    islands = rng.choice(["Biscoe", "Dream", "Torgersen"], n)
    sexes = rng.choice(["male", "female", None], n, p=[0.48, 0.48, 0.04])
    records = []
    for row, island, sex in zip(numbers.tolist(), islands.tolist(), sexes.tolist(), strict=True):
        r = dict(zip(NUMERIC, row, strict=True), island=island)
        if sex is not None:
            r["sex"] = sex
        records.append(r)
    return records


def python_loop(spec: PreprocessSpec, records: list[dict]) -> np.ndarray:
    """The same work, one record and one field at a time, as a hand-written handler would do it."""
    out = []
    for r in records:
        row: list[float] = []
        for f in spec.features:
            v = r.get(f.name)
            if isinstance(f, NumericFeature):
                if v is None:
                    if f.required:
                        raise ValueError(f"{f.name} missing")
                    v = f.fill
                x = float(v)
                if not math.isfinite(x):
                    raise ValueError(f"{f.name} not finite")
                if f.clip:
                    x = min(max(x, f.clip[0]), f.clip[1])
                row.append((x - f.center) / f.scale)
            elif isinstance(f, CategoricalFeature):
                if v is None:
                    if f.required:
                        raise ValueError(f"{f.name} missing")
                    v = f.fill
                hot = [0.0] * (len(f.categories) + (1 if f.unseen == "other" else 0))
                if v in f.categories:
                    hot[f.categories.index(v)] = 1.0
                elif f.unseen == "other":
                    hot[-1] = 1.0
                row.extend(hot)
        out.append(row)
    return np.asarray(out, dtype=np.float32)


def run(n_records: int = 100_000, repeats: int = 5) -> Row:
    spec = fitted_spec()
    records = make_records(n_records)
    vectorised = spec.transform(records)
    looped = python_loop(spec, records)
    np.testing.assert_allclose(vectorised, looped, rtol=1e-6, atol=1e-6)  # same work, same answer
    t_spec = median_seconds(lambda: spec.transform(records), repeats)
    t_loop = median_seconds(lambda: python_loop(spec, records), repeats)
    return Row(
        benchmark=f"preprocess {n_records:,} tabular records",
        measured=f"spec {n_records / t_spec:,.0f} rec/s",
        baseline=f"python loop {n_records / t_loop:,.0f} rec/s",
        ratio=t_loop / t_spec,
        target="vectorised (> 1x)",
        passed=t_spec < t_loop,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(machine())
    print_table([run(args.records, args.repeats)])


if __name__ == "__main__":
    main()
