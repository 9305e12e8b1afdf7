"""Which models a job trains on its split, which one it keeps, and whether that one is worth publishing.

Every run compares, on the same fitted spec and the same split:

- the trivial baseline: the training rows' class frequencies (its label is the majority class) or their mean;
- the linear baseline: a logistic / linear regression (the MLP builder with no hidden layer) on feature rows,
  or a bag-of-words logistic model (maas_training.model.build_bow_model) on a text column's token ids;
- the candidates of the `model` setting: `auto` is linear + mlp on feature rows, bow + lstm on text; a named
  model is the only candidate (and the linear baseline is trained beside it).

The choice is made on the validation split, never on the holdout: the candidate with the best `PRIMARY`
metric there wins. Under CV_MAX_ROWS train + validation rows (or with no validation split), one
validation split is too noisy to choose by, so the choice is the best mean over CV_FOLDS folds of the
train + validation rows (each fold early-stops on, and is scored on, its held-out fold; the matrices come
from the spec fitted on the training split). Then every model is fitted on the training split (early
stopping on validation) and scored on the holdout, which only reports: the chosen model must beat the
trivial baseline there and, under `auto`, must not lose to the linear baseline it was chosen over (a choice
that does not hold on unseen rows), or the job fails (NoBetterModel) unless `allow_no_better`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from maas_core.manifest import CandidateResult, Candidates, Selection, improvement
from maas_training.evaluate import classification_metrics, probabilities, regression_metrics

if TYPE_CHECKING:
    from maas_training.job import Prepared
    from maas_training.model import History

Progress = Callable[[str], None]

TABULAR = ("linear", "mlp")
TEXT = ("bow", "lstm")
TRIVIAL = "trivial"
CV_FOLDS = 5
CV_MAX_ROWS = 2000
# the metric the choice and the trivial-baseline check use: proper scores, the ones the networks minimise
PRIMARY = {"regression": "rmse", "binary": "log_loss", "multiclass": "log_loss"}


class NoBetterModel(RuntimeError):
    """The chosen model does not beat the trivial baseline on the holdout; nothing was published."""


def linear_baseline(is_text: bool) -> str:
    return "bow" if is_text else "linear"


def candidate_kinds(model: str, is_text: bool) -> tuple[str, ...]:
    """The models `model` (the config's setting) trains as candidates; ValueError when it does not fit the data."""
    allowed = TEXT if is_text else TABULAR
    if model == "auto":
        return allowed
    if model not in allowed:
        data = "a text column" if is_text else "feature columns"
        raise ValueError(f"model {model!r} does not suit {data}; use auto, {' or '.join(allowed)}")
    return (model,)


def describe(kind: str, p: Prepared) -> str:
    config = p.config
    if kind == TRIVIAL:
        return "training mean" if p.task == "regression" else "majority class (training class frequencies)"
    if kind == "linear":
        return "linear regression" if p.task == "regression" else "logistic regression"
    if kind == "mlp":
        return f"MLP {config.hidden_units}"
    if kind == "bow":
        return f"bag-of-words (mean of Embedding({p.spec.text_feature.vocabulary_size}, {config.embed_dim}))"  # type: ignore[union-attr]
    return f"Embedding({p.spec.text_feature.vocabulary_size}, {config.embed_dim}) -> LSTM({config.lstm_units})"  # type: ignore[union-attr]


@dataclass
class Fit:
    """One fitted network (for a regression, with the target scaling undone in its output) and its history."""

    kind: str
    net: Any  # a keras.Model
    history: History
    target_scale: dict[str, float] | None  # a regression's train-row mean/std
    seconds: float


@dataclass
class Scored:
    fit: Fit
    outputs: np.ndarray  # on the holdout rows
    metrics: dict[str, float]


@dataclass
class Choice:
    """The chosen model scored on the holdout, and the manifest's record of every model compared."""

    chosen: Scored
    record: Candidates


def encode_targets(task: str, loss: str, n_labels: int, y_train: np.ndarray,
                   y_val: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, float] | None]:
    """Targets in the shape each loss wants. A regression trains on a standardised target (train-row
    mean/std); the exported model undoes the scaling, so it outputs values in the target's units."""
    if task == "regression":
        mean = float(y_train.mean())
        std = float(y_train.std()) or 1.0

        def scale(y: np.ndarray) -> np.ndarray:
            return ((y - mean) / std).astype(np.float32).reshape(-1, 1)

        return scale(y_train), scale(y_val), {"mean": mean, "std": std}
    if task == "binary":
        return y_train.astype(np.float32).reshape(-1, 1), y_val.astype(np.float32).reshape(-1, 1), None
    if task == "multiclass" and loss == "focal":  # Keras has no sparse focal loss: one-hot targets
        eye = np.eye(n_labels, dtype=np.float32)
        return eye[y_train], eye[y_val], None
    return y_train, y_val, None


