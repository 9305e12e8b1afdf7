"""One typed Settings per process, from the environment: MAAS_* variables (any case), as template.yaml or the
local gateway sets them. docs/configuration.md lists every field, its variable and the template parameter
that sets it.

pydantic-settings' BaseSettings reads them: keyword arguments take precedence, unknown variables are ignored,
no .env file is read. `get_settings()` builds the process's one instance on first use (tests and the local
stack call `get_settings.cache_clear()` after changing the environment).

What BaseSettings costs a cold start (measured on a shared 2-core machine, load ~2.5, Python 3.12,
pydantic-settings 2.16, .pyc cached): importing `pydantic_settings` after everything the predict function
imports anyway (numpy, onnxruntime, boto3, Powertools, pydantic), plus building this class, took a median of
29.7 and 29.8 ms in two series of 15 fresh processes (21-76 ms); the first get_settings() 3.9-4.7 ms against
3.1-3.9 ms for the former hand-written BaseModel reader. `-X importtime` puts pydantic_settings at 19-43 ms
(3 runs): its sources package loads every provider (python-dotenv, argparse for the CLI source, ...). The
whole `import app` A/B (15 interleaved pairs) gave medians of 795 ms without and 811 ms with it, each
spread over 540-1,300 ms: within the noise. So ~30 ms, half the ~60 ms once assumed, ~4% of a 0.7-0.9 s
cold start: small enough to use the library rather than re-implement it.

A bad value must not take every request down: `Settings.from_environment()` (what `get_settings()` uses)
logs a warning naming each variable that fails validation and uses that field's default instead. Keyword
arguments are not forgiven: a bad one is a programming error and raises.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from aws_lambda_powertools import Logger
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "MAAS_"
# API Gateway gives an HTTP request at most 29 s: a margin near that would refuse every request
MAX_DEADLINE_MARGIN_MS = 10_000

logger = Logger(child=True)


class Settings(BaseSettings):
    """MAAS_* environment variables (any case), keyword arguments taking precedence, validated by pydantic."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore")

    model_bucket: str = Field(default="maas-models", description="S3 bucket holding model bundles")
    registry_table: str = Field(default="maas-registry", description="DynamoDB table of versions and aliases")
    default_alias: str = Field(default="prod", description="the alias a request without one resolves")
    max_records: int = Field(default=1000, ge=1, description="records accepted in one predict or preprocess request")
    # hostile-input limits (docs/security.md): each is checked before the work it bounds
    max_field_chars: int = Field(default=20_000, ge=1,
                                 description="characters in one string value of a record, before and after Unicode "
                                             "normalisation (a 422 naming record and field; in batch a row error)")
    max_explain_cells: int = Field(
        default=20_000, ge=1, description="records x input fields one ?explain=true request may occlude (413 above)")
    batch_max_decompressed_bytes: int = Field(default=2 * 1024**3, ge=1,
                                              description="bytes of text one batch file may inflate to (gzip)")
    batch_max_rows: int = Field(default=10_000_000, ge=1, description="data rows one batch file may hold")
    batch_max_compression_ratio: float = Field(
        default=200.0, ge=1, description="times a gzip batch file may inflate (judged after its first 256 KiB)")
    # large batch files (maas_core.batch.distributed): above the threshold a file runs on the state machine
    batch_state_machine_arn: str | None = Field(
        default=None, description="Step Functions state machine for large batch files; unset: every file runs in "
                                  "one function")
    batch_distributed_threshold_bytes: int = Field(
        default=256 * 1024**2, ge=1, description="batch files larger than this (uncompressed CSV/JSONL) are split "
                                                 "into shards on the state machine")
    batch_chunk_rows: int = Field(default=5000, ge=1, description="rows predicted per model call in batch files")
    batch_shard_bytes: int = Field(default=64 * 1024**2, ge=1, description="bytes of input per shard (about)")
    batch_shard_rows: int = Field(default=500_000, ge=1, description="rows per shard at most (about: a shard "
                                                                     "ends at a chunk boundary)")
    batch_max_concurrency: int = Field(default=40, ge=1, le=10_000,
                                       description="shards of one file predicted at once (Distributed Map)")
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
    metrics_min_samples: int = Field(
        default=20, ge=1, description="fewest labelled / captured values before quality or drift is published")
    # batch jobs for web apps (maas_core.jobs)
    jobs_table: str = Field(default="maas-jobs", description="DynamoDB table of batch jobs (a TTL deletes old ones)")
    job_retention_days: int = Field(default=7, ge=1, le=365,
                                    description="days a job (its status and download links) stays readable")
    job_max_upload_bytes: int = Field(default=1024**3, ge=1,
                                      description="bytes one job's upload may have: S3 refuses a bigger one")
    job_upload_expiry_seconds: int = Field(default=900, ge=60, le=7 * 86400,
                                           description="seconds a job's presigned upload stays valid")
    job_download_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 86400,
                                             description="seconds a finished job's presigned download URLs stay valid")
    events_bus: str = Field(default="default",
                            description="EventBridge bus that batch files' completion events are put on")
    # canary guardrails (maas_core.guardrails): the alarms a canary start creates, and what they trigger
    canary_alarm_prefix: str = Field(
        default="maas-canary", min_length=1, max_length=100,
        description="name prefix of the per-canary CloudWatch alarms; the stack's EventBridge rule watches it "
                    "(<stack name>-canary)")
    canary_error_rate: float = Field(default=0.05, gt=0, le=1,
                                     description="a canary alarms when more than this share of its requests are 5xx")
    canary_latency_p99_ms: float = Field(default=1000.0, gt=0,
                                         description="a canary alarms when its p99 latency (ms) is above this")
    canary_min_requests: int = Field(
        default=10, ge=1, description="fewest requests a minute before a canary's error rate counts (fewer: 0)")
    canary_accuracy: float = Field(
        default=0.8, ge=0, le=1, description="a classifier canary alarms when its accuracy over the last hour of "
                                             "feedback falls below this")
    canary_alarm_topic_arn: str = Field(default="", description="SNS topic the canary alarms also notify; empty: none")
    guardrail_function_arn: str = Field(
        default="", description="the guardrail function a canary's promotion schedule invokes (--promote-after)")
    scheduler_role_arn: str = Field(
        default="", description="the role EventBridge Scheduler assumes to invoke the guardrail function")
    # the HTTP edge (maas_core.edge) and the time budget (maas_core.deadline)
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated web origins (or *) whose pages may call the API: CORS "
                                          "headers on the functions' answers; empty: none")
    auth_mode: Literal["ApiKey", "Jwt"] = Field(
        default="ApiKey", description="the security scheme GET /v1/openapi.json documents (the API Gateway "
                                      "authorizer the stack deploys)")
    deadline_margin_ms: int = Field(
        default=1_000, ge=0, le=MAX_DEADLINE_MARGIN_MS,
        description="ms of a request's budget kept back for the answer, metrics and capture: with less left, "
                    "a model load or inference is refused with 503 + Retry-After")
    # onnxruntime (maas_core.ort_options)
    ort_threads: int | None = Field(
        default=None, ge=1, le=64, description="threads one onnxruntime session.run may use; unset: os.cpu_count() "
                                               "(the vCPUs Lambda's MemorySize gives)")

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("auth_mode", "deadline_margin_ms", "ort_threads", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and not value.strip():  # MAAS_ORT_THREADS="" means "not set", as it always did
            assert info.field_name is not None
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return value

    @classmethod
    def from_environment(cls) -> Self:
        """The settings of this process; a variable that fails validation is logged and left at its default."""
        try:
            return cls()
        except ValidationError as exc:
            bad: dict[str, str] = {}
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                if name not in cls.model_fields:
                    raise
                bad.setdefault(name, error["msg"])
            defaults = {name: cls.model_fields[name].get_default(call_default_factory=True) for name in bad}
            for name, message in bad.items():
                logger.warning("bad setting ignored, using its default",
                               extra={"variable": f"{ENV_PREFIX}{name.upper()}", "error": message,
                                      "default": defaults[name]})
            return cls(**defaults)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environment()
