"""What a prediction did, as one value: the predictor makes it, a monitor takes it whole.

    outcome = predictor.predict("churn", records)   # maas_core.predictor
    outcome.response        # the PredictResponse the caller is answered
    outcome.route           # which model, version and variant answered; through which alias; canary or not
    outcome.manifest, outcome.spec, outcome.records, outcome.timings

The predict API's monitor counts and captures a request from its outcome (maas_core.monitoring.metrics); a
batch file's monitor does the same per chunk from a ChunkOutcome (maas_core.monitoring.batch).

A prediction that fails once its version is loaded (a record the spec refuses, a model output that is not
finite, the deadline) raises its error as it would anyway, with its route noted on it (`failed_route`): the
monitor counts the failure for the version that refused it. A request refused before that (an unknown model,
too many records) has no route, and is counted under [service] only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maas_core.manifest import DEFAULT_VARIANT

if TYPE_CHECKING:
    from maas_core.manifest import Manifest
    from maas_core.outputs import Predictions
    from maas_core.preprocess import PreprocessSpec
    from maas_core.schemas import PredictResponse


@dataclass(frozen=True)
class Route:
    """Which version of a model answers a request, and why."""

    model: str
    version: str
    alias: str | None = None
    canary: bool = False  # the alias's canary version was chosen for this caller
    fallback_from: str | None = None  # the alias's version failed to load; its last good version answered
    variant: str = DEFAULT_VARIANT  # which encoding of the version answers: float or int8 (maas_core.manifest)


@dataclass(frozen=True)
class Timings:
    """Where a prediction's time went, in milliseconds."""

    load_ms: float  # choosing the version and loading it (a warm cache: microseconds)
    preprocess_ms: float  # the spec's transform of the records
    run_ms: float  # onnxruntime (and an explanation's occlusions), shaping and validating the answer


@dataclass(frozen=True)
class PredictionOutcome:
    """One answered predict request: the answer, and what made it."""

    route: Route
    manifest: Manifest
    spec: PreprocessSpec
    records: Sequence[Any]  # as the caller sent them, in order (captures keep a summary of each)
    response: PredictResponse
    timings: Timings

    @property
    def record_count(self) -> int:
        return len(self.response.predictions)


@dataclass(frozen=True)
class ChunkOutcome:
    """One chunk of a batch file predicted (maas_core.batch.job): its predicted rows and what they got."""

    route: Route
    manifest: Manifest
    spec: PreprocessSpec
    file_id: str  # a row's prediction id is "{file_id}-{row}"
    rows: Sequence[int]  # the predicted rows (1-based data rows of the file), in order
    records: Sequence[Any]  # their raw records, in the same order
    predictions: Predictions  # and their predictions (maas_core.outputs)
    rejected: int  # rows of the chunk refused (each is in the file's errors file)
    latency_ms: float  # reading, preprocessing, predicting and writing the chunk

    def prediction_ids(self) -> list[str]:
        return [f"{self.file_id}-{row}" for row in self.rows]


_ROUTE_NOTE = "maas_route"


def note_route(error: BaseException, route: Route) -> None:
    """Note on an error raised after routing which route it failed on; its type and answer stay the same."""
    try:
        setattr(error, _ROUTE_NOTE, route)
    except AttributeError:  # an exception type that takes no attributes: counted as if unrouted
        pass


def failed_route(error: BaseException) -> Route | None:
    """The route a failed prediction had been given (`note_route`), or None: refused before one was chosen."""
    route = getattr(error, _ROUTE_NOTE, None)
    return route if isinstance(route, Route) else None
