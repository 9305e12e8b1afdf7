"""The one error a batch file can fail with: the whole file could not be processed.

Row problems (a bad JSON line, a value of the wrong type) are not errors of this kind: they are
listed in the run's `.errors.jsonl` and every other row is still predicted.
"""

from __future__ import annotations

from typing import Any

from maas_core.errors import MaasError


class BatchFileError(MaasError):
    """A batch input file that cannot be processed at all (codes below), or a failure while doing so.

    `code` says why, e.g. `unsupported_format`, `bad_gzip`, `not_utf8`, `missing_columns`,
    `empty_file`, `line_too_long`, `version_and_alias`, `timeout`, or the code of the MaasError that
    stopped the run (`not_found` for an unknown model, `service_unavailable`, ...).
    """

    status = 422

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 input_uri: str | None = None) -> None:
        super().__init__(message, details)
        self.code = code
        self.input_uri = input_uri

    def __str__(self) -> str:
        where = f"{self.input_uri}: " if self.input_uri else ""
        return f"{where}{self.code}: {self.message}"

    def report(self) -> dict[str, Any]:
        """The JSON written to `batch/failed/...error.json`."""
        return {"input": self.input_uri, "error": self.code, "message": self.message, "details": self.details}
