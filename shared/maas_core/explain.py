"""Per-feature explanations of tabular predictions, by occlusion against the model's baseline.

For each record and each raw input field f (a field of the caller's record, not an encoded model
column: a one-hot categorical is one field), the field is replaced by its *baseline value* and the
record is predicted again. The attribution of f is how much the model's output drops:

    attribution_f = f(x) - f(x with field f at its baseline value)

where the output f(.) is, for a classifier, the probability of the label predicted for x (so a
positive attribution means "this field's value pushed the model towards its answer"), and for a
regression, the predicted value. Baseline values come from the training data (maas_core.baseline; for
an external model, from the background data or the baseline record it was registered with, and each
explanation names which: `baseline` is "training", "background" or "declared"):

    numeric              the training mean (manifest.baseline features[name].mean), else the
                         spec's fill value, else its scaler center
    categorical/boolean  the most frequent training value (manifest.baseline frequencies), else
                         the spec's fill value, else the first category / false

Each explanation also reports `output` = f(x) and `baseline_output` = f(every field at its
baseline). Attributions are one-at-a-time effects, so for a non-linear model (a softmax, an MLP,
interacting fields) they do NOT in general sum to `output - baseline_output`: the gap between the
two is the part of the prediction no single field explains on its own. For a model that is linear
in its inputs, with each field feeding its own columns (no row normalisation), they sum exactly.

Cost: all occlusions of all records are one batch, n_records x (n_fields + 1) + 1 rows, transformed
by the fitted spec (the same code path as prediction) and run in ONE onnxruntime call; the original
records' outputs come from that same call, so the prediction and its explanation cannot disagree.
A record any of whose rows gives a non-finite output is refused (422, maas_core.outputs), as a
prediction without explanation would be: its attributions would not be numbers.

An external model registered with neither a background CSV nor a baseline record has no baseline
worth occluding with (the spec's fallbacks are zeros): asking for an explanation of one is a 422 that
says how to register it with one.

Text models are not supported yet (a word is not a field, and occluding tokens needs its own
baseline): asking for an explanation of one is a 422.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from maas_core.baseline import BaselineSource, baseline_source, baseline_values
from maas_core.errors import MaasError, UnprocessableError
from maas_core.model_cache import LoadedModel
from maas_core.outputs import PROBABILITY_DIGITS, class_probabilities, nonfinite_rows, refuse_nonfinite
from maas_core.preprocess import PreprocessSpec
from maas_core.schemas import Explanation

__all__ = ["baseline_values", "check_explainable", "explain_predictions", "occlusion_columns"]

METHOD: Literal["occlusion"] = "occlusion"
_DIGITS = PROBABILITY_DIGITS  # like the probabilities in a prediction


def check_explainable(model: LoadedModel) -> BaselineSource:
    """The model's baseline source, or a 422 when its predictions cannot be explained."""
    m = model.manifest
    if model.spec.text_feature is not None:
        raise UnprocessableError(
            "explanations are not supported for text models yet; ask again without ?explain=true",
            [{"field": "explain", "reason": "text model", "model": m.name, "version": m.version}])
    source = baseline_source(m)
    if source is None:
        raise UnprocessableError(
            f"model {m.name!r} version {m.version!r} was registered without a baseline, so there is nothing "
            "meaningful to occlude its fields with: register it again with a baseline record in the declaration "
            "(baseline: {field: value, ...}) or with background data (maas register ... --background FILE.csv, "
            "a sample of the data it was trained on); or ask without ?explain=true",
            [{"field": "explain", "reason": "no baseline", "model": m.name, "version": m.version}])
    return source


def occlusion_columns(spec: PreprocessSpec, records: Sequence[Mapping[str, Any]],
                      base: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Raw columns of the occlusion batch. Record i owns rows i*(k+1) .. i*(k+1)+k: first the record
    as sent, then one row per field j (in spec order) with that field at its baseline value. The
    last row has every field at its baseline."""
    names = [f.name for f in spec.features]
    v = len(names) + 1
    columns: dict[str, list[Any]] = {}
    for j, name in enumerate(names):
        col = [r.get(name) for r in records for _ in range(v)]
        col[j + 1::v] = [base[name]] * len(records)
        col.append(base[name])
        columns[name] = col
    return columns


def explain_predictions(model: LoadedModel, records: Sequence[Any]) -> tuple[np.ndarray, list[Explanation]]:
    """(model outputs of the records, one explanation per record), from one onnxruntime call.

    The records must already have passed `model.spec.transform` (the predictor validates them first,
    so errors name the caller's record indices); tabular records are JSON objects.
    """
    source = check_explainable(model)
    spec, manifest = model.spec, model.manifest
    base = baseline_values(spec, manifest.baseline)
    names = [f.name for f in spec.features]
    n, v = len(records), len(names) + 1
    try:
        features = spec.transform_columns(occlusion_columns(spec, records, base))
    except UnprocessableError as exc:  # the records were valid, so a baseline value was not: our fault
        raise MaasError(f"the {source} baseline of model {manifest.name!r} version {manifest.version!r} "
                        f"cannot be transformed: {exc.message}", exc.details) from exc
    raw = model.run(features)
    bad = nonfinite_rows(raw)  # record i: any of its rows, or the all-baseline row its baseline_output is from
    refuse_nonfinite(bad[: n * v].reshape(n, v).any(axis=1) | bad[-1])
    originals = raw[: n * v: v]
    if manifest.task == "regression":
        scores = raw.reshape(len(raw), -1)[:, 0].astype(np.float64)
        targets = None
        block, base_out = scores[: n * v].reshape(n, v), np.full(n, scores[-1])
    else:
        probs = class_probabilities(manifest.task, raw)
        targets = probs[: n * v: v].argmax(axis=1)  # the label predicted for each record as sent
        block = probs[np.arange(n * v), np.repeat(targets, v)].reshape(n, v)
        base_out = probs[-1, targets]
    attributions = block[:, :1] - block[:, 1:]  # f(x) - f(x with field j at baseline)
    explanations = [
        Explanation(
            method=METHOD, baseline=source,
            target=None if targets is None else manifest.labels[targets[i]],
            output=round(float(block[i, 0]), _DIGITS), baseline_output=round(float(base_out[i]), _DIGITS),
            attributions={name: round(float(a), _DIGITS) for name, a in zip(names, attributions[i], strict=True)},
        )
        for i in range(n)
    ]
    return originals, explanations
