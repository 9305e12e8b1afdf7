"""Loading, cleaning and splitting a CSV dataset.

Columns stay raw strings (None for missing) all the way to `PreprocessSpec.transform_columns`,
which is the one place where values are parsed, filled, scaled and encoded, in training and in
serving alike.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Columns = dict[str, list[str | None]]

MISSING_VALUES = frozenset({"", "NA"})
# a numeric target with more distinct values than this is inferred to be a regression target
REGRESSION_MIN_DISTINCT = 20


# --- loading ---------------------------------------------------------------------------------------


def load_csv(path: str | Path) -> Columns:
    """CSV with a header row -> columns of raw strings; 'NA' and empty cells become None."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist or is not a file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"data file {str(path)!r} is empty: expected a header row")
            header = [h.strip() for h in header]
            _check_header(header, path)
            columns: Columns = {h: [] for h in header}
            cols = list(columns.values())
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue  # blank line
                if len(row) != len(header):
                    raise ValueError(
                        f"{path.name} line {reader.line_num}: {len(row)} fields, but the header has {len(header)}"
                    )
                for col, cell in zip(cols, row):
                    cell = cell.strip()
                    col.append(None if cell in MISSING_VALUES else cell)
    except UnicodeDecodeError as exc:
        raise ValueError(f"data file {str(path)!r} is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise ValueError(f"data file {str(path)!r} is not valid CSV: {exc}") from exc
    if not cols[0]:
        raise ValueError(f"data file {str(path)!r} has a header but no data rows")
    return columns


def _check_header(header: list[str], path: Path) -> None:
    if any(not h for h in header):
        raise ValueError(f"{path.name}: header column {header.index('') + 1} has no name")
    dupes = sorted(h for h, n in Counter(header).items() if n > 1)
    if dupes:
        raise ValueError(f"{path.name}: column name(s) used twice in the header: {', '.join(dupes)}")


def n_rows(columns: Columns) -> int:
    return len(next(iter(columns.values()), []))


def take(columns: Columns, index: Sequence[int] | np.ndarray) -> Columns:
    """The rows at `index` (in that order) of every column."""
    idx = [int(i) for i in index]
    return {name: [values[i] for i in idx] for name, values in columns.items()}


# --- which column is what --------------------------------------------------------------------------


def is_numeric(values: Sequence[str | None]) -> bool:
    """True if every non-missing value parses as a finite float (and there is at least one)."""
    present = [v for v in values if v is not None]
    if not present:
        return False
    for v in present:
        try:
            if not math.isfinite(float(v)):
                return False
        except ValueError:
            return False
    return True


@dataclass(frozen=True)
class Features:
    numeric: list[str]
    categorical: list[str]
    optional: list[str]

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def resolve_features(
    columns: Columns,
    target: str,
    numeric: list[str] | None,
    categorical: list[str] | None,
    exclude: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> Features:
    """Check every named column exists and infer the feature lists that were not given."""
    header = list(columns)
    if target not in columns:
        raise ValueError(f"target column {target!r} is not in the data; columns are: {', '.join(header)}")
    for kind, names in (("numeric", numeric or []), ("categorical", categorical or []),
                        ("exclude", exclude), ("optional", optional)):
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise ValueError(
                f"{kind} column(s) {', '.join(map(repr, unknown))} not in the data; columns are: {', '.join(header)}"
            )
    candidates = [c for c in header if c != target and c not in exclude]
    if numeric is None:
        numeric = [c for c in candidates if c not in (categorical or []) and is_numeric(columns[c])]
    if categorical is None:
        categorical = [c for c in candidates if c not in numeric]
    for name in numeric:
        _check_numeric_column(columns, name)
    for name in [*numeric, *categorical]:
        if all(v is None for v in columns[name]):
            raise ValueError(f"column {name!r} has no values at all; exclude it")
    if not numeric and not categorical:
        raise ValueError(f"no feature columns left besides the target {target!r}")
    features = set(numeric) | set(categorical)
    not_features = [o for o in optional if o not in features]
    if not_features:
        raise ValueError(f"optional column(s) {', '.join(map(repr, not_features))} are not features of the model")
    return Features(numeric=list(numeric), categorical=list(categorical), optional=list(optional))


def _check_numeric_column(columns: Columns, name: str) -> None:
    for i, v in enumerate(columns[name]):
        if v is None:
            continue
        try:
            ok = math.isfinite(float(v))
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"numeric column {name!r}: data row {i + 1} has {v!r}, which is not a number")


def infer_task(target_values: Sequence[str | None]) -> str:
    """regression for a numeric target with many distinct values; binary for 2 classes; else multiclass."""
    present = [v for v in target_values if v is not None]
    distinct = len(set(present))
    if is_numeric(present) and len({float(v) for v in present}) > REGRESSION_MIN_DISTINCT:
        return "regression"
    if distinct == 2:
        return "binary"
    return "multiclass"


# --- cleaning --------------------------------------------------------------------------------------


@dataclass
class CleaningReport:
    rows_loaded: int
    dropped_missing_target: int = 0
    dropped_duplicates: int = 0
    dropped_missing_required: dict[str, int] = field(default_factory=dict)
    rows_kept: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "rows_loaded": self.rows_loaded,
            "dropped_missing_target": self.dropped_missing_target,
            "dropped_duplicates": self.dropped_duplicates,
            "dropped_missing_required": dict(self.dropped_missing_required),
            "rows_kept": self.rows_kept,
        }


