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

from maas_core.preprocess import ColumnConfig, SpecConfig, outlier_bounds
from maas_core.preprocess.config import Kind
from maas_core.preprocess.values import MISSING_STRINGS, is_missing_string, to_bool, to_float
from maas_training.config import KINDS, TrainingConfig

Columns = dict[str, list[str | None]]

# the spec's missing markers ("", "NA", "N/A", "NaN", "null", "None", ...): training and serving agree
MISSING_VALUES = MISSING_STRINGS
# a numeric target with more distinct values than this is inferred to be a regression target
REGRESSION_MIN_DISTINCT = 20
# inferred kinds (see infer_kind)
INFERRED_BOOLEANS = frozenset({"true", "false", "yes", "no"})
TEXT_MIN_MEAN_TOKENS = 5


# --- loading ---------------------------------------------------------------------------------------


def load_csv(path: str | Path) -> Columns:
    """CSV with a header row -> columns of raw strings; missing markers ('NA', empty, ...) become None."""
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
                for col, cell in zip(cols, row, strict=True):
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


def is_boolean(values: Sequence[str | None]) -> bool:
    """True if every non-missing value is true/false/yes/no (any case), and there is at least one."""
    present = [v for v in values if v is not None]
    return bool(present) and all(v.strip().lower() in INFERRED_BOOLEANS for v in present)


def mean_tokens(values: Sequence[str | None]) -> float:
    present = [v for v in values if v is not None]
    return sum(len(v.split()) for v in present) / len(present) if present else 0.0


def infer_kind(values: Sequence[str | None], only_feature: bool) -> Kind:
    """A column's kind from its values, kept simple on purpose:

    numeric     every value parses as a finite number;
    boolean     every value is true/false/yes/no (any case); 0/1 columns stay numeric;
    text        the only feature column, holding free text: more than TEXT_MIN_MEAN_TOKENS
                whitespace-separated words per value on average;
    categorical anything else.
    """
    if is_numeric(values):
        return "numeric"
    if is_boolean(values):
        return "boolean"
    if only_feature and mean_tokens(values) > TEXT_MIN_MEAN_TOKENS:
        return "text"
    return "categorical"


@dataclass(frozen=True)
class Features:
    """The model's input columns, each with its preprocessing options, in spec order
    (numeric, categorical, boolean, text; data order within a kind)."""

    configs: dict[str, ColumnConfig]
    inferred: tuple[str, ...] = ()  # columns whose kind was inferred from the data

    def of_kind(self, kind: str) -> list[str]:
        return [name for name, cfg in self.configs.items() if cfg.kind == kind]

    @property
    def names(self) -> list[str]:
        return list(self.configs)

    @property
    def numeric(self) -> list[str]:
        return self.of_kind("numeric")

    @property
    def categorical(self) -> list[str]:
        return self.of_kind("categorical")

    @property
    def boolean(self) -> list[str]:
        return self.of_kind("boolean")

    @property
    def text(self) -> list[str]:
        return self.of_kind("text")

    @property
    def optional(self) -> list[str]:
        return [name for name, cfg in self.configs.items() if not cfg.required]

    def spec_config(self, row_norm: str | None = None) -> SpecConfig:
        return SpecConfig(columns=dict(self.configs), row_norm=row_norm)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, list[str]]:
        """For the manifest: the columns of each kind, the optional ones and the inferred ones."""
        return {"numeric": self.numeric, "categorical": self.categorical, "boolean": self.boolean, "text": self.text,
                "optional": self.optional, "inferred": list(self.inferred)}


def resolve_features(columns: Columns, config: TrainingConfig) -> Features:
    """Check every named column exists, infer the kinds not given, and build each column's options."""
    header = list(columns)
    target = config.target
    if target not in columns:
        raise ValueError(f"target column {target!r} is not in the data; columns are: {', '.join(header)}")
    explicit = config.explicit_kinds()
    named = (("columns", list(config.columns or {})), *((k, getattr(config, k) or []) for k in KINDS),
             ("exclude", config.exclude), ("optional", config.optional), ("sensitive", config.sensitive))
    for what, names in named:
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise ValueError(
                f"{what} column(s) {', '.join(map(repr, unknown))} not in the data; columns are: {', '.join(header)}"
            )
    candidates = [c for c in header if c != target and c not in config.exclude]
    kinds: dict[str, Kind] = {c: explicit[c] for c in candidates if c in explicit}
    inferred: list[str] = []
    if not config.closed_feature_set():
        rest = [c for c in candidates if c not in kinds]
        only = len(candidates) == 1
        for name in rest:
            if all(v is None for v in columns[name]):
                raise ValueError(f"column {name!r} has no values at all; exclude it")
            kinds[name] = infer_kind(columns[name], only_feature=only)
            inferred.append(name)
    if not kinds:
        raise ValueError(f"no feature columns left besides the target {target!r}")
    for name, kind in kinds.items():
        if all(v is None for v in columns[name]):
            raise ValueError(f"column {name!r} has no values at all; exclude it")
        if kind == "numeric":
            _check_numeric_column(columns, name)
        elif kind == "boolean":
            _check_boolean_column(columns, name)
    text = [n for n, k in kinds.items() if k == "text"]
    if text and len(kinds) > 1:
        others = [n for n in kinds if n not in text]
        raise ValueError(f"a text model takes one text column and nothing else: text {', '.join(map(repr, text))}, "
                         f"other features {', '.join(map(repr, others))} (exclude them)")
    for what, names in (("optional", config.optional), ("sensitive", config.sensitive)):
        not_features = [o for o in names if o not in kinds]
        if not_features:
            raise ValueError(f"{what} column(s) {', '.join(map(repr, not_features))} are not features of the model")
    if text and text[0] in config.optional:
        raise ValueError(f"the text column {text[0]!r} cannot be optional: a text model needs its text")
    order = {name: i for i, name in enumerate(header)}
    ranked = sorted(kinds, key=lambda n: (KINDS.index(kinds[n]), order[n]))
    configs = {name: config.column_config(name, kinds[name]) for name in ranked}
    return Features(configs=configs, inferred=tuple(n for n in ranked if n in inferred))


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


