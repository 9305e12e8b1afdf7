"""Request and response models of the HTTP API (pydantic: they also generate the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(
        min_length=1,
        description="raw input records: JSON objects with the fields of the model's input schema",
        examples=[[{"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5,
                    "flipper_length_mm": 215, "body_mass_g": 5000, "sex": "female"}]],
    )


class Prediction(BaseModel):
    id: str = Field(description="prediction id; feedback refers to it")
    label: str | None = Field(default=None, description="predicted class (classifiers)")
    probabilities: dict[str, float] | None = Field(default=None, description="class -> probability (classifiers)")
    value: float | None = Field(default=None, description="predicted value (regression)")


class PredictResponse(BaseModel):
    model: str
    version: str
    alias: str | None = Field(default=None, description="the alias that was resolved, if any")
    predictions: list[Prediction]


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorInfo


class HealthResponse(BaseModel):
    status: str
    version: str
