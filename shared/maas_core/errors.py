"""One error type per HTTP status. Handlers turn any MaasError into the documented body:

    {"error": {"code": "...", "message": "...", "details": [...]}}
"""

from __future__ import annotations

from typing import Any


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
    format_version, a graph onnxruntime refuses): our fault, never cached, never served."""

    status = 500
    code = "model_unusable"


class DependencyAccessDeniedError(MaasError):
    """S3, DynamoDB, SQS or KMS refused this function's role: a deployment (IAM / key policy) problem on
    our side that retrying will not fix. The caller is told only that much; the log has the details."""

    status = 500
    code = "dependency_access_denied"