def clean(columns: Columns, target: str, features: Features) -> tuple[Columns, CleaningReport]:
    """Drop rows with no target, exact duplicate rows, and rows missing a required feature.

    Returns only the target and feature columns. Optional features stay missing: the spec fills them.
    """
    n = n_rows(columns)
    report = CleaningReport(rows_loaded=n)
    keep = np.ones(n, bool)

    no_target = np.array([v is None for v in columns[target]], bool)
    report.dropped_missing_target = int(no_target.sum())
    keep &= ~no_target

    seen: set[tuple[str | None, ...]] = set()
    names = list(columns)
    for i in np.flatnonzero(keep):
        row = tuple(columns[c][i] for c in names)
        if row in seen:
            keep[i] = False
            report.dropped_duplicates += 1
        else:
            seen.add(row)

    for name in features.names:
        if name in features.optional:
            continue
        missing = keep & np.array([v is None for v in columns[name]], bool)
        if missing.any():
            report.dropped_missing_required[name] = int(missing.sum())
            keep &= ~missing

    report.rows_kept = int(keep.sum())
    if report.rows_kept == 0:
        raise ValueError(
            f"no rows left after cleaning {n} rows: {report.dropped_missing_target} had no {target!r}, "
            f"{report.dropped_duplicates} were duplicates, rows missing a required feature: "
            f"{report.dropped_missing_required or 'none'} (mark features that may be missing as optional)"
        )
    kept = take({c: columns[c] for c in [target, *features.names]}, np.flatnonzero(keep))
    return kept, report


# --- targets ---------------------------------------------------------------------------------------


def class_labels(target_values: Sequence[str | None]) -> list[str]:
    """Class labels sorted as strings: a label's position is its class index in the model output."""
    return sorted({v for v in target_values if v is not None})


def encode_classes(target_values: Sequence[str | None], labels: list[str]) -> np.ndarray:
    lookup = {label: i for i, label in enumerate(labels)}
    return np.array([lookup[v] for v in target_values], dtype=np.int64)  # type: ignore[index]


def numeric_target(target_values: Sequence[str | None], target: str) -> np.ndarray:
    out = np.empty(len(target_values), np.float64)
    for i, v in enumerate(target_values):
        try:
            out[i] = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"regression target {target!r}: row {i + 1} has {v!r}, which is not a number") from None
        if not math.isfinite(out[i]):
            raise ValueError(f"regression target {target!r}: row {i + 1} has {v!r}, which is not a finite number")
    return out


# --- splitting -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_indices(n: int, test_size: float, val_size: float, seed: int, classes: np.ndarray | None = None) -> Split:
    """Seeded train/val/test row indices; stratified by class when `classes` is given.

    Every class keeps at least one training row; test and val get round(fraction * class size) rows.
    """
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if classes is None else [np.flatnonzero(classes == c) for c in np.unique(classes)]
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for group in groups:
        perm = rng.permutation(group)
        n_test = int(round(len(perm) * test_size))
        n_val = int(round(len(perm) * val_size))
        while n_test + n_val >= len(perm) and (n_test or n_val):  # keep one training row per class
            if n_val >= n_test and n_val:
                n_val -= 1
            else:
                n_test -= 1
        test.append(perm[:n_test])
        val.append(perm[n_test:n_test + n_val])
        train.append(perm[n_test + n_val:])
    split = Split(*(np.sort(np.concatenate(part)).astype(np.int64) for part in (train, val, test)))
    if len(split.test) == 0:
        raise ValueError(f"{n} rows are too few to hold out a test set of {test_size:.0%}; add data or raise test_size")
    return split
