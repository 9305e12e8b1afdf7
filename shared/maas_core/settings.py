"""Settings from the environment, prefix MAAS_ (as set by template.yaml or the local gateway)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "MAAS_"


class Settings(BaseModel):
    """MAAS_* environment variables (any case), keyword arguments taking precedence, validated by pydantic.

    What pydantic-settings' BaseSettings did for these flat fields, without importing it: ~60 ms less on
    every cold start of the serving functions."""

    model_config = ConfigDict(extra="ignore")

    def __init__(self, **values: Any) -> None:
        env = {k[len(ENV_PREFIX):].lower(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
        super().__init__(**{**env, **values})

    model_bucket: str = Field(default="maas-models", description="S3 bucket holding model bundles")
    registry_table: str = Field(default="maas-registry", description="DynamoDB table of versions and aliases")
    default_alias: str = "prod"
    max_records: int = Field(default=1000, ge=1, description="records accepted in one predict or preprocess request")
    # hostile-input limits (docs/security.md): each is checked before the work it bounds
    max_field_chars: int = Field(default=20_000, ge=1,
                                 description="characters in one string value of a record, before and after "
                                             "Unicode normalisation (a 422 naming record and field; in batch a row error)")
    max_explain_cells: int = Field(default=20_000, ge=1,
                                   description="records x input fields one ?explain=true request may occlude (413 above)")
    batch_max_decompressed_bytes: int = Field(default=2 * 1024**3, ge=1,
                                              description="bytes of text one batch file may inflate to (gzip)")
    batch_max_rows: int = Field(default=10_000_000, ge=1, description="data rows one batch file may hold")
    batch_max_compression_ratio: float = Field(default=200.0, ge=1,
                                               description="times a gzip batch file may inflate (judged after its first 256 KiB)")
    alias_ttl_seconds: float = Field(default=5.0, ge=0, description="how long a warm function trusts a resolved alias")
    model_cache_size: int = Field(default=8, ge=1, description="model versions kept loaded per process")
    # monitoring (maas_core.monitoring): prediction capture, feedback, quality and drift metrics
    capture_rate: float = Field(default=1.0, description="share of predictions captured as log lines, 0..1 "
                                                         "(clamped); 0 turns capture off")
    captures_table: str = Field(default="maas-captures", description="DynamoDB table of captured predictions")
    capture_ttl_days: int = Field(default=30, ge=1, description="captured predictions expire after this many days")
    metrics_window: str = Field(default="1h", description="window the scheduled publisher computes metrics over")
    metrics_max_captures: int = Field(default=100_000, ge=1,
                                      description="captures read per model and window when computing metrics")
    metrics_min_samples: int = Field(default=20, ge=1,
                                     description="fewest labelled / captured values before quality or drift is published")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
