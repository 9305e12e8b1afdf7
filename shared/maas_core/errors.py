"""One error type per HTTP status. Handlers turn any MaasError into the documented body:

    {"error": {"code": "...", "message": "...", "details": [...]}}

A model bundle we cannot serve (`model_integrity`, `model_unusable`) is our fault, not the caller's:
its body names the model and version for humans; what went wrong (the hashes, onnxruntime's and
pydantic's messages, library versions) is logged where the error is made (`integrity_error`,
`unusable_error`), never answered.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(child=True)


class MaasError(Exception):
    """Base class: an error a caller can act on. `status` is the HTTP status it maps to."""

    status: int = 500
    code: str = "internal_error"
    retry_after: int | None = None  # seconds, sent as the Retry-After header (503s)

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None,
                 details_total: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.details_total = details_total  # how many details there were, when `details` lists only some

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequestError(MaasError):
    status = 400
    code = "bad_request"


class ForbiddenError(MaasError):
    status = 403
    code = "forbidden"


class NotFoundError(MaasError):
    status = 404
    code = "not_found"


class ConflictError(MaasError):
    status = 409
    code = "conflict"


class PayloadTooLargeError(MaasError):
    status = 413
    code = "payload_too_large"


class UnprocessableError(MaasError):
    """The request is well-formed but its content cannot be used (e.g. a record fails the schema)."""

    status = 422
    code = "unprocessable"


class ServiceUnavailableError(MaasError):
    """A dependency (S3, DynamoDB) is down or throttling after retries: the caller may retry."""

    status = 503
    code = "service_unavailable"
    retry_after = 1


class IntegrityError(MaasError):
    """A stored model file does not match the SHA-256 its manifest records: never served."""

    status = 500
    code = "model_integrity"


class ModelLoadError(MaasError):
    """A model bundle that passed its hashes but cannot be used (an unsupported preprocess.json
    format_version, a graph onnxruntime refuses, a spec that does not fit its graph, external data):
    our fault, never cached, never served."""

    status = 500
    code = "model_unusable"


def integrity_error(name: str, version: str, file: str, expected_sha256: str, actual_sha256: str) -> IntegrityError:
    """A file that does not match its manifest: the hashes go to the log, the caller learns which file."""
    logger.error("model file refused: it does not match its manifest SHA-256",
                 extra={"code": IntegrityError.code, "model": name, "version": version, "file": file,
                        "expected_sha256": expected_sha256, "actual_sha256": actual_sha256})
    return IntegrityError(f"model {name!r} version {version!r}: {file} does not match its manifest SHA-256; "
                          "refusing to serve it; it has been logged", [{"file": file}])


def unusable_error(name: str, version: str, reason: str, variant: str | None = None,
                   **context: Any) -> ModelLoadError:
    """A bundle that cannot be served: `reason` (and `context`, e.g. the file or the library's message) go
    to the log with the model, version and variant; the caller is told which version, and that it is logged."""
    logger.error("model version refused: it cannot be served",
                 extra={"code": ModelLoadError.code, "model": name, "version": version, "variant": variant,
                        "reason": reason, **context})
    which = f"model {name!r} version {version!r}" + (f" ({variant})" if variant else "")
    return ModelLoadError(f"{which} could not be loaded; the reason has been logged",
                          [{"model": name, "version": version, **({"variant": variant} if variant else {})}])


class DependencyAccessDeniedError(MaasError):
    """S3, DynamoDB, SQS or KMS refused this function's role: a deployment (IAM / key policy) problem on
    our side that retrying will not fix. The caller is told only that much; the log has the details."""

    status = 500
    code = "dependency_access_denied"
