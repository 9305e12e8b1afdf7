"""Request and response models of the HTTP API (pydantic: they also generate the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from maas_core.preprocess.literals import kind_of
from maas_core.settings import get_settings

TOO_MANY_RECORDS = "too_many_records"  # the error type maas_core.edge.http answers 413 for


def _object_or_string(value: Any) -> Any:
    # one clear error per bad record (worded like the spec's), instead of one per member of the union
    if isinstance(value, (dict, str)):
        return value
    raise PydanticCustomError("record_type", "record must be a JSON object or a string, got {kind}",
                              {"kind": kind_of(value)})


# a plain validator: the record is checked and kept as it is (not copied key by key as dict[str, Any] would:
# ~3.7 ms per 1,000 records); the model's fitted spec checks its fields. Documented as object | string.
Record = Annotated[dict[str, Any] | str,
                   PlainValidator(_object_or_string, json_schema_input_type=dict[str, Any] | str)]


class RecordsRequest(BaseModel):
    """Raw records, as a caller sends them; the model's fitted preprocessing spec validates their fields."""

    model_config = ConfigDict(extra="forbid")

    records: list[Record] = Field(
        min_length=1,
        description="raw input records: JSON objects with the fields of the model's input schema; "
                    "a text model also takes bare strings (the text itself, same as {\"<text field>\": \"...\"})",
        examples=[
            [{"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5,
              "flipper_length_mm": 215, "body_mass_g": 5000, "sex": "female"}],
            ["The parcel arrived broken and nobody answers my emails", {"text": "Thanks, all sorted!"}],
        ],
    )

    @model_validator(mode="before")
    @classmethod
    def _count_first(cls, data: Any) -> Any:
        # before any record is validated: 1,000,000 bad records must cost a count, not a million errors
        records = data.get("records") if isinstance(data, dict) else None
        limit = get_settings().max_records
        if isinstance(records, list) and len(records) > limit:
            raise PydanticCustomError(TOO_MANY_RECORDS, "{received} records in one request; the limit is {limit}",
                                      {"received": len(records), "limit": limit})
        return data

    def __repr__(self) -> str:
        # short: Powertools logs route arguments in a debug f-string on every call, and the default repr of
        # 1,000 records costs ~4 ms per request even when debug logging is off
        return f"{type(self).__name__}(records=<{len(self.records)} records>)"

    __str__ = __repr__


class PredictRequest(RecordsRequest):
    """Records to predict."""


class PreprocessRequest(RecordsRequest):
    """Records to turn into the feature matrix the model sees."""


class Explanation(BaseModel):
    """Why a tabular model answered what it did: occlusion against its baseline (maas_core.explain).

    attribution[field] = output - (output with that field at its baseline value). These are
    one-at-a-time effects: for a non-linear model they need not sum to output - baseline_output."""

    method: Literal["occlusion"] = "occlusion"
    baseline: Literal["training", "background", "declared"] = Field(
        default="training", description="where the baseline values come from: `training` (numeric fields at their "
                                        "training mean, categorical and boolean fields at their most frequent "
                                        "training value), `background` (the same statistics over the background "
                                        "data an external model was registered with) or `declared` (the baseline "
                                        "record its declaration gives)")
    target: str | None = Field(default=None, description="the class explained: the predicted label (classifiers)")
    output: float = Field(description="the model's output for the record: probability of `target`, or the value")
    baseline_output: float = Field(description="the output with every field at its baseline value")
    attributions: dict[str, float] = Field(
        description="raw input field -> output minus the output with that field at its baseline value")


class Prediction(BaseModel):
    id: str = Field(description="prediction id; feedback refers to it")
    label: str | None = Field(default=None, description="predicted class (classifiers)")
    probabilities: dict[str, float] | None = Field(default=None, description="class -> probability (classifiers)")
    value: float | None = Field(default=None, description="predicted value (regression)")
    explanation: Explanation | None = Field(default=None, description="per-field attributions (?explain=true)")


class PredictResponse(BaseModel):
    model: str
    version: str = Field(description="the version that answered")
    variant: Literal["float", "int8"] = Field(
        default="float", description="which of the version's models answered: float, or int8 (dynamically quantized)")
    alias: str | None = Field(default=None, description="the alias that was resolved, if any")
    canary: bool | None = Field(default=None, description="true when the alias's canary version answered")
    predictions: list[Prediction]


class PreprocessResponse(BaseModel):
    model: str
    version: str
    alias: str | None = Field(default=None, description="the alias that was resolved, if any")
    feature_names: list[str] = Field(description="one name per column of `features`")
    dtype: Literal["float32", "int32", "int64"] = Field(
        description="the model input's type: float32 for tabular features, integer token ids for text")
    features: list[list[int]] | list[list[float]] = Field(
        description="one row per record, in order: exactly what the model is given")


class ErrorInfo(BaseModel):
    code: str = Field(description="what went wrong, for programs: e.g. invalid_request, payload_too_large")
    message: str = Field(description="what went wrong and what to do, for people")
    details: list[dict[str, Any]] = Field(default_factory=list,
                                          description="one entry per problem (at most 50), e.g. record index and field")
    details_total: int | None = Field(default=None, description="how many problems there were, when more than "
                                                                "`details` lists")
    request_id: str | None = Field(default=None, description="the request's id (also the X-Request-Id header): "
                                                             "quote it when reporting a problem")


class ErrorResponse(BaseModel):
    error: ErrorInfo


class HealthResponse(BaseModel):
    status: str
    version: str