def _check_boolean_column(columns: Columns, name: str) -> None:
    _, _, bad = to_bool(columns[name])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"boolean column {name!r}: data row {i + 1} has {columns[name][i]!r}, which is not a boolean "
                         f"(true/false, yes/no, t/f, y/n, 1/0)")


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
    """Rows dropped before the split. Each dropped row is counted once, under the first reason that
    dropped it, in this order: no target, exact duplicate, a missing value in a column whose missing
    strategy is `drop`, a value outside the outlier bounds of a column whose outlier_action is `drop`
    (per column, in feature order). rows_loaded == rows_kept + every count."""

    rows_loaded: int
    dropped_missing_target: int = 0
    dropped_duplicates: int = 0
    dropped_missing: dict[str, int] = field(default_factory=dict)
    dropped_outliers: dict[str, int] = field(default_factory=dict)
    outlier_bounds: dict[str, list[float]] = field(default_factory=dict)  # of the outlier_action=drop columns
    rows_kept: int = 0

    @property
    def rows_dropped(self) -> int:
        return (self.dropped_missing_target + self.dropped_duplicates + sum(self.dropped_missing.values())
                + sum(self.dropped_outliers.values()))

    def as_dict(self) -> dict[str, object]:
        return {
            "rows_loaded": self.rows_loaded,
            "dropped_missing_target": self.dropped_missing_target,
            "dropped_duplicates": self.dropped_duplicates,
            "dropped_missing": dict(self.dropped_missing),
            "dropped_outliers": dict(self.dropped_outliers),
            "outlier_bounds": {k: list(v) for k, v in self.outlier_bounds.items()},
            "rows_kept": self.rows_kept,
        }

    def summary(self, target: str) -> str:
        parts = [f"{self.dropped_missing_target} without {target!r}", f"{self.dropped_duplicates} duplicates"]
        if self.dropped_missing:
            parts.append("missing: " + ", ".join(f"{k} {v}" for k, v in self.dropped_missing.items()))
        if self.dropped_outliers:
            parts.append("outliers: " + ", ".join(f"{k} {v}" for k, v in self.dropped_outliers.items()))
        return f"{self.rows_loaded} rows loaded, {self.rows_kept} kept ({', '.join(parts)})"


def _missing(values: Sequence[str | None]) -> np.ndarray:
    return np.fromiter((v is None or is_missing_string(v) for v in values), bool, len(values))


def clean(columns: Columns, target: str, features: Features) -> tuple[Columns, CleaningReport]:
    """Drop rows with no target, exact duplicate rows, rows missing a value in a column whose missing
    strategy is `drop` (required columns, by default; text always), and rows outside the outlier bounds
    of numeric columns whose outlier_action is `drop` (bounds from `maas_core.preprocess.outlier_bounds`
    over the rows still kept). Clipping and imputing are not done here: the spec does them, in training and
    serving.

    Returns only the target and feature columns. Other missing values stay missing: the spec fills them.
    """
    n = n_rows(columns)
    report = CleaningReport(rows_loaded=n)
    keep = np.ones(n, bool)

    no_target = _missing(columns[target])
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

    for name, cfg in features.configs.items():
        if cfg.kind != "text" and cfg.missing_strategy() != "drop":
            continue
        missing = keep & _missing(columns[name])
        if missing.any():
            report.dropped_missing[name] = int(missing.sum())
            keep &= ~missing

    outside: dict[str, np.ndarray] = {}
    for name, cfg in features.configs.items():  # every column's bounds from the same rows
        if cfg.kind != "numeric" or cfg.outliers == "none" or cfg.outlier_action != "drop":
            continue
        values, _ = to_float(columns[name])
        bounds = outlier_bounds(values[keep], cfg.outliers, cfg.outlier_threshold)
        if bounds is None:
            continue
        report.outlier_bounds[name] = [bounds[0], bounds[1]]
        with np.errstate(invalid="ignore"):
            outside[name] = (values < bounds[0]) | (values > bounds[1])  # NaN (missing) is not an outlier
    for name, out in outside.items():
        dropped = keep & out
        if dropped.any():
            report.dropped_outliers[name] = int(dropped.sum())
            keep &= ~dropped

    report.rows_kept = int(keep.sum())
    if report.rows_kept == 0:
        raise ValueError(
            f"no rows left after cleaning {n} rows: {report.dropped_missing_target} had no {target!r}, "
            f"{report.dropped_duplicates} were duplicates, rows missing a value (missing strategy drop): "
            f"{report.dropped_missing or 'none'}, outliers dropped: {report.dropped_outliers or 'none'} "
            f"(mark features that may be missing as optional, or choose a fill with missing=...)"
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
