"""Pictures for the training report: PNG files published in the model bundle beside report.json.

    classifiers  report_confusion_matrix.png   holdout counts, rows true / columns predicted, row shares
                 report_roc_curve.png          binary: the positive (second) label; multiclass: one-vs-rest
    regression   report_residuals.png          predicted vs actual, and predicted vs residual (actual - predicted)
    all          report_training_curves.png    loss / val_loss per epoch (and any other per-epoch metric),
                                               the kept epoch marked
                 report_candidates.png         the models compared (trivial and linear baselines, candidates):
                                               holdout metric of each, the chosen one marked, the selection
                                               score (mean ± std under cross-validation) beside it

Rendered with matplotlib's Agg canvas straight from a `Figure` (no pyplot, no display, no global
state), imported only when a picture is drawn. Everything is computed from the holdout arrays the
job already has: no TensorFlow here, so the pictures can be tested without training.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

CONFUSION_MATRIX = "report_confusion_matrix.png"
ROC_CURVE = "report_roc_curve.png"
RESIDUALS = "report_residuals.png"
TRAINING_CURVES = "report_training_curves.png"
CANDIDATES = "report_candidates.png"
_DPI = 100
_MAX_ANNOTATED_CLASSES = 20  # above this the confusion matrix cells carry colour only
_MAX_POINTS = 5000  # scatter plots sample beyond this many rows


def render_report_pngs(task: str, labels: Sequence[str], y_true: np.ndarray, outputs: np.ndarray,
                       history: Mapping[str, Any] | None = None,
                       candidates: Mapping[str, Any] | None = None) -> dict[str, bytes]:
    """File name -> PNG bytes for a trained model's holdout results.

    `y_true`: class indices into `labels` (classifiers) or target values (regression). `outputs`: the
    model's outputs on the same rows (probabilities, or one sigmoid column for a binary model; the
    predicted value for a regression). `history`: per-epoch lists such as loss / val_loss (other
    entries, e.g. best_epoch, are used to mark the kept epoch); no curves without it. `candidates`: the
    manifest's `candidates` record as JSON (maas_core.manifest.Candidates); no comparison without it.
    """
    y_true = np.asarray(y_true)
    out = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if len(y_true) != len(out):
        raise ValueError(f"{len(y_true)} targets but {len(out)} outputs")
    pngs: dict[str, bytes] = {}
    if task == "regression":
        pngs[RESIDUALS] = residual_plot(y_true.astype(np.float64), out[:, 0])
    else:
        probs = np.hstack([1.0 - out, out]) if task == "binary" and out.shape[1] == 1 else out
        if probs.shape[1] != len(labels):
            raise ValueError(f"{probs.shape[1]} output columns for {len(labels)} labels")
        y = y_true.astype(np.int64)
        pngs[CONFUSION_MATRIX] = confusion_matrix_plot(list(labels), y, probs.argmax(axis=1))
        pngs[ROC_CURVE] = roc_plot(list(labels), y, probs)
    if history and _curves(history):
        pngs[TRAINING_CURVES] = training_curves_plot(history)
    if candidates and candidates.get("models"):
        pngs[CANDIDATES] = candidates_plot(candidates)
    return pngs


def report_pngs_or_none(task: str, labels: Sequence[str], y_true: np.ndarray, outputs: np.ndarray,
                        history: Mapping[str, Any] | None, progress: Callable[[str], None] = print,
                        candidates: Mapping[str, Any] | None = None) -> dict[str, bytes]:
    """render_report_pngs for the training job: a picture that fails to draw is reported and left out,
    never the reason a trained, checked model is not published."""
    try:
        pngs = render_report_pngs(task, labels, y_true, outputs, history, candidates)
    except Exception as exc:  # pictures are a nicety; the model is the product
        progress(f"report pictures skipped: {type(exc).__name__}: {exc}")
        return {}
    progress(f"report pictures: {', '.join(sorted(pngs))}")
    return pngs


# --- the pictures ---------------------------------------------------------------------------------


def confusion_matrix_plot(labels: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> bytes:
    k = len(labels)
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros((k, k)), where=totals > 0)
    side = min(14.0, max(4.5, 0.55 * k + 3.0))
    fig, ax = _figure(side + 1.0, side)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = np.arange(k)
    ax.set_xticks(ticks, [_short(lbl) for lbl in labels], rotation=45 if k > 3 else 0,
                  ha="right" if k > 3 else "center")
    ax.set_yticks(ticks, [_short(lbl) for lbl in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= _MAX_ANNOTATED_CLASSES:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{counts[i, j]}\n{shares[i, j]:.0%}" if totals[i, 0] else "0", ha="center",
                        va="center", fontsize=9 if k <= 8 else 7, color="white" if shares[i, j] > 0.5 else "black")
    accuracy = float(np.trace(counts)) / max(1, int(counts.sum()))
    ax.set_title(f"Confusion matrix (holdout, n={int(counts.sum())}, accuracy {accuracy:.3f})")
    return _png(fig)


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(false positive rates, true positive rates, AUC) of scores for a positive class (y_true bool), or
    None when the holdout has no positives or no negatives. Tied scores move along a diagonal."""
    y = np.asarray(y_true, bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(~y)[last_of_tie]
    tpr = np.r_[0.0, tp / pos]
    fpr = np.r_[0.0, fp / neg]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def roc_plot(labels: list[str], y_true: np.ndarray, probs: np.ndarray) -> bytes:
    many = len(labels) > 10  # legend beside the plot, and line styles as well as colours tell classes apart
    fig, ax = _figure(9.5 if many else 6.5, 6.0)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance (AUC 0.5)")
    if len(labels) == 2:
        classes, title = [1], f"ROC curve: {_short(labels[1])!s} vs {_short(labels[0])!s}"
    else:
        classes, title = list(range(len(labels))), "ROC curves, one-vs-rest"
    skipped, aucs = [], []
    for n, c in enumerate(classes):
        curve = roc_curve(y_true == c, probs[:, c])
        if curve is None:
            skipped.append(labels[c])
            continue
        fpr, tpr, auc = curve
        aucs.append(auc)
        style = {"color": f"C{n % 10}", "linestyle": ("-", "--", "-.")[(n // 10) % 3]}
        ax.plot(fpr, tpr, linewidth=1.6, label=f"{_short(labels[c])} (AUC {auc:.3f})", **style)
    if len(classes) > 1 and aucs:
        title += f", macro AUC {np.mean(aucs):.3f}"
    if skipped:
        title += f"\n(no curve for {', '.join(_short(s) for s in skipped[:5])}: one class only in the holdout)"
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="false positive rate", ylabel="true positive rate",
           title=title)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    if many:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    else:
        ax.legend(loc="lower right", fontsize=8 if len(classes) > 6 else 9)
    return _png(fig)


def residual_plot(y_true: np.ndarray, y_pred: np.ndarray) -> bytes:
    residuals = y_true - y_pred
    rmse = float(np.sqrt(np.mean(residuals**2))) if len(residuals) else 0.0
    mae = float(np.mean(np.abs(residuals))) if len(residuals) else 0.0
    rows = _sample(len(y_true))
    fig, (left, right) = _figure(12.0, 5.5, ncols=2)
    left.scatter(y_true[rows], y_pred[rows], s=14, alpha=0.6, edgecolors="none")
    if len(y_true):
        lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
        left.plot([lo, hi], [lo, hi], linestyle=":", color="grey", label="predicted = actual")
        left.legend(loc="upper left")
    left.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (holdout)")
    right.scatter(y_pred[rows], residuals[rows], s=14, alpha=0.6, edgecolors="none", color="tab:orange")
    right.axhline(0.0, linestyle=":", color="grey")
    right.set(xlabel="predicted", ylabel="residual (actual - predicted)",
              title=f"Residuals: MAE {mae:.4g}, RMSE {rmse:.4g} (n={len(y_true)})")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _png(fig)


def training_curves_plot(history: Mapping[str, Any]) -> bytes:
    from matplotlib.ticker import MaxNLocator

    curves = _curves(history)
    losses = {k: v for k, v in curves.items() if "loss" in k}
    others = {k: v for k, v in curves.items() if "loss" not in k}
    panels = [p for p in (losses, others) if p]
    fig, axes = _figure(6.5 * len(panels), 4.8, ncols=len(panels))
    axes = axes if len(panels) > 1 else [axes]
    best = history.get("best_epoch")
    for ax, panel, what in zip(axes, panels, ("loss" if losses else "metric", "metric"), strict=False):
        for name, values in panel.items():
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, marker="o" if len(values) <= 30 else None, markersize=3, linewidth=1.6,
                    label=name)
        if isinstance(best, int) and best > 0:
            ax.axvline(best, linestyle="--", color="grey", label=f"kept epoch {best}")
        values = np.concatenate([np.asarray(v) for v in panel.values()])
        log = bool(np.all(values > 0) and values.max() / values.min() > 30)  # a loss that falls by decades
        if log:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="epoch", ylabel=f"{what} (log scale)" if log else what, title=f"Training curves ({what})")
        ax.grid(alpha=0.3)
        ax.legend()
    return _png(fig)


def candidates_plot(candidates: Mapping[str, Any]) -> bytes:
    """Bars of the choice metric on the holdout per model, the chosen one in colour, the selection score
    (validation, or the cross-validation mean with its std as an error bar) as a point beside each."""
    metric, chosen = str(candidates["metric"]), candidates.get("chosen")
    models: Mapping[str, Any] = candidates["models"]
    names = list(models)
    holdout = [float(models[n]["metrics"].get(metric, np.nan)) for n in names]
    fig, ax = _figure(7.5, 1.2 + 0.6 * len(names))
    rows = np.arange(len(names))
    colors = ["tab:blue" if n == chosen else "lightgrey" for n in names]
    ax.barh(rows, holdout, color=colors, height=0.6, label=f"holdout {metric}")
    chosen_sel = [(i, models[n].get("selection") or {}) for i, n in enumerate(names)]
    picked = [(i, sel) for i, sel in chosen_sel if metric in sel]
    if picked:
        ax.errorbar([sel[metric] for _, sel in picked], [i for i, _ in picked],
                    xerr=[sel.get(f"{metric}_std", 0.0) for _, sel in picked], fmt="o", color="tab:orange",
                    capsize=4, label=f"choice {metric} ({candidates.get('selection', '')})")
    for i, value in enumerate(holdout):
        ax.annotate(f"{value:.4g}", (value, i), xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_yticks(rows, [f"{_short(n)}{' (chosen)' if n == chosen else ''}" for n in names])
    ax.invert_yaxis()
    ax.set(xlabel=metric, title=f"Models compared on the same split ({metric})")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    return _png(fig)


# --- helpers ------------------------------------------------------------------------------------


def _curves(history: Mapping[str, Any]) -> dict[str, list[float]]:
    """The per-epoch series of a history: non-empty lists of numbers."""
    return {k: [float(x) for x in v] for k, v in history.items()
            if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) for x in v)}


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: same inputs, same bytes
    return buf.getvalue()


def _sample(n: int) -> np.ndarray:
    if n <= _MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, _MAX_POINTS, replace=False))


def _short(label: str, limit: int = 24) -> str:
    """A label cut in the middle, so labels that share a long prefix stay distinguishable."""
    label = str(label)
    if len(label) <= limit:
        return label
    head = (limit - 1) // 2
    return label[:head] + "…" + label[-(limit - 1 - head):]
