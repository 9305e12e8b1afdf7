"""The Lambda context a handler gets when it runs outside Lambda: the local gateway and triggers, the tests
and the benchmarks all hand it the same one.

Standard library only (`time`): a benchmark's cold-start process imports it before its clock starts, and
so pays, or pre-pays, nothing the measured handler imports.
"""

from __future__ import annotations

import time

# The local stack's region and moto's default account (maas_core.aws_target.LOCAL_REGION,
# maas_local.template.LOCAL_ACCOUNT_ID), not imported: both modules load more than `time`.
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"


class FakeLambdaContext:
    """What Powertools and the handlers read from a Lambda context.

    Time stands still unless `counting_down`: get_remaining_time_in_millis() is always `remaining_ms`, so a
    test can assert an exact budget. With `counting_down`, the clock starts at creation, as Lambda's does
    for each invocation (the local gateway and triggers)."""

    def __init__(self, function_name: str = "maas-test", *, memory_limit_in_mb: int = 1024,
                 aws_request_id: str = "00000000-0000-0000-0000-000000000000", remaining_ms: int = 28_000,
                 counting_down: bool = False, region: str = DEFAULT_REGION,
                 account_id: str = DEFAULT_ACCOUNT_ID) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{aws_request_id}"
        self.identity = None
        self.client_context = None
        self.remaining_ms = remaining_ms
        self._deadline = time.monotonic() + remaining_ms / 1000 if counting_down else None

    def get_remaining_time_in_millis(self) -> int:
        if self._deadline is None:
            return self.remaining_ms
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"FakeLambdaContext({self.function_name!r}, aws_request_id={self.aws_request_id!r})"