def build(kind: str, p: Prepared, n_inputs: int) -> Any:
    from maas_training import model as nn

    text, n_classes = p.spec.text_feature, len(p.labels)
    if kind in TEXT:
        assert text is not None
        builder = nn.build_bow_model if kind == "bow" else nn.build_text_model
        return builder(text.vocabulary_size, text.max_length, text.dtype, p.task, n_classes, p.config, loss=p.loss)
    return nn.build_model(n_inputs, p.task, n_classes, p.config, loss=p.loss,
                          hidden_units=[] if kind == "linear" else None)


def fit(kind: str, p: Prepared, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
        progress: Progress) -> Fit:
    """Build the `kind` network and fit it on these rows (early stopping on the validation rows, if any)."""
    from maas_training import model as nn

    started = time.monotonic()
    t_train, t_val, target_scale = encode_targets(p.task, p.loss, len(p.labels), y_train, y_val)
    net = build(kind, p, x_train.shape[1])
    has_val = len(x_val) > 0
    history = nn.train(net, x_train, t_train, x_val if has_val else None, t_val if has_val else None, p.config,
                       progress)
    if target_scale is not None:
        net = nn.with_output_scale(net, scale=target_scale["std"], offset=target_scale["mean"])
    return Fit(kind=kind, net=net, history=history, target_scale=target_scale,
               seconds=round(time.monotonic() - started, 2))


