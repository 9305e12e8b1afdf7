"""The stack floor: the S3-loading ONNX floor plus what maas's standards require of a serving function, and no
maas code. benchmarks.cold_start runs it as a Lambda function directory, like functions/predict.

What it adds to the floor (benchmarks/_child.py floor), each the way functions/predict uses it:
  Powertools  Logger (inject_lambda_context), Metrics (EMF, one metric per request), the REST resolver with
              OpenAPI validation on, a route with a path parameter, a Query parameter and a pydantic body
  settings    pydantic-settings, the bucket and table from MAAS_* variables
  registry    a DynamoDB client and one GetItem of the `prod` alias (the version to load)
It leaves out all of maas: no manifest, no hash check, no preprocessing (the body carries the prepared row),
no load checks, no capture, no error bodies. So handler / stack floor is what maas itself adds, and
stack floor / floor what the required libraries cost.
"""

from __future__ import annotations

from typing import Annotated, Any

import boto3
import numpy as np
import onnxruntime as ort
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAAS_")
    model_bucket: str
    registry_table: str


class Request(BaseModel):
    rows: list[list[float]] = Field(min_length=1, max_length=1000)


logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)
sessions: dict[str, ort.InferenceSession] = {}


@app.post("/v1/models/<model>/predict")
def predict(model: str, request: Request, alias: Annotated[str, Query()] = "prod") -> dict[str, Any]:
    session = sessions.get(model)
    if session is None:
        settings = Settings()  # type: ignore[call-arg]
        item = boto3.client("dynamodb").get_item(
            TableName=settings.registry_table,
            Key={"pk": {"S": f"MODEL#{model}"}, "sk": {"S": f"ALIAS#{alias}"}})["Item"]
        version = item["version"].get("S") or item["version"]["N"]
        key = f"models/{model}/{version}/model.onnx"
        body = boto3.client("s3").get_object(Bucket=settings.model_bucket, Key=key)["Body"].read()
        session = sessions[model] = ort.InferenceSession(body, providers=["CPUExecutionProvider"])
    x = np.asarray(request.rows, dtype=np.float32)
    y = session.run(None, {session.get_inputs()[0].name: x})[0]
    metrics.add_metric(name="RecordCount", unit=MetricUnit.Count, value=len(request.rows))
    return {"argmax": [int(i) for i in y.argmax(axis=1)]}


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
