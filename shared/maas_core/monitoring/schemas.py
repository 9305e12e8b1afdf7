"""Request and response models of the monitoring API (feedback, metrics); they also document it in OpenAPI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maas_core.ids import PREDICTION_ID

MAX_FEEDBACK_ITEMS = 1000

FeedbackStatus = Literal["recorded", "duplicate", "conflict", "not_found", "invalid"]


class FeedbackItem(BaseModel):
    """The ground truth of one earlier prediction: its label (classifiers) or value (regression)."""

    # the OpenAPI document states what _label_or_value checks
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"properties": {"label": {"type": "string"}, "value": {"type": "null"}}, "required": ["label"]},
        {"properties": {"label": {"type": "null"}, "value": {"type": "number"}}, "required": ["value"]},
    ]})

    # the pattern in the document only: an id of another form is reported per item (status invalid)
    prediction_id: str = Field(min_length=1, max_length=64, description="the `id` the prediction was answered with",
                               json_schema_extra={"pattern": PREDICTION_ID.pattern})
    label: str | None = Field(default=None, max_length=256, description="the true class (classifiers)")
    value: float | None = Field(default=None, allow_inf_nan=False, description="the true value (regression)")

    @model_validator(mode="after")
    def _label_or_value(self) -> FeedbackItem:
        if (self.label is None) == (self.value is None):
            raise ValueError("give exactly one of label (classifiers) or value (regression)")
        return self

    def truth(self) -> dict[str, Any]:
        return {"label": self.label} if self.label is not None else {"value": self.value}


class FeedbackRequest(BaseModel):
    """Feedback for one prediction (`{"prediction_id", "label"}`) or many (`{"feedback": [...]}`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"feedback": [{"prediction_id": "0190f3c2a1b24c6d8e9fa0b1c2d3e4f5-0", "label": "Adelie"},
                      {"prediction_id": "0190f3c2a1b24c6d8e9fa0b1c2d3e4f5-1", "label": "Gentoo"}]},
    ]})

    feedback: list[FeedbackItem] = Field(min_length=1, max_length=MAX_FEEDBACK_ITEMS)

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        if isinstance(data, dict) and "feedback" not in data and "prediction_id" in data:
            return {"feedback": [data]}
        return data


class FeedbackResult(BaseModel):
    prediction_id: str
    status: FeedbackStatus = Field(description="recorded; duplicate (the same truth was already recorded: counted "
                                               "once); conflict (a different truth was recorded first: kept); "
                                               "not_found (never captured, sampled out, expired, not stored yet, or "
                                               "another model's); invalid (e.g. a label the model does not have)")
    message: str | None = None


class FeedbackResponse(BaseModel):
    model: str
    recorded: int
    duplicates: int
    conflicts: int
    not_found: int
    invalid: int
    results: list[FeedbackResult] = Field(description="one per feedback item, in order")


class WindowInfo(BaseModel):
    start: str = Field(description="ISO 8601, inclusive")
    end: str = Field(description="ISO 8601, exclusive")
    label: str | None = Field(default=None, description="the window asked for, e.g. 1h")


class VersionMetrics(BaseModel):
    version: str
    predictions: int = Field(description="captured predictions of this version in the window")
    estimated_predictions: float | None = Field(default=None, description="predictions / capture rate")
    latency_ms: dict[str, float] = Field(default_factory=dict, description="p50 / p90 / p99, nearest rank")
    feedback: int = Field(description="captured predictions with ground truth")
    quality: dict[str, Any] | None = Field(
        default=None, description="classifiers: accuracy, precision/recall/f1 macro and per class, confusion matrix; "
                                  "regression: mae, rmse; null without feedback")
    drift: dict[str, Any] = Field(default_factory=dict,
                                  description="PSI per input field against the training baseline, max_psi, status")


class MetricsResponse(BaseModel):
    model: str
    window: WindowInfo
    capture_rate: float
    truncated: bool = Field(description="true when the window held more captures than were read (the newest were used)")
    thresholds: dict[str, float] = Field(description="PSI thresholds: moderate and significant drift")
    versions: list[VersionMetrics]