def score(task: str, net: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """The network's outputs on these rows and the task's metrics."""
    from maas_training import model as nn

    outputs = nn.predict(net, x)
    return outputs, metrics_of(task, y, outputs)


def metrics_of(task: str, y: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    if task == "regression":
        return regression_metrics(y, outputs[:, 0])
    return classification_metrics(y, probabilities(task, outputs))


def trivial_outputs(p: Prepared, n: int) -> np.ndarray:
    """The trivial baseline's outputs for n rows: the training mean, or the training class frequencies
    (a binary model's single column is P(second class))."""
    if p.task == "regression":
        return np.full((n, 1), float(p.y_train.mean()), np.float32)
    shares = np.bincount(p.y_train.astype(np.int64), minlength=len(p.labels)) / len(p.y_train)
    row = shares[1:] if p.task == "binary" else shares
    return np.tile(row.astype(np.float32), (n, 1))


def cross_validated(kinds: tuple[str, ...], p: Prepared, metric: str,
                    progress: Progress) -> dict[str, dict[str, float]]:
    """Each candidate's `metric` over CV_FOLDS folds of the train + validation rows: mean, std, folds."""
    x = np.concatenate([p.x_train, p.x_val])
    y = np.concatenate([p.y_train, p.y_val])
    folds = np.array_split(np.random.default_rng(p.config.seed).permutation(len(x)), CV_FOLDS)
    quiet: Progress = lambda _: None
    scores: dict[str, dict[str, float]] = {}
    for kind in kinds:
        values = []
        for i, held in enumerate(folds):
            rest = np.concatenate([f for j, f in enumerate(folds) if j != i])
            fitted = fit(kind, p, x[rest], y[rest], x[held], y[held], quiet)
            values.append(score(p.task, fitted.net, x[held], y[held])[1][metric])
        scores[kind] = {metric: float(np.mean(values)), f"{metric}_std": float(np.std(values)),
                        "folds": float(CV_FOLDS)}
        progress(f"  {kind}: {metric} {np.mean(values):.4g} ± {np.std(values):.2g} over {CV_FOLDS} folds")
    return scores


def choose(p: Prepared, progress: Progress) -> Choice:
    """Train the baselines and candidates, keep the best candidate on validation, check it on the holdout."""
    config = p.config
    kinds = candidate_kinds(config.model, p.is_text)
    baseline = linear_baseline(p.is_text)
    metric = PRIMARY[p.task]
    lower = improvement(metric, 0.0, 1.0) > 0
    pick = min if lower else max
    n_choice = len(p.x_train) + len(p.x_val)

    selection_scores: dict[str, dict[str, float]] = {}
    selection: Selection
    if len(kinds) == 1:
        selection = "fixed"
    elif n_choice < CV_MAX_ROWS or len(p.x_val) == 0:
        selection = "cross-validation"
        progress(f"choosing among {', '.join(kinds)} by {CV_FOLDS}-fold cross-validation on {n_choice} "
                 f"train + validation rows ({metric})")
        selection_scores = cross_validated(kinds, p, metric, progress)
    else:
        selection = "validation"

    scored: dict[str, Scored] = {}
    for kind in dict.fromkeys((baseline, *kinds)):  # the linear baseline first, once
        progress(f"training {kind}: {describe(kind, p)} ({p.loss} loss, {config.optimizer}, "
                 f"lr {config.learning_rate:g}) for up to {config.epochs} epochs")
        fitted = fit(kind, p, p.x_train, p.y_train, p.x_val, p.y_val, progress)
        progress(f"trained {fitted.history.epochs_run} epochs in {fitted.seconds:.1f}s, keeping the weights of "
                 f"epoch {fitted.history.best_epoch}")
        if selection == "validation" and kind in kinds:
            selection_scores[kind] = {metric: score(p.task, fitted.net, p.x_val, p.y_val)[1][metric]}
            progress(f"  {kind}: validation {metric} {selection_scores[kind][metric]:.4g}")
        outputs, metrics = score(p.task, fitted.net, p.x_test, p.y_test)
        scored[kind] = Scored(fit=fitted, outputs=outputs, metrics=metrics)

    chosen = kinds[0] if selection == "fixed" else pick(kinds, key=lambda k: selection_scores[k][metric])
    trivial = metrics_of(p.task, p.y_test, trivial_outputs(p, len(p.y_test)))
    models = {TRIVIAL: CandidateResult(description=describe(TRIVIAL, p), metrics=trivial)}
    for kind, s in scored.items():
        models[kind] = CandidateResult(description=describe(kind, p), metrics=s.metrics,
                                       selection=selection_scores.get(kind, {}), train_seconds=s.fit.seconds)
    best = scored[chosen].metrics
    margins = {name: {m: improvement(m, best[m], v) for m, v in result.metrics.items() if m in best}
               for name, result in models.items() if name != chosen}
    beats = margins[TRIVIAL][metric] > 0
    # under auto the linear baseline was a candidate: a choice it beats on the holdout did not generalise
    beats_linear = None if len(kinds) == 1 or chosen == baseline else margins[baseline][metric] >= 0
    useless = not beats or beats_linear is False
    record = Candidates(chosen=chosen, metric=metric, selection=selection, models=models, margins=margins,
                        beats_trivial=beats, beats_linear=beats_linear,
                        allowed_no_better=useless and config.allow_no_better)
    for line in record.lines():
        progress(line)
    if useless and not config.allow_no_better:
        direction = "lower" if lower else "higher"
        if not beats:
            reason = (f"does not beat the trivial baseline ({describe(TRIVIAL, p)}) on the holdout: {metric} "
                      f"{best[metric]:.4g} vs {trivial[metric]:.4g} ({direction} is better)")
        else:
            linear = scored[baseline].metrics[metric]
            reason = (f"(chosen by {selection}) is worse on the holdout than the linear baseline ({baseline}, "
                      f"{describe(baseline, p)}): {metric} {best[metric]:.4g} vs {linear:.4g} "
                      f"({direction} is better), so the choice did not hold on unseen rows (outliers or too few rows? "
                      f"see --outliers, or pin --model {baseline})")
        raise NoBetterModel(f"the chosen model ({chosen}, {describe(chosen, p)}) {reason}; nothing was published. "
                            f"--allow-no-better (allow_no_better: true) publishes it anyway")
    return Choice(chosen=scored[chosen], record=record)
