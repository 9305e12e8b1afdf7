"""Settings from the environment, prefix MAAS_ (as set by template.yaml or the local gateway)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAAS_", extra="ignore")

    model_bucket: str = Field(default="maas-models", description="S3 bucket holding model bundles")
    registry_table: str = Field(default="maas-registry", description="DynamoDB table of versions and aliases")
    default_alias: str = "prod"
    max_records: int = Field(default=1000, ge=1, description="records accepted in one predict or preprocess request")
    alias_ttl_seconds: float = Field(default=5.0, ge=0, description="how long a warm function trusts a resolved alias")
    model_cache_size: int = Field(default=8, ge=1, description="model versions kept loaded per process")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
